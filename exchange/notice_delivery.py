"""POSTing change notices to the departments' endpoints: one pass (`deliver`), run by the
`notify` task of a source's DAG, the `exchange_notices` DAG every two minutes, and
`exchange notices deliver`; never inside an API request.

Per department one notice at a time in seq order (a failure stops that department's pass: its
later notices wait behind it, so each record's notices arrive in order); departments in
parallel. A POST carries the canonical CloudEvent and the headers
  Content-Type: application/cloudevents+json; charset=utf-8
  Idempotency-Key: <event id>     Exchange-Notice-Seq: <seq>
  Exchange-Signature: <compact JWS, payload detached (RFC 7515 Appendix F)>
2xx is delivered; anything else, a timeout or a refused connection is a failed attempt, retried
after a backoff (catalog/serving/notices.py), dead-lettered and alerted after
EXCHANGE_NOTICE_DEAD_AFTER seconds. A receiver that is down never fails a DAG run.
"""
from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests

from base import clock
from base.settings import Settings, get_settings
from catalog.service import Catalog
from catalog.serving.notices import Claimed, NoticeBook
from exchange import alerts

log = logging.getLogger("exchange.notices")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SIGNATURE_HEADER = "Exchange-Signature"
WORKERS = 4
BATCH = 50           # notices claimed, and recorded delivered, per transaction


def headers(got: Claimed) -> dict[str, str]:
    return {"Content-Type": CONTENT_TYPE, "Idempotency-Key": got.event_id, SIGNATURE_HEADER: got.signature,
            "Exchange-Notice-Seq": str(got.seq), "User-Agent": "exchange-notices/1"}


def _post(http: requests.Session, endpoint: str, got: Claimed, timeout: float) -> str | None:
    """None when the receiver took it (2xx); else why not."""
    try:
        r = http.post(endpoint, data=got.body.encode("utf-8"), headers=headers(got), timeout=timeout,
                      allow_redirects=False)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {alerts.redact(str(exc))[:300]}"
    if 200 <= r.status_code < 300:
        return None
    return f"HTTP {r.status_code} from the receiver"


class _Tally:
    def __init__(self):
        self.lock, self.counts = threading.Lock(), {"delivered": 0, "failed": 0, "dead": 0}

    def add(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n


def _alert_dead(s: Settings, dept: dict, dead: list[tuple[Claimed, str]], at: datetime) -> None:
    """One alert per department and pass, however many notices went dead in it."""
    first, error = dead[0]
    datasets = sorted({g.dataset for g, _ in dead if g.dataset})
    alerts.send(alerts.Alert(
        kind="notice_dead", dataset=datasets[0] if len(datasets) == 1 else None, at=at,
        message=f"变更通知投递失败 (notices dead-lettered): {len(dead)} notice(s) to department "
                f"{dept['department']} at {dept['endpoint']} (seq {first.seq} to {dead[-1][0].seq}) were not "
                f"taken within {s.notice_dead_after:g} s of being owed (last error: {error}); the department can "
                f"read them again: GET /v1/notices?after={first.seq - 1}; fix its receiver or its endpoint "
                "(`exchange departments endpoint`)"), s)


def deliver(settings: Settings | None = None, now: datetime | None = None, rng: random.Random | None = None,
            budget: int = 1000, dataset: str | None = None, catalog: Catalog | None = None,
            book: NoticeBook | None = None) -> dict:
    """One delivery pass: at most `budget` notices per department, departments in parallel.
    `dataset`: only departments owed a notice of it (still in their seq order). `now`, `rng`:
    the clock and the jitter's randomness (tests inject them). Returns the counts."""
    s = settings or get_settings()
    book = book or NoticeBook((catalog or Catalog(s.catalog_url, s.store)).engine)
    rng = rng or random.Random()
    rng_lock = threading.Lock()
    tally = _Tally()
    lease = (BATCH + 1) * s.notice_timeout + 30     # a claimed batch, each POST up to its timeout

    def one(dept: dict) -> None:
        dead: list[tuple[Claimed, str]] = []
        left = budget
        with requests.Session() as http:
            http.trust_env = False     # the endpoint as the operator set it: no proxy or .netrc from the environment
            while left > 0:
                batch = book.claim(dept["department"], now or clock.now(), lease, min(BATCH, left))
                if not batch:
                    break
                left -= len(batch)
                taken: list[Claimed] = []
                for i, got in enumerate(batch):
                    error = _post(http, dept["endpoint"], got, s.notice_timeout)
                    if error is None:
                        taken.append(got)
                        continue
                    at = now or clock.now()
                    book.delivered(taken, at)        # before the failure, in order
                    taken = []
                    with rng_lock:
                        state = book.failed(got, error, rng, base=s.notice_retry_base, cap=s.notice_retry_max,
                                            dead_after=s.notice_dead_after, now=at)
                    if state == "dead":
                        tally.add("dead")
                        dead.append((got, error))
                        continue          # a dead one no longer holds the later ones back
                    tally.add("failed")
                    log.warning("notice %s to %s failed (%s); retried later", got.seq, got.department, error)
                    book.release(batch[i + 1:], at)
                    left = 0
                    break
                book.delivered(taken, now or clock.now())
                tally.add("delivered", len(taken))
        if dead:
            _alert_dead(s, dept, dead, now or clock.now())

    due = book.due_departments(now or clock.now(), dataset)
    if due:
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(due)), thread_name_prefix="notices") as pool:
            list(pool.map(one, due))
    return {"departments": len(due), **tally.counts}
