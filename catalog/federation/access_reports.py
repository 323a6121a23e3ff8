"""Access reports owed to the origins of mirrored datasets (table `peer_access_reports`).

When a consumer here is answered from records of a mirrored dataset, one report per origin peer
is queued (`enqueue`); the peer sync delivers the due ones (`due`, then `delivered` or
`failed`: retried with a growing delay, `dead` after MAX_ATTEMPTS). `mirrored` says which
datasets are mirrored and from which peer (the hook in catalog/serving/consumer.py)."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from base import clock
from catalog.db.models import Mirror, PeerAccessReport

MAX_ATTEMPTS = 20
FIRST_DELAY = 60.0          # seconds; doubled on every failure, at most MAX_DELAY
MAX_DELAY = 6 * 3600.0
ROW_KEY = "_peer_reports"     # an audit row's reports, queued once the row is written
_t = PeerAccessReport.__table__
log = logging.getLogger("exchange.federation")


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def mirrored(engine: Engine) -> dict[str, str]:
    """dataset -> the peer it is mirrored from (a removed peer's datasets owe it nothing more)."""
    with engine.connect() as c:
        return dict(c.execute(sa.select(Mirror.dataset_id, Mirror.peer).where(Mirror.state != "removed")).all())


def reports_for(mirrors: dict[str, str], *, at: datetime, department: str, purpose: str, action: str,
                holder: str | None, datasets: list[str], records: list[tuple[str, str]] | None) -> list[dict]:
    """The reports one allowed answer owes: one per origin peer, naming its datasets and their
    records (`records`: (dataset, record id) pairs) only."""
    by_peer: dict[str, list[str]] = {}
    for d in sorted(set(datasets)):
        if d in mirrors:
            by_peer.setdefault(mirrors[d], []).append(d)
    return [{"peer": peer, "at": at, "department": department, "purpose": purpose, "action": action,
             "holder": holder, "datasets": ds, "records": [rid for d, rid in records or () if d in ds]}
            for peer, ds in by_peer.items()]


def enqueue(engine: Engine, rows: list[dict]) -> int:
    """Queue reports: dicts with peer, at, department, purpose, action, holder, datasets, records."""
    if not rows:
        return 0
    values = [{"peer": r["peer"], "at": r["at"], "department": r["department"][:128],
               "purpose": r["purpose"][:255], "action": r["action"][:64], "holder": r.get("holder"),
               "datasets": list(r.get("datasets") or []), "records": list(r.get("records") or []),
               "state": "pending", "attempts": 0, "next_attempt_at": r["at"]} for r in rows]
    with engine.begin() as c:
        c.execute(sa.insert(_t), values)
    return len(values)


def due(engine: Engine, peer: str, limit: int = 500, now: datetime | None = None) -> list[dict]:
    """The pending reports for `peer` whose time has come, oldest first, as POST
    /v1/federation/access takes them ({"id","at","department","purpose","action","holder",
    "datasets","records"}; `at` RFC 3339)."""
    now = now or clock.now()
    with engine.connect() as c:
        rows = c.execute(sa.select(_t.c.id, _t.c.at, _t.c.department, _t.c.purpose, _t.c.action,
                                   _t.c.holder, _t.c.datasets, _t.c.records)
                         .where(_t.c.peer == peer, _t.c.state == "pending", _t.c.next_attempt_at <= now)
                         .order_by(_t.c.id).limit(limit)).mappings().all()
    return [{**r, "at": _aware(r["at"]).isoformat(), "datasets": r["datasets"] or [],
             "records": r["records"] or []} for r in rows]


def delivered(engine: Engine, ids: list[int], now: datetime | None = None) -> int:
    if not ids:
        return 0
    with engine.begin() as c:
        return c.execute(sa.update(_t).where(_t.c.id.in_(ids), _t.c.state == "pending")
                         .values(state="delivered", delivered_at=now or clock.now(), last_error=None)).rowcount


def failed(engine: Engine, ids: list[int], error: str, now: datetime | None = None) -> int:
    """One more failed attempt each: tried again after FIRST_DELAY * 2**attempts (at most
    MAX_DELAY); `dead` after MAX_ATTEMPTS."""
    if not ids:
        return 0
    now = now or clock.now()
    n = 0
    with engine.begin() as c:
        for rid, attempts in c.execute(sa.select(_t.c.id, _t.c.attempts)
                                       .where(_t.c.id.in_(ids), _t.c.state == "pending")).all():
            attempts = (attempts or 0) + 1
            delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (attempts - 1))
            c.execute(sa.update(_t).where(_t.c.id == rid).values(
                attempts=attempts, last_error=error[:2000], next_attempt_at=now + timedelta(seconds=delay),
                state="dead" if attempts >= MAX_ATTEMPTS else "pending"))
            n += 1
    return n


def enqueue_from(engine: Engine, rows: list[dict]) -> int:
    """Queue the reports written audit rows carry (ROW_KEY): after the rows are written, so an
    answer that could not be audited (and so was not given) is never reported. A failure here
    is logged, not raised: the answer was audited and given."""
    reports = [r for row in rows for r in row.pop(ROW_KEY, None) or ()]
    if not reports:
        return 0
    try:
        return enqueue(engine, reports)
    except Exception:
        log.exception("could not queue %d access reports for peers", len(reports))
        return 0
