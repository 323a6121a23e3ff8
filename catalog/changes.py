"""A source's pull diffed against the dataset's current version: new, changed, unchanged, gone.

A record that disappears from its authoritative source is not kept as valid: it is carried
into the next version with status "withdrawn" (and stays withdrawn while it stays gone).

    publishable(accepted, conformed, previous_dir, out) -> (paths, withdrawn_now)
        The records to publish, in order: the accepted ones, then (written to `out`) every
        record of the current version whose licence number is nowhere in this pull (neither
        accepted nor quarantined), with status "withdrawn". A record present but quarantined
        is not "gone".
    diff(previous_dir, staged_dir) -> Changes
        Counts by record id and leaf hash (same canonical bytes: unchanged).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog.store import version_leaves
from exchange import staging

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


def publishable(accepted: Path, conformed: Path, previous: Path | None, out: Path) -> tuple[list[Path], int]:
    if previous is None:
        return [accepted], 0
    present = staging.read_table(conformed, ["licence_number"]).column(0).combine_chunks()
    prev = pq.ParquetFile(previous / "records.parquet")
    # one membership test over the whole column (is_in hashes its value set on every call)
    gone = pc.invert(pc.fill_null(pc.is_in(prev.read(columns=["licence_number"]).column(0),
                                          value_set=present), False)).combine_chunks()
    if not pc.any(gone).as_py():
        return [accepted], 0
    schema = staging.read_schema(accepted)
    withdrawn_now, at = 0, 0
    with staging.transient_writer(out, schema) as writer:   # the gone rows only
        for batch in prev.iter_batches(batch_size=131_072):
            batch, at = batch.filter(gone.slice(at, batch.num_rows)), at + batch.num_rows
            if batch.num_rows:
                withdrawn_now += int(pc.sum(pc.cast(pc.not_equal(batch.column("status"), WITHDRAWN),
                                                    pa.int64())).as_py() or 0)
                writer.write_batch(_as_accepted(batch, schema))
    return [accepted, out], withdrawn_now


def _as_accepted(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A previous version's records in the accepted rows' schema, status withdrawn."""
    n, names = batch.num_rows, batch.schema.names
    cols = []
    for f in schema:
        if f.name == "status":
            cols.append(pa.array([WITHDRAWN] * n, f.type))
        elif f.name in names:
            cols.append(batch.column(f.name).cast(f.type))
        elif f.name == "holder_key" and "holder_code" in names:
            cols.append(batch.column("holder_code").cast(f.type))
        else:
            cols.append(pa.nulls(n, f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def diff(previous: Path | None, staged: Path) -> Changes:
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
