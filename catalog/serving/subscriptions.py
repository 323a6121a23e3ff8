"""A consuming department's subscriptions to change notices, and its replay of them: each
request audited like a lookup (catalog/serving/consumer.py).

kind `dataset`: the records of a dataset the department may see for the purpose (1-365 days);
kind `holder`: one holder's records, bound to a case number (`case:…`) for at most 90 days.
Where notices are POSTed is set by the operator (`exchange departments endpoint`), never through
the API; without an endpoint they stay pending and are read with `GET /v1/notices?after=`.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from base import clock
from base.errors import AccessDenied, InvalidRequest, NotFound
from catalog.db.models import Department, Notice, NoticeEvent, Subscription
from catalog.serving.access import CASE_RE, Caller, check_department_id, check_purpose
from catalog.serving.consumer import Consumer
from catalog.serving.holders import holder_key

DATASET_DAYS, HOLDER_DAYS = 365, 90
MAX_ACTIVE = 1000          # active subscriptions of one department
PAGE_LIMIT = 500
ENDPOINT_SCHEMES = ("http://", "https://")


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _row(r) -> dict:
    return {"id": r.id, "department": r.department_id, "kind": r.kind, "dataset": r.dataset_id,
            "holder": r.holder_key, "purpose": r.purpose, "created_at": _aware(r.created_at).isoformat(),
            "expires_at": _aware(r.expires_at).isoformat(),
            "revoked_at": _aware(r.revoked_at).isoformat() if r.revoked_at else None}


class Subscriptions:
    def __init__(self, consumer: Consumer):
        self.consumer, self.engine, self.access = consumer, consumer.engine, consumer.access

    def add(self, caller: Caller, purpose: str, *, dataset: str | None = None, holder_id: str | None = None,
            days: int = 30, now: datetime | None = None) -> dict:
        check_purpose(purpose)
        now = now or clock.now()
        if (dataset is None) == (holder_id is None):
            raise InvalidRequest("订阅对象不明 (subscribe to one thing): give either a dataset or a holder_id")
        limit = DATASET_DAYS if dataset is not None else HOLDER_DAYS
        if not 1 <= days <= limit:
            raise InvalidRequest(f"订阅天数超出范围 (days out of range): a {'dataset' if dataset else 'holder'} "
                                 f"subscription lives 1 to {limit} days, not {days}")
        key = None
        if holder_id is not None:
            key = holder_key(holder_id)
            if not CASE_RE.match(purpose):
                raise InvalidRequest("订阅持证主体须说明案件编号 (holder subscriptions need a case): a subscription to "
                                     "a holder's records is bound to a case: give purpose=case:NUMBER")
        else:
            d = self.access.decide(caller.department, dataset, purpose)
            if not d.allowed:
                exc = AccessDenied(d.reason)
                self.consumer.refused(caller, purpose, "subscription.add", exc, datasets=[dataset])
                raise exc
        values = dict(department_id=caller.department, kind="holder" if key else "dataset", dataset_id=dataset,
                      holder_key=key, purpose=purpose, created_at=now, expires_at=now + timedelta(days=days),
                      created_by=caller.key_id)
        s = Subscription.__table__.c
        with self.engine.begin() as c:
            active = c.scalar(sa.select(sa.func.count()).where(
                s.department_id == caller.department, s.revoked_at.is_(None), s.expires_at > now))
            if active >= MAX_ACTIVE:
                raise InvalidRequest(f"订阅过多 (too many subscriptions): department {caller.department} has "
                                     f"{active} active subscriptions, the most there may be; end some first "
                                     "(DELETE /v1/subscriptions/{id})")
            sid = c.execute(sa.insert(Subscription.__table__).values(**values)
                            .returning(Subscription.__table__.c.id)).scalar_one()
        self.consumer._audit(caller, purpose, "subscription.add", "allowed", holder=key,
                             datasets=[dataset] if dataset else None, subject=str(sid),
                             detail={"kind": values["kind"], "days": days})
        return {"id": sid, "department": caller.department, "kind": values["kind"], "dataset": dataset,
                "holder": key, "purpose": purpose, "created_at": now.isoformat(),
                "expires_at": values["expires_at"].isoformat(), "revoked_at": None}

    def list(self, caller: Caller, purpose: str, now: datetime | None = None, *,
             include_ended: bool = False) -> list[dict]:
        check_purpose(purpose)
        now = now or clock.now()
        s = Subscription.__table__.c
        q = sa.select(Subscription.__table__).where(s.department_id == caller.department).order_by(s.id)
        if not include_ended:
            q = q.where(s.revoked_at.is_(None), s.expires_at > now)
        with self.engine.connect() as c:
            rows = [_row(r) for r in c.execute(q)]
        self.consumer._audit(caller, purpose, "subscription.list", "allowed", detail={"count": len(rows)})
        return rows

    def remove(self, caller: Caller, purpose: str, sid: int, now: datetime | None = None) -> dict:
        check_purpose(purpose)
        s = Subscription.__table__.c
        with self.engine.begin() as c:
            row = c.execute(sa.select(Subscription.__table__).where(
                s.id == sid, s.department_id == caller.department, s.revoked_at.is_(None))).first()
            if row is not None:
                c.execute(sa.update(Subscription.__table__).where(s.id == sid).values(revoked_at=now or clock.now()))
        if row is None:
            exc = NotFound(f"未找到有效的订阅 (no active subscription): {sid} of department {caller.department}; "
                           "list them with GET /v1/subscriptions")
            self.consumer.refused(caller, purpose, "subscription.remove", exc, subject=str(sid))
            raise exc
        self.consumer._audit(caller, purpose, "subscription.remove", "allowed", holder=row.holder_key,
                             datasets=[row.dataset_id] if row.dataset_id else None, subject=str(sid))
        return {**_row(row), "revoked_at": (now or clock.now()).isoformat()}

    def page(self, caller: Caller, purpose: str, after: int = 0, limit: int = 100) -> dict:
        """The department's notices with seq > after, in seq order, with their exact signed
        bodies: a receiver that lost its state reads on from its last seq (`next`)."""
        check_purpose(purpose)
        if after < 0 or not 1 <= limit <= PAGE_LIMIT:
            raise InvalidRequest(f"分页参数无效 (bad page): after >= 0 and 1 <= limit <= {PAGE_LIMIT}")
        items = page(self.engine, caller.department, after, limit)
        self.consumer._audit(caller, purpose, "notices.replay", "allowed",
                             detail={"after": after, "count": len(items)})
        return {"department": caller.department, "after": after, "notices": items,
                "next": items[-1]["seq"] if items else after}


def page(engine, department: str, after: int, limit: int) -> list[dict]:
    n, e = Notice.__table__.c, NoticeEvent.__table__.c
    with engine.connect() as c:
        rows = c.execute(sa.select(n.seq, n.state, e.type, e.body, e.signature)
                         .join_from(Notice.__table__, NoticeEvent.__table__, n.event_id == e.event_id)
                         .where(n.department_id == department, n.seq > after)
                         .order_by(n.seq).limit(limit)).all()
    return [{"seq": r.seq, "state": r.state, "type": r.type, "event": json.loads(r.body), "body": r.body,
             "signature": r.signature} for r in rows]


def set_endpoint(engine, department: str, url: str | None, actor: str = "operator") -> dict:
    """The operator sets (or clears, url None) where a department's notices are POSTed."""
    from catalog.serving import audit  # the admin audit, as Access's changes

    check_department_id(department)
    if url is not None and (not url.startswith(ENDPOINT_SCHEMES) or len(url) > 1024 or any(ch.isspace() for ch in url)):
        raise InvalidRequest(f"通知地址无效 (bad endpoint): {url!r}: give an http:// or https:// URL "
                             "of at most 1024 characters")
    with engine.begin() as c:
        n = c.execute(sa.update(Department.__table__).where(Department.id == department)
                      .values(notice_endpoint=url)).rowcount
    if not n:
        raise NotFound(f"未找到部门 (no department): {department!r}; add it with `exchange departments add`")
    audit.append(engine, department=actor, purpose="administration", action="department.endpoint",
                 outcome="done", subject=department, detail={"endpoint": url})
    return {"department": department, "endpoint": url}
