"""What a record's status is, and since when (docs/verification.md, "Record status").

Status of a copy of a record (a bundle), first match wins:
  withdrawn   the record is not in the dataset's current version (gone from its source)
  revoked     the source's status is not "valid" (revoked, cancelled, suspended: see `reason`)
  expired     valid, but its current valid_to is past
  superseded  valid, but the copy's content differs from the current version's (a newer version)
  valid
and, beside the status, `disputed`: the source still has the record but its rows were all
quarantined, so the published state was carried into the new version unchanged; it stays
disputed until a steward reviews the quarantined rows.
A copy (version, leaf hash) the exchange never published is refused: UnknownCopy (404).
The publish path calls `record_changes` inside the version's transaction: it diffs the new
version against the previous one and stores one `record_events` row per changed record.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.orm import Session

from base import clock, times
from base.errors import UnknownCopy
from base.storage import Store
from catalog.db.models import Dataset, DatasetVersion, QuarantineEntry, Record, RecordEvent
from catalog.publish.store import version_leaves
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


def diff_versions(prev_dir: Store | None, new_dir: Store) -> list[dict]:
    """The records that changed from the previous version to the new one, as event rows."""
    if prev_dir is None:
        return []  # first appearances in version 1 are read from the records index
    old, new = version_leaves(prev_dir), version_leaves(new_dir)
    joined = new.join(old, "record_id", join_type="full outer", left_suffix="_new", right_suffix="_old",
                      coalesce_keys=True)
    changed = pc.invert(pc.fill_null(pc.equal(joined["leaf_new"], joined["leaf_old"]), False))
    events = []
    for r in joined.filter(changed).to_pylist():
        if r["leaf_new"] is None or (r["status_new"] == WITHDRAWN and r["status_old"] != WITHDRAWN):
            events.append({"record_id": r["record_id"], "change": "withdrawn", "status": "withdrawn",
                           "reason": "gone from the source", "leaf_hash": None})
            continue
        if r["leaf_old"] is None:
            change = "added"
        elif r["status_new"] == r["status_old"]:
            change = "amended"
        else:
            change = "revoked" if r["status_new"] != "valid" else "reinstated"
        events.append({"record_id": r["record_id"], "change": change,
                       "status": "valid" if r["status_new"] == "valid" else "revoked",
                       "reason": _reason(r["status_new"]), "leaf_hash": r["leaf_new"].hex()})
    return events


def record_changes(s: Session, dataset: str, version: int, prev_dir: Store | None, new_dir: Store,
                   at: datetime) -> int:
    """Store the events of a new version (called by Catalog.publish in its transaction).
    Returns how many records changed."""
    events = diff_versions(prev_dir, new_dir)
    if events:          # Core's executemany: the ORM's bulk insert costs ~50 µs a row more
        s.connection().execute(RecordEvent.__table__.insert(),
                               [{**e, "dataset_id": dataset, "version": version, "at": at} for e in events])
    return len(events)


def _iso(t) -> str | None:
    """A time with its offset; a date as it is."""
    return None if t is None else times.iso(t) if isinstance(t, datetime) else t.isoformat()


def record_status(s: Session, store: Store, record_id: str, version: int | None = None,
                  leaf_hash: str | None = None, today: date | None = None) -> dict | None:
    """Status of a record (of the copy at `version` with `leaf_hash`, if given), since when and why,
    with its history; `store` holds the versions' files. None if the record was never published."""
    today = today or clock.today()
    hit = s.execute(sa.select(Record, DatasetVersion, Dataset.current_version).join(
        DatasetVersion, sa.and_(DatasetVersion.dataset_id == Record.dataset_id,
                                DatasetVersion.version == Record.version))
        .join(Dataset, Dataset.id == Record.dataset_id)
        .where(Record.record_id == record_id).order_by(Record.version.desc()).limit(1)).first()
    if hit is None:
        return None
    rec, ver, current = hit
    events = s.scalars(sa.select(RecordEvent).where(RecordEvent.record_id == record_id)
                       .order_by(RecordEvent.version, RecordEvent.id)).all()
    first = s.scalar(sa.select(sa.func.min(Record.version)).where(Record.record_id == record_id))
    first_at = s.scalar(sa.select(DatasetVersion.published_at).where(
        DatasetVersion.dataset_id == rec.dataset_id, DatasetVersion.version == first))
    current_leaf = _leaf(store, ver.path, rec.leaf_index)
    copy_version, copy_leaf = _copy(s, store, rec, first, events, version, leaf_hash, current_leaf)
    history = [{"version": first, "change": "added", "status": standing(_first_status(rec, events), None, date.min),
                "at": _iso(first_at)}] if not any(e.change == "added" and e.version == first for e in events) else []
    history += [{"version": e.version, "change": e.change, "status": e.status, "reason": e.reason,
                 "at": _iso(e.at)} for e in events]

    def since(changes) -> str | None:
        hits = [h for h in history if h["change"] in changes]
        return hits[-1]["at"] if hits else history[0]["at"]

    out = {"record_id": record_id, "dataset": rec.dataset_id, "current_version": rec.version,
           "reason": None, **dispute(s, record_id, rec.dataset_id), "history": history}
    if rec.version < (current or 0) or rec.status == WITHDRAWN:
        out.update(status="withdrawn", since=since({"withdrawn"}), reason="gone from the source")
        return out
    st = standing(rec.status, rec.valid_to, today)
    if st == "revoked":
        out.update(status="revoked", since=since({"added", "revoked"}), reason=rec.status)
    elif st == "expired":
        out.update(status="expired", since=(rec.valid_to + timedelta(days=1)).isoformat())
    elif copy_leaf != current_leaf:
        later = [e for e in events if e.version > copy_version]
        out.update(status="superseded", since=_iso(later[0].at) if later else None,
                   reason=f"version {rec.version} holds a newer copy of this record")
    else:
        out.update(status="valid", since=since({"added", "reinstated"}))
    return out


def _leaf(store: Store, key: str, leaf_index: int) -> str:
    return MerkleTree.open_in(store.sub(key), "tree.bin").leaf(leaf_index).hex()


def _leaf_at(s: Session, store: Store, record_id: str, version: int) -> str | None:
    """The record's leaf hash in `version`, None if that version does not hold it."""
    hit = s.execute(sa.select(Record.leaf_index, DatasetVersion.path).join(
        DatasetVersion, sa.and_(DatasetVersion.dataset_id == Record.dataset_id,
                                DatasetVersion.version == Record.version))
        .where(Record.record_id == record_id, Record.version == version)).first()
    return None if hit is None else _leaf(store, hit.path, hit.leaf_index)


def _copy(s: Session, store: Store, rec: Record, first: int, events, version: int | None, leaf_hash: str | None,
          current_leaf: str) -> tuple[int, str]:
    """(version, leaf hash) of the copy asked about: one the exchange published, else UnknownCopy.
    No version and no leaf hash: the current copy. A leaf hash alone: the latest version that
    made it the record's content (every content change is an event, so only those are read)."""
    if version is None and leaf_hash is None:
        return rec.version, current_leaf
    if version is not None:
        leaf = _leaf_at(s, store, rec.record_id, version)
        if leaf is None:
            raise UnknownCopy(f"unknown copy: version {version} of {rec.dataset_id} does not hold record "
                              f"{rec.record_id} (it is in versions {first} to {rec.version})")
        if leaf_hash is not None and leaf_hash != leaf:
            raise UnknownCopy(f"unknown copy: version {version} holds record {rec.record_id} with leaf hash "
                              f"{leaf}, not {leaf_hash}: the exchange never published that copy")
        return version, leaf
    for v in sorted({first, *(e.version for e in events)}, reverse=True):
        if _leaf_at(s, store, rec.record_id, v) == leaf_hash:
            return v, leaf_hash
    raise UnknownCopy(f"unknown copy: the exchange never published record {rec.record_id} with leaf "
                      f"hash {leaf_hash}")


def dispute(s: Session, record_id: str, dataset: str) -> dict:
    """disputed: the source still has the record, but every row of it was quarantined, so the
    published state was carried unchanged (catalog/publish/changes.py) until a steward reviews the rows."""
    rows = s.execute(sa.select(QuarantineEntry.key, QuarantineEntry.reasons).where(
        QuarantineEntry.held_record_id == record_id, QuarantineEntry.state == "open")).all()
    if not rows:
        return {"disputed": False, "dispute": None}
    reasons = sorted({r for _, rs in rows for r in rs or ()})
    return {"disputed": True, "dispute": (
        f"held as published: {len(rows)} row(s) of the source with licence number {rows[0][0]} are "
        f"in quarantine ({', '.join(reasons)}); a steward decides: `exchange quarantine {dataset}`")}


def _first_status(rec: Record, events) -> str:
    """The source status the record had when first published (before any event)."""
    for e in events:
        if e.change in ("revoked", "reinstated"):
            return "valid" if e.change == "revoked" else "revoked"
    return rec.status
