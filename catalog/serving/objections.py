"""Objections to shared records (数据异议): a consuming department says a record is wrong; the
source department's steward answers.

States (catalog/db/models.py Objection): open -> correcting (the steward corrects it at the
source; the next version that appends a state of the record closes it) -> corrected, or
open | correcting -> upheld (the record stands, with the steward's reason). While open or
correcting the record is disputed in lookups, bundles, record status and the materials check
(catalog/publish/status.py `dispute`, the lookup's EXISTS in catalog/service.py).

The deadline: the end (23:59:59 Beijing time) of the N-th working day after filing, N the source
department's `objection_days` (5 without one; base/workdays.py: statutory holidays and make-up
workdays from the `chinesecalendar` package, Monday to Friday for a year it does not cover).
An objection still unresolved past its deadline is alerted once (`claim_overdue`, sent by
exchange/objection_watch.py). The objector is told the outcome by the change notices
(they emit one for each corrected or upheld objection whose `notified_at` is empty): nothing
here sets `notified_at`.
"""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from base import clock, times
from base.errors import Conflict, InvalidRequest, NotFound, UnknownName
from base.workdays import due_after
from catalog.db.models import Dataset, Department, Objection, Record
from catalog.publish.status import UNRESOLVED
from catalog.serving import audit
from catalog.serving.access import Access, Caller, check_department_id, check_purpose
from catalog.serving.holders import record_id_ok

STATES = ("open", "correcting", "corrected", "upheld")
OUTCOMES = ("corrected", "upheld")
DEFAULT_DAYS = 5
MAX_DAYS = 60
MAX_REASON = 2000           # characters
MAX_EVIDENCE = 16 * 1024    # bytes of UTF-8


def _now(now: datetime | None) -> datetime:
    """Now (or `now`) in UTC: stored times are UTC (SQLite keeps the wall time it is given)."""
    return times.aware(now).astimezone(UTC) if now else clock.now().astimezone(UTC)


def _bj(t: datetime | None) -> str | None:
    """RFC 3339 in Beijing time (+08:00), to the second."""
    return None if t is None else clock.beijing(t).isoformat(timespec="seconds")


_WITH_SOURCE = sa.select(*Objection.__table__.c, Dataset.department.label("source_department")).outerjoin(
    Dataset, Dataset.id == Objection.dataset_id)


def view(o, now: datetime | None = None) -> dict:
    """An objection (a row of _WITH_SOURCE) as the API, the CLI and the dashboard show it (times
    in Beijing time)."""
    now = _now(now)
    due = times.aware(o.due_at)
    return {"id": o.id, "record_id": o.record_id, "dataset": o.dataset_id, "version": o.version,
            "source_department": o.source_department, "department": o.department_id,
            "purpose": o.purpose, "reason": o.reason, "evidence": o.evidence, "state": o.state,
            "filed_at": _bj(o.filed_at), "due_at": _bj(due),
            "overdue": o.state in UNRESOLVED and now > due,
            "resolved_at": _bj(o.resolved_at), "resolved_by": o.resolved_by,
            "resolution": o.resolution, "corrected_version": o.corrected_version}


def _check_text(reason: str, evidence: str | None) -> tuple[str, str | None]:
    reason = (reason or "").strip()
    if not 1 <= len(reason) <= MAX_REASON:
        raise InvalidRequest(f"异议理由无效 (bad reason): the reason is 1 to {MAX_REASON} characters, "
                             f"not {len(reason)}; say what is wrong with the record")
    if evidence is not None:
        size = len(evidence.encode("utf-8"))
        if size > MAX_EVIDENCE:
            raise InvalidRequest(f"证据过长 (evidence too long): evidence is at most {MAX_EVIDENCE} bytes "
                                 f"(16 KB) of text, this is {size}; link to a longer document instead")
        evidence = evidence or None
    return reason, evidence


def record_of(engine: Engine, record_id: str) -> tuple[str, str, str, int | None]:
    """(dataset, holder key, source department, the dataset's current version) of a record."""
    record_id_ok(record_id)
    with engine.connect() as c:
        hit = c.execute(sa.select(Record.dataset_id, Record.holder_key, Dataset.department,
                                  Dataset.current_version)
                        .join(Dataset, Dataset.id == Record.dataset_id)
                        .where(Record.record_id == record_id)
                        .order_by(Record.version.desc()).limit(1)).first()
    if hit is None:
        raise NotFound(f"未找到记录 (no record): {record_id}; find record ids with a holder lookup")
    return hit[0], hit[1], hit[2], hit[3]


def days_for(c, department: str) -> int:
    """The working days `department` has to answer an objection (DEFAULT_DAYS without a setting)."""
    n = c.scalar(sa.select(Department.objection_days).where(Department.id == department))
    return n or DEFAULT_DAYS


def file(engine: Engine, access: Access, caller: Caller, purpose: str, record_id: str, reason: str,
         evidence: str | None = None, now: datetime | None = None) -> dict:
    """File the caller's objection to a record it may see for `purpose` (AccessDenied if not: the
    caller audits the refusal). Conflict while the same department has one unresolved on it."""
    check_purpose(purpose)
    reason, evidence = _check_text(reason, evidence)
    dataset, _, source, version = record_of(engine, record_id)
    access.require(caller.department, dataset, purpose)
    now = _now(now)
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":     # two at once from one department: one wins
            c.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                      {"k": f"objection:{record_id}:{caller.department}"})
        clash = c.execute(sa.select(Objection.id, Objection.state, Objection.filed_at).where(
            Objection.record_id == record_id, Objection.department_id == caller.department,
            Objection.state.in_(UNRESOLVED))).first()
        if clash is not None:
            raise Conflict(f"已有未结异议 (objection already open): objection #{clash[0]} of {caller.department} "
                           f"on record {record_id} is {clash[1]} since {_bj(clash[2])}; follow it with "
                           f"GET /v1/objections/{clash[0]}, or add to it once the source's steward answers")
        due = due_after(now, days_for(c, source))
        oid = c.execute(sa.insert(Objection.__table__).values(
            record_id=record_id, dataset_id=dataset, version=version or 0, department_id=caller.department,
            purpose=purpose, reason=reason, evidence=evidence, state="open", filed_at=now,
            due_at=due.astimezone(UTC))).inserted_primary_key[0]
    return get(engine, oid, now)


def get(engine: Engine, objection_id: int, now: datetime | None = None) -> dict:
    with engine.connect() as c:
        hit = c.execute(_WITH_SOURCE.where(Objection.id == objection_id)).first()
    if hit is None:
        raise NotFound(f"未找到异议 (no objection): #{objection_id}; list them with `exchange objections list`")
    return view(hit, now)


def _seen_by(engine: Engine, objection_id: int, key: str, department: str, whose: str,
             now: datetime | None) -> dict:
    """The objection if its `key` is `department`; else NotFound, like a missing one."""
    try:
        o = get(engine, objection_id, now)
    except NotFound:
        o = None
    if o is None or o[key] != department:
        raise NotFound(f"未找到异议 (no objection): #{objection_id} is not an objection {whose} {department}")
    return o


def get_for(engine: Engine, objection_id: int, department: str, now: datetime | None = None) -> dict:
    """An objection as its objector sees it: another department's is NotFound, like a missing one."""
    return _seen_by(engine, objection_id, "department", department, "of", now)


def get_as_source(engine: Engine, objection_id: int, department: str, now: datetime | None = None) -> dict:
    """An objection as a source department's steward sees it: one to another department's
    dataset is NotFound, like a missing one."""
    return _seen_by(engine, objection_id, "source_department", department, "to a dataset of", now)


def find(engine: Engine, dataset: str | None = None, department: str | None = None,
         state: str | None = None, overdue: bool = False, objector: str | None = None,
         now: datetime | None = None, limit: int = 500) -> list[dict]:
    """Objections, oldest deadline first: of a dataset, of the datasets of a source `department`,
    filed by an `objector`, in a `state` ('unresolved': open or correcting), only `overdue` ones."""
    now = _now(now)
    if state is not None and state not in (*STATES, "unresolved"):
        raise UnknownName("objection state", state, (*STATES, "unresolved"))
    q = _WITH_SOURCE
    if dataset:
        q = q.where(Objection.dataset_id == dataset)
    if department:
        q = q.where(Dataset.department == department)
    if objector:
        q = q.where(Objection.department_id == objector)
    if state == "unresolved":
        q = q.where(Objection.state.in_(UNRESOLVED))
    elif state:
        q = q.where(Objection.state == state)
    if overdue:
        q = q.where(Objection.state.in_(UNRESOLVED), Objection.due_at < now)
    with engine.connect() as c:
        rows = c.execute(q.order_by(Objection.due_at, Objection.id).limit(limit)).all()
    return [view(o, now) for o in rows]


def _later_state(c, record_id: str, dataset: str, after: int) -> int | None:
    """The first version after `after` that appended a state of the record (None: none yet)."""
    return c.scalar(sa.select(sa.func.min(Record.version)).where(
        Record.record_id == record_id, Record.dataset_id == dataset, Record.version > after))


def resolve(engine: Engine, objection_id: int, outcome: str, reason: str | None = None,
            by: str = "steward", now: datetime | None = None, source: str | None = None) -> dict:
    """The source's answer. `upheld` (a reason is required): the record stands, closed now.
    `corrected`: the record is being corrected at the source: `correcting` until a version
    appends a new state of it (closed then by close_corrected), or closed at once as corrected
    when a version after the one objected to already did. `source`: the answering steward's
    department; an objection to another department's dataset is NotFound, like a missing one."""
    if outcome not in OUTCOMES:
        raise UnknownName("outcome", outcome, OUTCOMES)
    reason = (reason or "").strip() or None
    if outcome == "upheld" and not reason:
        raise InvalidRequest("维持需说明理由 (upheld needs a reason): say why the record stands "
                             "(--reason TEXT); the objector is told it")
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidRequest(f"理由过长 (reason too long): at most {MAX_REASON} characters, not {len(reason)}")
    now = _now(now)
    t = Objection.__table__
    with engine.begin() as c:
        o = c.execute(sa.select(t).where(t.c.id == objection_id).with_for_update()).first()
        if o is not None and source is not None and source != c.scalar(
                sa.select(Dataset.department).where(Dataset.id == o.dataset_id)):
            raise NotFound(f"未找到异议 (no objection): #{objection_id} is not an objection to a dataset of {source}")
        if o is None:
            raise NotFound(f"未找到异议 (no objection): #{objection_id}; list them with `exchange objections list`")
        if o.state not in UNRESOLVED:
            raise Conflict(f"异议已结 (objection closed): objection #{objection_id} is already {o.state}"
                           + (f" (version {o.corrected_version})" if o.corrected_version else "")
                           + f" since {_bj(o.resolved_at)}; a new objection can be filed against the record")
        values: dict = {"resolved_by": by, "resolution": reason}
        if outcome == "upheld":
            values.update(state="upheld", resolved_at=now)
        else:
            later = _later_state(c, o.record_id, o.dataset_id, o.version)
            values.update(state="corrected", resolved_at=now, corrected_version=later) if later \
                else values.update(state="correcting")
        c.execute(sa.update(t).where(t.c.id == objection_id).values(**values))
    audit.append(engine, department=by[:128], purpose="administration", action="objection.resolve",
                 outcome="done", datasets=[o.dataset_id], subject=str(objection_id),
                 detail={"record_id": o.record_id, "outcome": outcome, "state": values["state"],
                         **({"corrected_version": values["corrected_version"]}
                            if values.get("corrected_version") else {})})
    return get(engine, objection_id, now)


def close_corrected(engine: Engine, dataset: str, version: int, now: datetime | None = None) -> list[int]:
    """After `version` of `dataset` committed: its correcting objections whose record has a state
    appended in a version after the one objected to, up to `version` (a version a crash kept
    from calling this is caught up by the next), are closed as corrected with that version.
    Cheap when none is correcting: one indexed look-up (ix_objections_dataset_state)."""
    t, r = Objection.__table__, Record.__table__
    with engine.begin() as c:
        waiting = c.execute(sa.select(t.c.id, t.c.record_id, t.c.version).where(
            t.c.dataset_id == dataset, t.c.state == "correcting")).all()
        if not waiting:
            return []
        now = _now(now)
        closed = []
        for oid, record_id, after in waiting:
            v = c.scalar(sa.select(sa.func.min(r.c.version)).where(
                r.c.record_id == record_id, r.c.dataset_id == dataset, r.c.version > after,
                r.c.version <= version))
            if v is None:
                continue
            done = c.execute(sa.update(t).where(t.c.id == oid, t.c.state == "correcting").values(
                state="corrected", corrected_version=v, resolved_at=now)).rowcount
            if done:
                closed.append(oid)
    for oid in closed:
        audit.append(engine, department="exchange", purpose="administration", action="objection.corrected",
                     outcome="done", datasets=[dataset], subject=str(oid), detail={"version": version})
    return closed


def claim_overdue(engine: Engine, now: datetime | None = None) -> list[dict]:
    """Unresolved objections past their deadline not yet alerted: each marked alerted here (one
    claim per objection, however many watchers run) and returned for the caller to alert."""
    now = _now(now)
    t = Objection.__table__
    with engine.begin() as c:
        due = c.execute(sa.select(t.c.id).where(t.c.state.in_(UNRESOLVED), t.c.due_at < now,
                                                t.c.overdue_alerted_at.is_(None)).order_by(t.c.id)).scalars().all()
        claimed = [i for i in due if c.execute(sa.update(t).where(
            t.c.id == i, t.c.overdue_alerted_at.is_(None)).values(overdue_alerted_at=now)).rowcount]
    return [get(engine, i, now) for i in claimed]


def set_days(engine: Engine, department: str, days: int, actor: str = "operator") -> dict:
    """How many working days `department` has to answer an objection filed against its datasets."""
    check_department_id(department)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"天数超出范围 (days out of range): 1 to {MAX_DAYS} working days, not {days}")
    with engine.begin() as c:
        done = c.execute(sa.update(Department.__table__).where(Department.id == department)
                         .values(objection_days=days)).rowcount
    if not done:
        raise NotFound(f"未找到部门 (no department): {department!r}; add it first with "
                       f"`exchange departments add {department} NAME`")
    audit.append(engine, department=actor, purpose="administration", action="department.objection_days",
                 outcome="done", subject=department, detail={"days": days})
    return {"department": department, "objection_days": days}
