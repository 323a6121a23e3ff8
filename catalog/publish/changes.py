"""A source's pull diffed against the dataset's current version: new, changed, unchanged, gone.

A record that disappears from its authoritative source is not kept as valid: it is carried
into the next version with status "withdrawn" (and stays withdrawn while it stays gone).
A record still in the source whose rows were all quarantined is not gone: it is held, carried
into the next version unchanged, and shown as disputed while its quarantine entry is open.

    (a version's folder is a Store: base/storage.py; the run's own files are local paths)

    publishable(accepted, conformed, previous_dir, out) -> (paths, Carried)
        The records to publish, in order: the accepted ones, then (written to `out`) every
        record of the current version whose licence number is nowhere in this pull (neither
        accepted nor quarantined), with status "withdrawn", and every one whose licence number
        is in the pull but on no accepted row (held), as it was.
    held_records(previous_dir, accepted, quarantined_keys) -> {licence number: record id}
        The records a run's quarantined rows hold back (the quarantine queue keeps them).
    diff(previous_dir, staged_dir) -> Changes
        Counts by record id and leaf hash (same canonical bytes: unchanged).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from base import staging
from base.storage import Store
from catalog.publish.store import records_file, version_leaves

WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Changes:
    new: int
    changed: int
    unchanged: int
    withdrawn: int            # withdrawn in this version (were not before)
    still_withdrawn: int      # carried, already withdrawn

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Carried:
    withdrawn: int            # records withdrawn in this version (were not before)
    held: int                 # records present in the pull whose rows were all quarantined


def _in(values, value_set) -> pa.Array:
    return pc.fill_null(pc.is_in(values, value_set=value_set), False)


def publishable(accepted: Path, conformed: Path, previous: Store | None, out: Path) -> tuple[list[Path], Carried]:
    if previous is None:
        return [accepted], Carried(0, 0)
    present = staging.read_table(conformed, ["licence_number"]).column(0).combine_chunks()
    taken = staging.read_table(accepted, ["licence_number"]).column(0).combine_chunks()
    prev = records_file(previous)
    # one membership test per set over the whole column (is_in hashes its value set on every call)
    numbers = prev.read(columns=["licence_number"]).column(0)
    in_pull = _in(numbers, present).combine_chunks()
    gone = pc.invert(in_pull)
    held = pc.and_not(in_pull, _in(numbers, taken).combine_chunks())
    carried = pc.or_(gone, held)
    if not pc.any(carried).as_py():
        return [accepted], Carried(0, 0)
    schema = staging.read_schema(accepted)
    withdrawn_now, at = 0, 0
    with staging.transient_writer(out, schema) as writer:   # the carried rows only
        for batch in prev.iter_batches(batch_size=131_072):
            pick = carried.slice(at, batch.num_rows)
            batch, is_gone, at = batch.filter(pick), gone.slice(at, batch.num_rows).filter(pick), at + batch.num_rows
            if batch.num_rows:
                was = batch.column("status")
                withdrawn_now += int(pc.sum(pc.cast(pc.and_(is_gone, pc.not_equal(was, WITHDRAWN)),
                                                    pa.int64())).as_py() or 0)
                status = pc.if_else(is_gone, pa.scalar(WITHDRAWN, was.type), was)
                writer.write_batch(_as_accepted(batch, schema, status))
    return [accepted, out], Carried(withdrawn_now, int(pc.sum(pc.cast(held, pa.int64())).as_py() or 0))


def held_records(previous: Store | None, accepted: Path, quarantined: pa.Array) -> dict[str, str]:
    """licence number -> record id of the current version's records that this pull holds back:
    their licence number is a quarantined row's key and no accepted row has it."""
    if previous is None or len(quarantined) == 0:
        return {}
    prev = records_file(previous).read(columns=["licence_number", "record_id"])
    taken = staging.read_table(accepted, ["licence_number"]).column(0).combine_chunks()
    numbers = prev.column("licence_number")
    prev = prev.filter(pc.and_not(_in(numbers, quarantined), _in(numbers, taken)))
    return dict(zip(prev.column("licence_number").to_pylist(), prev.column("record_id").to_pylist()))


def _as_accepted(batch: pa.RecordBatch, schema: pa.Schema, status: pa.Array) -> pa.RecordBatch:
    """A previous version's records in the accepted rows' schema, with `status`."""
    n, names = batch.num_rows, batch.schema.names
    cols = []
    for f in schema:
        if f.name == "status":
            cols.append(status.cast(f.type))
        elif f.name in names:
            cols.append(batch.column(f.name).cast(f.type))
        elif f.name == "holder_key" and "holder_code" in names:
            cols.append(batch.column("holder_code").cast(f.type))
        else:
            cols.append(pa.nulls(n, f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def diff(previous: Store | None, staged: Store) -> Changes:
    new = version_leaves(staged)
    if previous is None:
        return Changes(new.num_rows, 0, 0, 0, 0)
    old = version_leaves(previous).rename_columns(["record_id", "old_status", "old_leaf"])
    joined = new.join(old, "record_id", join_type="left outer")
    is_new = pc.is_null(joined.column("old_leaf"))
    same = pc.fill_null(pc.equal(joined.column("leaf"), joined.column("old_leaf")), False)
    withdrawn = pc.equal(joined.column("status"), WITHDRAWN)
    was_withdrawn = pc.fill_null(pc.equal(joined.column("old_status"), WITHDRAWN), False)

    def count(mask) -> int:
        return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)

    return Changes(new=count(pc.and_(is_new, pc.invert(withdrawn))),
                   changed=count(pc.and_(pc.invert(is_new), pc.and_(pc.invert(same), pc.invert(withdrawn)))),
                   unchanged=count(pc.and_(same, pc.invert(withdrawn))),
                   withdrawn=count(pc.and_(withdrawn, pc.invert(was_withdrawn))),
                   still_withdrawn=count(pc.and_(withdrawn, was_withdrawn)))
