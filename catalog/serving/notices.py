"""Delivery bookkeeping of change notices (the HTTP side is exchange/notice_delivery.py).

A department's notices go out one at a time in seq order (so, per record, in order): only its
lowest pending notice is ever claimed. A claim is a lease written into the row (UPDATE … WHERE
state = 'pending' AND next_attempt_at <= now: one worker wins it), so two delivery workers never
send the same notice at once, and a worker that dies leaves a lease that runs out (the notice is
sent again: at least once; the receiver de-duplicates by Idempotency-Key = event id).
pending -> delivered (2xx) | pending again after a failure (exponential backoff, full jitter)
        -> dead (still failing `dead_after` after it was owed: alerted by the caller)
        -> withheld (when due, the grant or the subscription no longer allows it).
Every final outcome is an audit entry (action `notice`), so it shows in the holder's access report.
A department without an endpoint is never attempted: its notices stay pending, read by replay.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from base import clock
from catalog.db.models import Department, Notice, NoticeEvent, Subscription
from catalog.serving import audit
from catalog.serving.access import STATUS_SOURCES, Access
from catalog.serving.notice_events import CHANGED

STATES = ("pending", "delivered", "dead", "withheld")
_n, _e, _s, _d = Notice.__table__.c, NoticeEvent.__table__.c, Subscription.__table__.c, Department.__table__.c


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


@dataclass(frozen=True)
class Claimed:
    seq: int
    department: str
    event_id: str
    type: str
    body: str
    signature: str
    dataset: str | None
    record_id: str | None
    holder: str | None
    purpose: str
    attempts: int
    owed_since: datetime        # when it was owed (created): dead `dead_after` seconds later


def backoff(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before the next attempt after `attempts` failures: full jitter over an exponential."""
    return rng.uniform(0, min(cap, base * 2 ** max(0, attempts - 1)))


class NoticeBook:
    def __init__(self, engine: Engine, access: Access | None = None):
        self.engine = engine
        self.access = access or Access(engine, ttl=2)

    def due_departments(self, now: datetime | None = None, dataset: str | None = None) -> list[dict]:
        """Departments with an endpoint and a pending notice (of `dataset`, if given) due by now."""
        now = now or clock.now()
        q = (sa.select(_d.id, _d.notice_endpoint).where(
            _d.notice_endpoint.is_not(None), _d.active.is_(True),
            sa.exists().where(_n.department_id == _d.id, _n.state == "pending", _n.next_attempt_at <= now))
            .order_by(_d.id))
        if dataset is not None:
            q = q.where(sa.exists().where(_n.department_id == _d.id, _n.state == "pending",
                                          _n.event_id == _e.event_id, _e.dataset_id == dataset))
        with self.engine.connect() as c:
            return [{"department": r.id, "endpoint": r.notice_endpoint} for r in c.execute(q)]

    def claim(self, department: str, now: datetime | None = None, lease: float = 60.0) -> Claimed | None:
        """The department's lowest pending notice, leased for `lease` seconds, if it is due and no
        other worker holds it; one the grant no longer allows is withheld and the next one tried."""
        now = now or clock.now()
        while True:
            with self.engine.begin() as c:
                head = c.execute(sa.select(Notice.__table__, _e.type, _e.body, _e.signature, _e.dataset_id,
                                           _e.record_id)
                                 .join_from(Notice.__table__, NoticeEvent.__table__, _n.event_id == _e.event_id)
                                 .where(_n.department_id == department, _n.state == "pending")
                                 .order_by(_n.seq).limit(1)).first()
                if head is None or _aware(head.next_attempt_at) > now:
                    return None
                won = c.execute(sa.update(Notice.__table__).where(
                    _n.seq == head.seq, _n.state == "pending", _n.next_attempt_at <= now)
                    .values(next_attempt_at=now + timedelta(seconds=lease),
                            first_attempt_at=sa.func.coalesce(_n.first_attempt_at, now))).rowcount
            if not won:
                return None
            got = Claimed(head.seq, department, head.event_id, head.type, head.body, head.signature,
                          head.dataset_id, head.record_id, head.holder_key, head.purpose, head.attempts,
                          _aware(head.created_at))
            why = self._no_longer_allowed(got, head.subscription_id, now)
            if why is None:
                return got
            self._final(got, "withheld", now, why)

    def _no_longer_allowed(self, got: Claimed, subscription_id: int | None, now: datetime) -> str | None:
        if subscription_id is None:       # an objection's outcome, told to the objector
            return None
        with self.engine.connect() as c:
            sub = c.execute(sa.select(_s.revoked_at, _s.expires_at).where(_s.id == subscription_id)).first()
        if sub is None or sub.revoked_at is not None or _aware(sub.expires_at) <= now:
            return f"subscription {subscription_id} ended before the notice was due"
        d = self.access.decide(got.department, got.dataset or "", got.purpose)
        if not d.allowed:
            return d.reason
        data = json.loads(got.body).get("data") or {}
        shown = set(data.get("record") or {}) - {"record_id"}
        if data.get("change") != CHANGED:
            shown |= STATUS_SOURCES
        if d.fields is not None and not shown <= d.fields:
            return f"the grant now covers fewer fields than the notice holds: {sorted(shown - d.fields)}"
        return None

    def delivered(self, got: Claimed, now: datetime | None = None) -> None:
        self._final(got, "delivered", now or clock.now(), None)

    def failed(self, got: Claimed, error: str, rng: random.Random, *, base: float, cap: float,
               dead_after: float, now: datetime | None = None) -> str:
        """A failed attempt: pending again after a backoff, or dead once `dead_after` seconds have
        passed since it was owed (so a long outage dead-letters a backlog in one pass, not one
        notice per `dead_after`). Returns the state."""
        now = now or clock.now()
        if (now - got.owed_since).total_seconds() >= dead_after:
            self._final(got, "dead", now, error, attempts=got.attempts + 1)
            return "dead"
        delay = backoff(got.attempts + 1, base, cap, rng)
        with self.engine.begin() as c:
            c.execute(sa.update(Notice.__table__).where(_n.seq == got.seq, _n.state == "pending").values(
                attempts=got.attempts + 1, last_error=error[:2000], next_attempt_at=now + timedelta(seconds=delay)))
        return "pending"

    def _final(self, got: Claimed, state: str, now: datetime, error: str | None, attempts: int | None = None) -> None:
        values: dict = {"state": state, "finished_at": now}
        if state != "withheld":
            values["attempts"] = attempts if attempts is not None else got.attempts + 1
        if error is not None:
            values["last_error"] = error[:2000]
        with self.engine.begin() as c:
            n = c.execute(sa.update(Notice.__table__).where(_n.seq == got.seq, _n.state == "pending")
                          .values(**values)).rowcount
        if n:
            detail = {"event_id": got.event_id, "seq": got.seq, "type": got.type}
            if error is not None:
                detail["error"] = error[:300]
            audit.append_many(self.engine, [audit.entry(
                department=got.department, purpose=got.purpose, action="notice", outcome=state,
                holder=got.holder, datasets=[got.dataset] if got.dataset else None, subject=got.record_id,
                detail=detail, at=now)])

    # --- reading ------------------------------------------------------------------------------
    def listing(self, department: str | None = None, state: str | None = None, limit: int = 200) -> list[dict]:
        q = (sa.select(_n.seq, _n.department_id, _n.state, _n.attempts, _n.created_at, _n.next_attempt_at,
                       _n.finished_at, _n.last_error, _n.purpose, _e.type, _e.dataset_id, _e.record_id, _n.event_id)
             .join_from(Notice.__table__, NoticeEvent.__table__, _n.event_id == _e.event_id)
             .order_by(_n.seq.desc()).limit(limit))
        if department:
            q = q.where(_n.department_id == department)
        if state:
            q = q.where(_n.state == state)
        with self.engine.connect() as c:
            return [{"seq": r.seq, "department": r.department_id, "state": r.state, "type": r.type,
                     "dataset": r.dataset_id, "record_id": r.record_id, "event_id": r.event_id,
                     "purpose": r.purpose, "attempts": r.attempts,
                     "created_at": _aware(r.created_at).isoformat(),
                     "next_attempt_at": _aware(r.next_attempt_at).isoformat() if r.state == "pending" else None,
                     "finished_at": _aware(r.finished_at).isoformat() if r.finished_at else None,
                     "last_error": r.last_error} for r in c.execute(q)]
