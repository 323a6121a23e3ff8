"""What a record's status is, and since when (docs/verification.md, "Record status").

Status of a copy of a record (a bundle), first match wins:
  withdrawn   the record is not in the dataset's current version (gone from its source)
  revoked     the source's status is not "valid" (revoked, cancelled, suspended: see `reason`)
  expired     valid, but its current valid_to is past
  superseded  valid, but the copy's content differs from the current version's (a newer version)
  valid
and, beside the status, `disputed` (`disputes` says which, each with its `kind`):
  quarantine  the source still has the record but its rows were all quarantined, so the
              published state was carried into the new version unchanged; disputed until a
              steward reviews the quarantined rows;
  objection   a consuming department objected to the record (数据异议, catalog/serving/objections.py)
              and the source's steward has not yet closed it (state open or correcting).
A copy (version, leaf hash) the exchange never published is refused: UnknownCopy (404).

A record's history (added, amended, revoked, reinstated, withdrawn) comes from its `records`
rows, read by the primary key: after its dataset's `log_from` every row is a state the log
appended, and its change follows from the state it superseded (`change`: the row with
`superseded_in` = its version; none: the record was new). The versions up to `log_from` (before
the log, one row per record per version) keep theirs in `record_events`, which nothing writes
any more; rows an earlier publish wrote there for later versions are not read (the states say
the same).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from base import clock, times
from base.errors import UnknownCopy
from base.storage import Store
from catalog.db.models import Dataset, DatasetVersion, Objection, QuarantineEntry, Record, RecordEvent
from catalog.signing.merkle import MerkleTree

STATUSES = ("valid", "expired", "revoked", "withdrawn", "superseded")
CHANGES = ("added", "amended", "revoked", "reinstated", "withdrawn")


WITHDRAWN = "withdrawn"   # carried into a version by the snapshot diff (catalog/publish/changes.py)


def standing(source_status: str, valid_to: date | None, today: date) -> str:
    """valid | expired | revoked | withdrawn, from the record's status and its validity end."""
    if source_status == WITHDRAWN:
        return WITHDRAWN
    if source_status != "valid":
        return "revoked"
    return "expired" if valid_to is not None and valid_to < today else "valid"


def _reason(source_status: str) -> str | None:
    return None if source_status == "valid" else source_status


GONE = "gone from the source"


def change(status: str, old_status: str | None) -> tuple[str, str, str | None] | None:
    """(change, standing from then on, reason) of a record state appended with source `status`
    over one with `old_status` (None: the record was not in the state), or None: no change to
    tell (a withdrawn record stays withdrawn)."""
    if status == WITHDRAWN:
        return None if old_status == WITHDRAWN else ("withdrawn", WITHDRAWN, GONE)
    if old_status is None:
        kind = "added"
    elif status == old_status:
        kind = "amended"
    else:
        kind = "revoked" if status != "valid" else "reinstated"
    return kind, "valid" if status == "valid" else "revoked", _reason(status)


@dataclass(frozen=True)
class Event:
    version: int
    change: str
    status: str
    reason: str | None
    at: datetime | None


def _log_events(states: list[State], log_from: int | None) -> list[Event]:
    """The changes of the record's states appended after `log_from` (a dataset's first version
    has none: there is no state before it)."""
    if log_from is None:
        return []
    replaced = {x.row.superseded_in: x.row for x in states if x.row.superseded_in is not None}
    out = []
    for x in states:
        v = x.row.version
        if v <= log_from:
            continue
        old = replaced.get(v)
        hit = change(x.row.status, old.status if old is not None else None)
        if hit is not None:
            out.append(Event(v, *hit, x.at))
    return out


def _iso(t) -> str | None:
    """A time with its offset; a date as it is."""
    return None if t is None else times.iso(t) if isinstance(t, datetime) else t.isoformat()


def record_status(s: Session, store: Store, record_id: str, version: int | None = None,
                  leaf_hash: str | None = None, today: date | None = None) -> dict | None:
    """Status of a record (of the copy at `version` with `leaf_hash`, if given), since when and why,
    with its history; `store` holds the versions' files. None if the record was never published."""
    today = today or clock.today()
    rows = s.execute(sa.select(Record, DatasetVersion.path, DatasetVersion.published_at).join(
        DatasetVersion, sa.and_(DatasetVersion.dataset_id == Record.dataset_id,
                                DatasetVersion.version == Record.version))
        .where(Record.record_id == record_id).order_by(Record.version)).all()
    if not rows:
        return None
    states = [State(r, path, at) for r, path, at in rows]
    rec = next((x for x in states if x.row.superseded_in is None), states[-1]).row
    current, log_from = s.execute(sa.select(Dataset.current_version, Dataset.log_from)
                                  .where(Dataset.id == rec.dataset_id)).one()
    gone = rec.superseded_in is not None          # before the log: not in the current version
    events = _stored_events(s, record_id, log_from) + _log_events(states, log_from)
    first, first_at = states[0].row.version, states[0].at
    holding = rec.version if gone else current
    current_leaf = _state_at(states, holding).leaf(store)
    copy_version, copy_leaf = _copy(store, states, rec, holding, current, events, version, leaf_hash, current_leaf)
    history = [{"version": first, "change": "added", "status": standing(_first_status(rec, events), None, date.min),
                "at": _iso(first_at)}] if not any(e.change == "added" and e.version == first for e in events) else []
    history += [{"version": e.version, "change": e.change, "status": e.status, "reason": e.reason,
                 "at": _iso(e.at)} for e in events]

    def since(changes) -> str | None:
        hits = [h for h in history if h["change"] in changes]
        return hits[-1]["at"] if hits else history[0]["at"]

    out = {"record_id": record_id, "dataset": rec.dataset_id, "current_version": holding,
           "reason": None, **dispute(s, record_id, rec.dataset_id), "history": history}
    if gone or rec.status == WITHDRAWN:
        out.update(status="withdrawn", since=since({"withdrawn"}), reason=GONE)
        return out
    st = standing(rec.status, rec.valid_to, today)
    if st == "revoked":
        out.update(status="revoked", since=since({"added", "revoked"}), reason=rec.status)
    elif st == "expired":
        out.update(status="expired", since=(rec.valid_to + timedelta(days=1)).isoformat())
    elif copy_leaf != current_leaf:
        later = [e for e in events if e.version > copy_version]
        out.update(status="superseded", since=_iso(later[0].at) if later else None,
                   reason=f"version {holding} holds a newer copy of this record")
    else:
        out.update(status="valid", since=since({"added", "reinstated"}))
    return out


def _stored_events(s: Session, record_id: str, log_from: int | None) -> list[Event]:
    """The record's `record_events` rows of the versions up to `log_from` (all, for a dataset
    not yet on the log); an event's time is its version's publication (migration 0020). A
    dataset on the log from its first version has none (a first version has no changes)."""
    if log_from is not None and log_from <= 1:
        return []
    ev = RecordEvent.__table__.c
    q = (sa.select(ev.version, ev.change, ev.status, ev.reason, DatasetVersion.published_at)
         .join(DatasetVersion, sa.and_(DatasetVersion.dataset_id == ev.dataset_id,
                                       DatasetVersion.version == ev.version))
         .where(ev.record_id == record_id).order_by(ev.version, ev.id))
    if log_from is not None:
        q = q.where(ev.version <= log_from)
    return [Event(*r) for r in s.execute(q)]


class State:
    """One index row of a record (a state appended to the log, or a version's copy from before
    the log), its version's folder and publication time."""

    def __init__(self, row: Record, path: str, at: datetime | None = None):
        self.row, self.path, self.at = row, path, at

    def holds_at(self, version: int) -> bool:
        end = self.row.superseded_in
        return self.row.version <= version and (end is None or version < end)

    def leaf(self, store: Store) -> str:
        """The state's leaf hash: the index's, or (before the log) its version's tree.bin's."""
        if self.row.leaf_hash:
            return self.row.leaf_hash
        return MerkleTree.open_in(store.sub(self.path), "tree.bin").leaf(self.row.leaf_index).hex()


def _state_at(states: list[State], version: int) -> State | None:
    return next((x for x in reversed(states) if x.holds_at(version)), None)


def _copy(store: Store, states: list[State], rec: Record, holding: int, current: int | None, events,
          version: int | None, leaf_hash: str | None, current_leaf: str) -> tuple[int, str]:
    """(version, leaf hash) of the copy asked about: one the exchange published, else UnknownCopy.
    No version and no leaf hash: the current copy. A leaf hash alone: the latest version that
    made it the record's content."""
    first = states[0].row.version
    if version is None and leaf_hash is None:
        return holding, current_leaf
    if version is not None:
        at = _state_at(states, version) if version <= (current or 0) else None
        if at is None:
            raise UnknownCopy(f"unknown copy: version {version} of {rec.dataset_id} does not hold record "
                              f"{rec.record_id} (it is in versions {first} to {holding})")
        leaf = at.leaf(store)
        if leaf_hash is not None and leaf_hash != leaf:
            raise UnknownCopy(f"unknown copy: version {version} holds record {rec.record_id} with leaf hash "
                              f"{leaf}, not {leaf_hash}: the exchange never published that copy")
        return version, leaf
    for x in reversed(states):
        if x.leaf(store) == leaf_hash:
            return x.row.version, leaf_hash
    raise UnknownCopy(f"unknown copy: the exchange never published record {rec.record_id} with leaf "
                      f"hash {leaf_hash}")


UNRESOLVED = ("open", "correcting")       # an objection's states while the record is disputed


def dispute(s: Session, record_id: str, dataset: str) -> dict:
    """disputed, why in words (`dispute`) and each reason (`disputes`): the record's rows held in
    quarantine (the source still has it, but every row of it was quarantined, so the published
    state was carried unchanged: catalog/publish/changes.py) until a steward reviews them; and
    objections to it (数据异议) not yet closed by the source's steward."""
    rows = s.execute(sa.select(QuarantineEntry.key, QuarantineEntry.reasons).where(
        QuarantineEntry.held_record_id == record_id, QuarantineEntry.state == "open")).all()
    objected = s.execute(sa.select(Objection.id, Objection.filed_at, Objection.department_id).where(
        Objection.record_id == record_id, Objection.state.in_(UNRESOLVED)).order_by(Objection.id)).all()
    if not rows and not objected:
        return {"disputed": False, "dispute": None, "disputes": []}
    said, disputes = [], []
    if rows:
        reasons = sorted({r for _, rs in rows for r in rs or ()})
        said.append(f"held as published: {len(rows)} row(s) of the source with licence number {rows[0][0]} are "
                    f"in quarantine ({', '.join(reasons)}); a steward decides: `exchange quarantine {dataset}`")
        disputes.append({"kind": "quarantine", "rows": len(rows), "reasons": reasons})
    if objected:
        ids = [i for i, _, _ in objected]
        since = _iso(times.aware(objected[0][1]))
        said.append(f"数据异议 (objected to): objection(s) {', '.join(f'#{i}' for i in ids)} since {since}, "
                    f"by {', '.join(sorted({d for _, _, d in objected}))}; the source's steward answers: "
                    f"`exchange objections list --dataset {dataset}`")
        disputes.append({"kind": "objection", "objections": ids, "since": since})
    return {"disputed": True, "dispute": "; ".join(said), "disputes": disputes}


def _first_status(rec: Record, events) -> str:
    """The source status the record had when first published (before any event)."""
    for e in events:
        if e.change in ("revoked", "reinstated"):
            return "valid" if e.change == "revoked" else "revoked"
    return rec.status
