"""POSTing change notices to the departments' endpoints: one pass (`deliver`), run by the
`notify` task of a source's DAG, the `exchange_notices` DAG every two minutes, and
`exchange notices deliver`; never inside an API request.

Per department one notice at a time in seq order (a failure stops that department's pass: its
later notices wait behind it, so each record's notices arrive in order); departments in
parallel, each over one kept-alive connection to its endpoint (claimed up to BATCH at a time, and
recorded delivered per batch). A POST carries the canonical CloudEvent and the headers
  Content-Type: application/cloudevents+json; charset=utf-8
  Idempotency-Key: <event id>     Exchange-Notice-Seq: <seq>
  Exchange-Signature: <compact JWS, payload detached (RFC 7515 Appendix F)>
2xx is delivered; anything else, a timeout or a refused connection is a failed attempt, retried
after a backoff (catalog/serving/notices.py), dead-lettered and alerted after
EXCHANGE_NOTICE_DEAD_AFTER seconds. A receiver that is down never fails a DAG run.
"""
from __future__ import annotations

import http.client
import logging
import random
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import urlsplit

from base import clock
from base.settings import Settings, get_settings
from catalog.service import Catalog
from catalog.serving.notices import Claimed, NoticeBook
from exchange import alerts

log = logging.getLogger("exchange.notices")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SIGNATURE_HEADER = "Exchange-Signature"
WORKERS = 4
BATCH = 200          # notices claimed, and recorded delivered, per transaction
WINDOW = 50          # POSTs (each up to its timeout) a claim's lease covers: past that, the rest is claimed anew


def headers(got: Claimed) -> dict[str, str]:
    return {"Content-Type": CONTENT_TYPE, "Idempotency-Key": got.event_id, SIGNATURE_HEADER: got.signature,
            "Exchange-Notice-Seq": str(got.seq), "User-Agent": "exchange-notices/1"}


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {alerts.redact(str(exc))[:300]}"


class _Endpoint:
    """One department's endpoint over one kept-alive HTTP/1.1 connection (http.client: no proxy or
    .netrc from the environment, redirects not followed, https verified with the default context);
    a kept-alive connection the receiver dropped is reconnected once."""

    DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self, endpoint: str, timeout: float):
        self.endpoint, self.timeout = endpoint, timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        u = urlsplit(self.endpoint)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise http.client.InvalidURL(f"not an http(s) URL: {self.endpoint!r}")
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        if u.scheme == "https":
            return http.client.HTTPSConnection(u.hostname, u.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(u.hostname, u.port, timeout=self.timeout)

    def post(self, got: Claimed) -> str | None:
        """None when the receiver took it (2xx); else why not."""
        body = got.body.encode("utf-8")
        again = self.conn is not None        # a kept-alive connection: once more, anew, if it was dropped
        while True:
            try:
                if self.conn is None:
                    self.conn = self._connect()
                self.conn.request("POST", self.path, body=body, headers=headers(got))
                r = self.conn.getresponse()
                r.read(1 << 16)
            except self.DROPPED as exc:
                self.close()
                if again:
                    again = False
                    continue
                return _why(exc)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                self.close()
                return _why(exc)
            if r.will_close or not r.isclosed():     # the receiver's choice, or a body longer than we read
                self.close()
            return None if 200 <= r.status < 300 else f"HTTP {r.status} from the receiver"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> _Endpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
    lease = (WINDOW + 2) * s.notice_timeout + 30     # WINDOW POSTs' timeouts, and one more reconnected

    def one(dept: dict) -> None:
        dead: list[tuple[Claimed, str]] = []
        left, after = budget, None
        with _Endpoint(dept["endpoint"], s.notice_timeout) as http:
            while left > 0:
                batch = book.claim(dept["department"], now or clock.now(), lease, min(BATCH, left), after)
                if not batch:
                    break
                began = time.monotonic()
                taken: list[Claimed] = []
                for i, got in enumerate(batch):
                    if i and time.monotonic() - began >= WINDOW * s.notice_timeout:     # its lease would run out
                        book.release(batch[i:], now or clock.now())
                        break
                    after, left = got.seq, left - 1
                    error = http.post(got)
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
