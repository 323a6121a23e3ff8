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
from catalog.serving.access import STATUS_SOURCES, Access, Decision
from catalog.serving.notice_events import CHANGED

STATES = ("pending", "delivered", "dead", "withheld")
_n, _e, _s, _d = Notice.__table__.c, NoticeEvent.__table__.c, Subscription.__table__.c, Department.__table__.c
# with seq IN (…): `state || ''` keeps SQLite (no statistics) off ix_notices_state_due, which it
# would otherwise take for the state's equality and walk every pending notice; seq's key finds them
_STILL_PENDING = (_n.state + "") == "pending"


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

    def claim(self, department: str, now: datetime | None = None, lease: float = 60.0,
              limit: int = 1, after: int | None = None) -> list[Claimed]:
        """Up to `limit` of the department's lowest pending notices, in seq order, leased for
        `lease` seconds: none unless the lowest is due and no other worker holds it. Those the
        grant or the subscription no longer allows are withheld (and not returned). `after`: the
        last seq this worker's pass claimed (none below it is pending still; the index is read
        from there, not past every notice the department was ever sent)."""
        now = now or clock.now()
        while True:
            won = self._lease(department, now, lease, limit, after, all_or_none=True)
            if won is None:          # another worker took some of them: one at a time, in seq order
                won = self._lease(department, now, lease, limit, after, all_or_none=False) or []
            got = [Claimed(r.seq, department, r.event_id, r.type, r.body, r.signature, r.dataset_id, r.record_id,
                           r.holder_key, r.purpose, r.attempts, _aware(r.created_at)) for r in won]
            why = self._no_longer_allowed(got, {r.seq: r.subscription_id for r in won}, now)
            for reason in dict.fromkeys(why.values()):
                self._final([g for g in got if why.get(g.seq) == reason], "withheld", now, reason)
            kept = [g for g in got if g.seq not in why]
            if kept or not got:
                return kept
            after = got[-1].seq

    def _lease(self, department: str, now: datetime, lease: float, limit: int, after: int | None, *,
               all_or_none: bool) -> list | None:
        """The department's lowest pending rows (up to `limit`), leased. `all_or_none`: one UPDATE
        for them all, None (nothing leased) when another worker holds any of them; else row by row
        in seq order, stopping at the first held by another worker."""
        leased = {"next_attempt_at": now + timedelta(seconds=lease),
                  "first_attempt_at": sa.func.coalesce(_n.first_attempt_at, now)}
        with self.engine.begin() as c:
            rows = c.execute(sa.select(Notice.__table__, _e.type, _e.body, _e.signature, _e.dataset_id, _e.record_id)
                             .join_from(Notice.__table__, NoticeEvent.__table__, _n.event_id == _e.event_id)
                             .where(_n.department_id == department, _n.state == "pending",
                                    *([_n.seq > after] if after is not None else []))
                             .order_by(_n.seq).limit(limit)).all()
            if not rows or _aware(rows[0].next_attempt_at) > now:
                return []
            if all_or_none:
                took = c.execute(sa.update(Notice.__table__).where(
                    _n.seq.in_([r.seq for r in rows]), _STILL_PENDING, _n.next_attempt_at <= now)
                    .values(**leased)).rowcount
                if took == len(rows):
                    return list(rows)
                c.rollback()
                return None
            won = []
            for r in rows:         # in order; one lost to another worker ends the claim
                if not c.execute(sa.update(Notice.__table__).where(
                        _n.seq == r.seq, _n.state == "pending", _n.next_attempt_at <= now).values(**leased)).rowcount:
                    break
                won.append(r)
            return won

    def _no_longer_allowed(self, got: list[Claimed], subscriptions: dict[int, int | None],
                           now: datetime) -> dict[int, str]:
        """seq -> why, for the notices that may no longer be sent."""
        ids = {s for s in subscriptions.values() if s is not None}
        with self.engine.connect() as c:
            subs = {r.id: r for r in c.execute(sa.select(_s.id, _s.revoked_at, _s.expires_at).where(_s.id.in_(ids)))}
        out: dict[int, str] = {}
        decided: dict[tuple[str, str], Decision] = {}
        for g in got:
            sid = subscriptions[g.seq]
            if sid is None:       # an objection's outcome, told to the objector
                continue
            sub = subs.get(sid)
            if sub is None or sub.revoked_at is not None or _aware(sub.expires_at) <= now:
                out[g.seq] = f"subscription {sid} ended before the notice was due"
                continue
            key = (g.dataset or "", g.purpose)
            if key not in decided:
                decided[key] = self.access.decide(g.department, *key)
            d = decided[key]
            if not d.allowed:
                out[g.seq] = d.reason
                continue
            if d.fields is None:     # the whole record: nothing in the body to check
                continue
            data = json.loads(g.body).get("data") or {}
            shown = set(data.get("record") or {}) - {"record_id"}
            if data.get("change") != CHANGED:
                shown |= STATUS_SOURCES
            if not shown <= d.fields:
                out[g.seq] = f"the grant now covers fewer fields than the notice holds: {sorted(shown - d.fields)}"
        return out

    def delivered(self, got: list[Claimed], now: datetime | None = None) -> None:
        if got:
            self._final(got, "delivered", now or clock.now(), None)

    def release(self, got: list[Claimed], now: datetime | None = None) -> None:
        """Claimed notices not attempted (an earlier one failed): pending as they were, unleased."""
        if got:
            with self.engine.begin() as c:
                c.execute(sa.update(Notice.__table__).where(_n.seq.in_([g.seq for g in got]), _STILL_PENDING)
                          .values(next_attempt_at=now or clock.now()))

    def failed(self, got: Claimed, error: str, rng: random.Random, *, base: float, cap: float,
               dead_after: float, now: datetime | None = None) -> str:
        """A failed attempt: pending again after a backoff, or dead once `dead_after` seconds have
        passed since it was owed (so a long outage dead-letters a backlog in one pass, not one
        notice per `dead_after`). Returns the state."""
        now = now or clock.now()
        if (now - got.owed_since).total_seconds() >= dead_after:
            self._final([got], "dead", now, error)
            return "dead"
        delay = backoff(got.attempts + 1, base, cap, rng)
        with self.engine.begin() as c:
            c.execute(sa.update(Notice.__table__).where(_n.seq == got.seq, _n.state == "pending").values(
                attempts=got.attempts + 1, last_error=error[:2000], next_attempt_at=now + timedelta(seconds=delay)))
        return "pending"

    def _final(self, got: list[Claimed], state: str, now: datetime, error: str | None) -> None:
        """Delivered, dead or withheld: the rows' final state and one audit entry each."""
        values: dict = {"state": state, "finished_at": now}
        if state != "withheld":
            values["attempts"] = _n.attempts + 1
        if error is not None:
            values["last_error"] = error[:2000]
        with self.engine.begin() as c:
            done = set(c.scalars(sa.update(Notice.__table__).where(_n.seq.in_([g.seq for g in got]), _STILL_PENDING)
                                 .values(**values).returning(_n.seq)))
        entries = []
        for g in got:
            if g.seq not in done:
                continue
            detail = {"event_id": g.event_id, "seq": g.seq, "type": g.type}
            if error is not None:
                detail["error"] = error[:300]
            entries.append(audit.entry(department=g.department, purpose=g.purpose, action="notice", outcome=state,
                                       holder=g.holder, datasets=[g.dataset] if g.dataset else None,
                                       subject=g.record_id, detail=detail, at=now))
        if entries:
            audit.append_many(self.engine, entries)

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
