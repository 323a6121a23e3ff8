"""Turning changes into notices owed to subscribers (docs/consumer-api.md, "Subscriptions and
change notices"). Runs in Airflow tasks (they hold the signing key), never in a request.

fan_out   a dataset's versions after NoticeProgress.version: each version's appended record
          states beside the states they superseded give the change (catalog/publish/status.py;
          `corrected` for an amendment that closed an objection, catalog/serving/objections.py);
          every active subscription that matches (the dataset, or the record's holder) and whose
          grant allows it gets a Notice of the event seen through its fields. One transaction per
          version, with the progress: re-running adds nothing. Cost: the changed records of a
          version with subscribers (its own log segment), nothing for one without.
expiries  valid records of subscribed datasets/holders whose valid_to fell since the last pass.
objection_outcomes  corrected/upheld objections not yet told to their objector.
A subscription hears of versions published after it was made; versions from before the log
(no log segment) are not told.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from base import clock
from catalog.db.models import (
    Dataset,
    DatasetVersion,
    Notice,
    NoticeEvent,
    NoticeProgress,
    Objection,
    Record,
    Subscription,
)
from catalog.publish import status as statuses
from catalog.publish import store as version_store
from catalog.service import Catalog
from catalog.serving.access import Access
from catalog.serving.notice_events import Built, Signer, objection_event, record_event
from catalog.signing.keys import KeyStore

CHUNK = 500
WHOLE_SEGMENT = 64         # more wanted records than this: read the version's segment whole
FLUSH = 20_000             # notices held before they are written (in the version's transaction)
MANY_HOLDERS = 200         # more holders subscribed than this: read a version's changes whole, not per holder
_n, _e, _s, _r = Notice.__table__.c, NoticeEvent.__table__.c, Subscription.__table__.c, Record.__table__.c


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


@dataclass
class _Sub:
    id: int
    department: str
    kind: str
    dataset: str | None
    holder: str | None
    purpose: str
    created_at: datetime


@dataclass
class _Batch:
    """The events and notices of one version (or one pass), written together."""
    events: dict[str, Built] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    notices: dict[tuple[str, str], dict] = field(default_factory=dict)

    def add(self, built: Built, meta: dict, sub: _Sub, holder: str | None, now: datetime) -> None:
        self.events.setdefault(built.event_id, built)
        self.meta.setdefault(built.event_id, meta)
        self.notices.setdefault((sub.department, built.event_id), dict(
            department_id=sub.department, event_id=built.event_id, subscription_id=sub.id, objection_id=None,
            holder_key=holder, purpose=sub.purpose, state="pending", attempts=0, created_at=now,
            next_attempt_at=now))

    def write(self, c: Connection, now: datetime) -> int:
        ids = list(self.events)
        known: set[str] = set()
        for i in range(0, len(ids), CHUNK):
            known |= set(c.scalars(sa.select(_e.event_id).where(_e.event_id.in_(ids[i:i + CHUNK]))))
        fresh = [dict(event_id=b.event_id, type=b.type, body=b.body, signature=b.signature, created_at=now,
                      **self.meta[b.event_id]) for b in self.events.values() if b.event_id not in known]
        if fresh:
            c.execute(sa.insert(NoticeEvent.__table__), fresh)
        rows = list(self.notices.values())
        if known:       # defensive: an event already stored is not owed twice to the same department
            owed = set()
            for i in range(0, len(rows), CHUNK):
                part = rows[i:i + CHUNK]
                owed |= {(r.department_id, r.event_id) for r in c.execute(sa.select(_n.department_id, _n.event_id)
                         .where(_n.event_id.in_({r["event_id"] for r in part})))}
            rows = [r for r in rows if (r["department_id"], r["event_id"]) not in owed]
        if rows:
            c.execute(sa.insert(Notice.__table__), rows)
        self.events, self.meta, self.notices = {}, {}, {}
        return len(rows)


def _active_subs(c: Connection, now: datetime, dataset: str | None) -> list[_Sub]:
    live = [_s.revoked_at.is_(None), _s.expires_at > now]
    where = sa.or_(_s.kind == "holder", _s.dataset_id == dataset) if dataset else sa.true()
    return [_Sub(r.id, r.department_id, r.kind, r.dataset_id, r.holder_key, r.purpose, _aware(r.created_at))
            for r in c.execute(sa.select(_s.id, _s.department_id, _s.kind, _s.dataset_id, _s.holder_key, _s.purpose,
                                         _s.created_at).where(*live, where).order_by(_s.id))]


class _Decisions:
    """Access decisions of one pass, asked once per department x dataset x purpose."""

    def __init__(self, access: Access):
        self.access, self.seen = access, {}

    def fields(self, sub: _Sub, dataset: str):
        k = (sub.department, dataset, sub.purpose)
        if k not in self.seen:
            d = self.access.decide(sub.department, dataset, sub.purpose)
            self.seen[k] = (d.allowed, d.fields)
        return self.seen[k]


def _lock_progress(c: Connection, dataset: str, now: datetime) -> dict | None:
    """The dataset's progress row, locked for the transaction (FOR UPDATE; on SQLite a no-op
    write first takes the database's write lock); None: no row yet."""
    p = NoticeProgress.__table__
    if c.dialect.name == "sqlite":
        c.execute(sa.update(p).where(p.c.dataset_id == dataset).values(version=p.c.version))
    row = c.execute(sa.select(p).where(p.c.dataset_id == dataset).with_for_update()).mappings().first()
    return dict(row) if row else None


def _save_progress(c: Connection, dataset: str, now: datetime, had: dict | None, **values) -> None:
    p = NoticeProgress.__table__
    if had is None:
        c.execute(sa.insert(p).values(dataset_id=dataset, version=values.pop("version", 0), updated_at=now,
                                      expired_through=values.pop("expired_through", None)))
    elif values:
        c.execute(sa.update(p).where(p.c.dataset_id == dataset).values(updated_at=now, **values))


def _ensure_progress(engine, dataset: str, now: datetime) -> None:
    p = NoticeProgress.__table__
    with engine.connect() as c:
        if c.scalar(sa.select(p.c.version).where(p.c.dataset_id == dataset)) is not None:
            return
    try:
        with engine.begin() as c:
            c.execute(sa.insert(p).values(dataset_id=dataset, version=0, updated_at=now))
    except IntegrityError:
        pass             # another pass made it first


def fan_out(catalog: Catalog, keys: KeyStore, dataset: str, now: datetime | None = None,
            access: Access | None = None) -> int:
    """Notices for the dataset's versions not yet fanned out; returns how many were owed."""
    now = now or clock.now()
    access = access or Access(catalog.engine, ttl=60)
    signer = keys.pinned()
    with catalog.engine.connect() as c:
        current = c.scalar(sa.select(Dataset.current_version).where(Dataset.id == dataset))
        done = c.scalar(sa.select(NoticeProgress.version).where(NoticeProgress.dataset_id == dataset))
        if current is None or (done is not None and done >= current):
            return 0
        subs = _active_subs(c, now, dataset)
    _ensure_progress(catalog.engine, dataset, now)
    if not subs:          # nobody to tell: the versions are passed over unread
        with catalog.engine.begin() as c:
            progress = _lock_progress(c, dataset, now)
            _save_progress(c, dataset, now, progress, version=max(current, progress["version"] if progress else 0))
        return 0
    decisions, total = _Decisions(access), 0
    while True:
        with catalog.engine.begin() as c:
            progress = _lock_progress(c, dataset, now)
            done = progress["version"] if progress else 0
            v = c.execute(sa.select(DatasetVersion.version, DatasetVersion.path, DatasetVersion.first_leaf,
                                    DatasetVersion.published_at)
                          .where(DatasetVersion.dataset_id == dataset, DatasetVersion.version > done)
                          .order_by(DatasetVersion.version).limit(1)).first()
            if v is None:
                return total
            at = _aware(v.published_at)
            vsubs = [s for s in subs if s.created_at < at]
            if vsubs and v.first_leaf is not None:
                batch = _Batch()
                total += _version(catalog, signer, c, dataset, v, at, vsubs, decisions, batch, now)
                total += batch.write(c, now)
            _save_progress(c, dataset, now, progress, version=v.version)


def _version(catalog: Catalog, keys: Signer, c: Connection, dataset: str, v, at: datetime, subs: list[_Sub],
             decisions: _Decisions, batch: _Batch, now: datetime) -> int:
    """The version's notices into `batch`, written a part at a time (memory stays flat however many
    subscribers); returns how many were written here (the rest: by the caller's write)."""
    by_dataset = [s for s in subs if s.kind == "dataset"]
    by_holder: dict[str, list[_Sub]] = {}
    for s in subs:
        if s.kind == "holder" and s.holder:
            by_holder.setdefault(s.holder, []).append(s)
    if by_dataset or len(by_holder) > MANY_HOLDERS:     # the version's log segment: exactly its appended states
        files = catalog.store.sub(v.path)
        ids = version_store.records_file(files).read(columns=["record_id"]).column(0).to_pylist()
        states = _states(c, dataset, v.version, ids)
    else:
        states = []
        for holder in sorted(by_holder):
            prefix = version_store.holder_prefix(holder)
            states += c.execute(sa.select(_r.record_id, _r.leaf_index, _r.holder_key, _r.status, _r.valid_to).where(
                _r.record_id >= prefix, _r.record_id < prefix + "g", _r.version == v.version,
                _r.dataset_id == dataset, _r.holder_key == holder)).all()
    if not states:
        return 0
    old = _old_status(c, v.version, [s.record_id for s in states])
    corrected = _corrected(c, dataset, v.version)
    wanted = []
    for st in states:
        hit = statuses.change(st.status, old.get(st.record_id))
        if hit is None:
            continue
        if hit[0] == "amended" and st.record_id in corrected:     # an objection this version closed
            hit = ("corrected", *hit[1:])
        who = by_dataset + by_holder.get(st.holder_key, [])
        seen = [(s, decisions.fields(s, dataset)) for s in who]
        seen = [(s, f) for s, (ok, f) in seen if ok]
        if seen:
            wanted.append((st, hit, seen))
    records = _records(catalog, v, [st.leaf_index for st, _, _ in wanted])
    written = 0
    for st, (change, standing, reason), seen in wanted:
        if len(batch.notices) >= FLUSH:
            written += batch.write(c, now)
        record, views = records[st.leaf_index], {}
        for sub, fields in seen:          # one event (one signature) per view, shared by its subscribers
            if fields not in views:
                views[fields] = record_event(keys, dataset=dataset, record_id=st.record_id, version=v.version,
                                             change=change, status=standing, reason=reason, record=record,
                                             fields=fields, at=at)
            batch.add(views[fields], {"dataset_id": dataset, "record_id": st.record_id, "version": v.version},
                      sub, st.holder_key, now)
    return written


def _corrected(c: Connection, dataset: str, version: int) -> set[str]:
    """Records whose objection (数据异议) the version closed as corrected at the source."""
    o = Objection.__table__.c
    return set(c.scalars(sa.select(o.record_id).where(o.dataset_id == dataset, o.corrected_version == version)))


def _states(c: Connection, dataset: str, version: int, ids: list[str]) -> list:
    out = []
    for i in range(0, len(ids), CHUNK):
        out += c.execute(sa.select(_r.record_id, _r.leaf_index, _r.holder_key, _r.status, _r.valid_to).where(
            _r.record_id.in_(ids[i:i + CHUNK]), _r.version == version, _r.dataset_id == dataset)).all()
    return sorted(out, key=lambda r: r.leaf_index)


def _old_status(c: Connection, version: int, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(ids), CHUNK):
        out.update((r.record_id, r.status) for r in c.execute(sa.select(_r.record_id, _r.status).where(
            _r.record_id.in_(ids[i:i + CHUNK]), _r.superseded_in == version)))
    return out


def _records(catalog: Catalog, v, leaves: Iterable[int]) -> dict[int, dict]:
    """The record content of the version's states at these log leaves: one row group each for a
    few, the version's segment read once for many."""
    from trust.canonical import to_json_record

    leaves = sorted(set(leaves))
    files = catalog.store.sub(v.path)
    if len(leaves) <= WHOLE_SEGMENT:
        return {i: version_store.read_record(files, i - v.first_leaf) for i in leaves}
    table = version_store.records_file(files).read()
    rows = table.take([i - v.first_leaf for i in leaves]).to_pylist()
    return {i: to_json_record(r) for i, r in zip(leaves, rows, strict=True)}


# --- expiries --------------------------------------------------------------------------------
def expiries(catalog: Catalog, keys: KeyStore, today: date | None = None, now: datetime | None = None,
             access: Access | None = None) -> int:
    """`expired` notices for valid records of subscribed datasets or holders whose valid_to fell
    in (expired_through, today - 1]: a record turns expired the day after its valid_to, with no
    new version. The first pass of a dataset starts at today - 1 (no backfill)."""
    today, now = today or clock.today(), now or clock.now()
    access = access or Access(catalog.engine, ttl=60)
    decisions, total, signer = _Decisions(access), 0, keys.pinned()
    through = today - timedelta(days=1)
    with catalog.engine.connect() as c:
        subs = _active_subs(c, now, None)
        datasets = set(c.scalars(sa.select(Dataset.id).where(Dataset.current_version.is_not(None))))
    named = {s.dataset for s in subs if s.kind == "dataset"}
    holders = {s.holder for s in subs if s.kind == "holder"}
    for dataset in sorted(datasets if holders else named & datasets):
        _ensure_progress(catalog.engine, dataset, now)
        with catalog.engine.begin() as c:
            progress = _lock_progress(c, dataset, now)
            start = progress["expired_through"] if progress else None
            if start is None or start >= through:
                if start is None:
                    _save_progress(c, dataset, now, progress, expired_through=through)
                continue
            dsubs = [s for s in subs if s.kind == "dataset" and s.dataset == dataset]
            hsubs = [s for s in subs if s.kind == "holder"]
            ver = c.execute(sa.select(DatasetVersion.version, DatasetVersion.path, DatasetVersion.first_leaf)
                            .join(Dataset, sa.and_(Dataset.id == DatasetVersion.dataset_id,
                                                   Dataset.current_version == DatasetVersion.version))
                            .where(Dataset.id == dataset)).first()
            where = [_r.dataset_id == dataset, _r.superseded_in.is_(None), _r.status == "valid",
                     _r.valid_to > start, _r.valid_to <= through]
            if dsubs or len({s.holder for s in hsubs}) > MANY_HOLDERS:
                rows = c.execute(sa.select(_r.record_id, _r.version, _r.leaf_index, _r.holder_key, _r.valid_to)
                                 .where(*where).order_by(_r.valid_to, _r.record_id)).all()
            else:                # each holder's records by their record-id prefix (the primary key)
                rows = []
                for holder in sorted({s.holder for s in hsubs if s.holder}):
                    prefix = version_store.holder_prefix(holder)
                    rows += c.execute(sa.select(_r.record_id, _r.version, _r.leaf_index, _r.holder_key, _r.valid_to)
                                      .where(*where, _r.record_id >= prefix, _r.record_id < prefix + "g",
                                             _r.holder_key == holder)).all()
                rows.sort(key=lambda r: (r.valid_to, r.record_id))
            batch = _Batch()
            for row in rows:
                who = dsubs + [s for s in hsubs if s.holder == row.holder_key]
                seen = [(s, decisions.fields(s, dataset)) for s in who]
                seen = [(s, f) for s, (ok, f) in seen if ok]
                if not seen or ver is None:
                    continue
                record, views = _state_record(catalog, c, dataset, row), {}
                valid_to = row.valid_to if isinstance(row.valid_to, date) else date.fromisoformat(row.valid_to)
                at = datetime.combine(valid_to + timedelta(days=1), time(0), clock.BEIJING)   # the day it turned
                for sub, fields in seen:
                    if fields not in views:
                        views[fields] = record_event(signer, dataset=dataset, record_id=row.record_id,
                                                     version=ver.version, change="expired", status="expired",
                                                     reason=None, record=record, fields=fields, at=at)
                    built = views[fields]
                    batch.add(built, {"dataset_id": dataset, "record_id": row.record_id, "version": ver.version},
                              sub, row.holder_key, now)
            total += batch.write(c, now)
            _save_progress(c, dataset, now, progress, expired_through=through)
    return total


def _state_record(catalog: Catalog, c: Connection, dataset: str, row) -> dict:
    """The content of a record's current state (the version that appended it)."""
    v = c.execute(sa.select(DatasetVersion.path, DatasetVersion.first_leaf).where(
        DatasetVersion.dataset_id == dataset, DatasetVersion.version == row.version)).one()
    return version_store.read_record(catalog.store.sub(v.path), row.leaf_index - (v.first_leaf or 0))


# --- objection outcomes ----------------------------------------------------------------------
def objection_outcomes(catalog: Catalog, keys: KeyStore, now: datetime | None = None) -> int:
    """A notice to the objector of each objection corrected or upheld and not yet told."""
    now = now or clock.now()
    o = Objection.__table__.c
    total = 0
    with catalog.engine.begin() as c:
        rows = c.execute(sa.select(Objection.__table__).where(o.state.in_(("corrected", "upheld")),
                                                              o.notified_at.is_(None))
                         .order_by(o.id).with_for_update(skip_locked=True)).all()
        if not rows:
            return 0
        holders = {h.record_id: h.holder_key for h in c.execute(sa.select(_r.record_id, _r.holder_key).where(
            _r.record_id.in_({r.record_id for r in rows})))}
        batch = _Batch()
        for r in rows:
            resolved = _aware(r.resolved_at or now)
            built = objection_event(keys, objection_id=r.id, record_id=r.record_id, dataset=r.dataset_id,
                                    state=r.state, resolution=r.resolution, corrected_version=r.corrected_version,
                                    resolved_at=resolved, at=resolved)
            sub = _Sub(0, r.department_id, "objection", r.dataset_id, None, r.purpose, now)
            batch.add(built, {"dataset_id": r.dataset_id, "record_id": r.record_id, "version": r.corrected_version},
                      sub, holders.get(r.record_id), now)
            batch.notices[(r.department_id, built.event_id)].update(subscription_id=None, objection_id=r.id)
        total = batch.write(c, now)
        c.execute(sa.update(Objection.__table__).where(o.id.in_([r.id for r in rows])).values(notified_at=now))
    return total
