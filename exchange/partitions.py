"""A split run's partitions (registration [run]; planned by connectors/partitions.py): the store
keys of their hand-offs, and the merge that makes them one run again, in partition order,
before publish. A run of one partition (WHOLE) is an unsplit run and never comes here.

Each partition's task may have run on another machine: its files are keys under the run's
hand-off prefix in the store (base/storage.py), never a local path. The merge reads them (in
place on a local store, else fetched to the publishing task's scratch folder) and stores what
an unsplit run's extract and conform store (extracted, conformed; rows numbered 1..N over the
whole run) and one pending pull; quality/validate.py then splits the whole run with the
partitions' row-level findings and runs the version-wide checks (uniqueness, GX over the whole
version) itself, so the same silo gives the same version however it was split.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa

from base import staging
from base.errors import ConfigError, DataError
from base.storage import Store
from connectors import state
from connectors.partitions import WHOLE
from schemas.conform import ROW

FILES = {"quarantine": "quarantine.parquet", "validation": "validation.json", "data_docs": "data_docs"}


def is_split(parts: list[dict] | None) -> bool:
    return bool(parts) and any(int(p.get("of", 1)) > 1 for p in parts or ())


def part_of(result_or_part: dict | None) -> dict:
    """The partition a task result (or a partition) is about; WHOLE for an unsplit run's."""
    if not result_or_part:
        return dict(WHOLE)
    return dict(result_or_part.get("part", result_or_part))


def ordered(parts: list[dict], source_id: str) -> list[dict]:
    """The partitions by index, checked to be one plan's: 0..n-1 of n, each once."""
    parts = sorted((part_of(p) for p in parts), key=lambda p: int(p["index"]))
    n = len(parts)
    if [int(p["index"]) for p in parts] != list(range(n)) or any(int(p["of"]) != n for p in parts):
        raise ConfigError(f"source {source_id}: the partitions handed to publish are not one plan's "
                          f"({[(p.get('index'), p.get('of')) for p in parts]}); re-run the whole run")
    return parts


def handoff(prefix: str, name: str, part: dict | None = None) -> str:
    """The store key of hand-off `name` under a run's prefix (the one place they are named):
    extracted, conformed, accepted, findings are Arrow IPC files (`extracted.p0002.arrow` for
    the third partition of a split run); pending, quarantine, validation, data_docs keep their
    own names."""
    if name == "pending":
        return f"{prefix}/{state.pending_name(part)}"
    if name in FILES:
        return f"{prefix}/{FILES[name]}"
    return f"{prefix}/{staging.part_name(name, part)}{staging.TRANSIENT_SUFFIX}"


def merged(store: Store, prefix: str, parts: list[dict]) -> bool:
    """Whether the merge already stored the whole run (its accepted rows are stored and clean
    has begun: not every partition's findings are left). While they all are, merging again
    is harmless."""
    return (store.exists(handoff(prefix, "accepted"))
            and not all(store.exists(handoff(prefix, "findings", p)) for p in parts))


def concat(store: Store, prefix: str, name: str, parts: list[dict], source_id: str, scratch: Path) -> str:
    """The partitions' `name` files as the run's one file, in partition order, rows renumbered;
    built in `scratch`, then stored. Returns its key."""
    tmp = staging.transient(scratch, f"merged-{name}")
    schema, writer, row = None, None, 0
    try:
        for part in parts:
            table = staging.read_table(store.local_file(handoff(prefix, name, part), scratch))
            if schema is None:
                schema, writer = table.schema, staging.transient_writer(tmp, table.schema)
            elif table.schema != schema:
                raise DataError(f"partition {part['index'] + 1} of {part['of']} has the columns "
                                f"{table.schema.names}, the first {schema.names}: the silo changed "
                                "during the run, or its files differ; re-run", source=source_id,
                                rule="partitions: one schema")
            numbers = pa.array(range(row + 1, row + 1 + table.num_rows), pa.int64())
            at = table.schema.get_field_index(ROW)
            writer.write_table(table.set_column(at, table.schema.field(at), numbers) if at >= 0 else table)
            row += table.num_rows
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
    return store.put_file(tmp, handoff(prefix, name), move=True)


def merge_pulls(store: Store, prefix: str, parts: list[dict], source_id: str, scratch: Path) -> list[Path]:
    """extracted, conformed and the pending pull of the whole run, stored; the partitions'
    findings, as files on this machine, to validate with."""
    for name in ("extracted", "conformed"):
        concat(store, prefix, name, parts, source_id, scratch)
    state.merge_pending(store, [handoff(prefix, "pending", p) for p in parts], handoff(prefix, "pending"))
    return [store.local_file(handoff(prefix, "findings", p), scratch) for p in parts]


def today_of(findings: Path) -> date:
    """The day the partitions were checked against (`not in the future`)."""
    meta = json.loads(staging.read_schema(findings).metadata[b"findings"])
    return date.fromisoformat(meta["today"])


def clean(store: Store, prefix: str, parts: list[dict]) -> None:
    """The partitions' own files, once the whole run's are stored; findings first (a findings
    file gone says the merge is done, so a clean cut short is finished, not merged again)."""
    for name in ("findings", "pending", "extracted", "conformed"):
        for part in parts:
            store.delete(handoff(prefix, name, part))
