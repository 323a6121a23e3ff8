"""A split run's partitions (registration [run]; planned by connectors/partitions.py): their
hand-off files, and the merge that makes them one run again, in partition order, before
publish. A run of one partition (WHOLE) is an unsplit run and never comes here.

The merge writes what an unsplit run's extract and conform write (extracted, conformed; rows
numbered 1..N over the whole run) and one pending pull; quality/validate.py then splits the
whole run with the partitions' row-level findings and runs the version-wide checks (uniqueness,
GX over the whole version) itself, so the same silo gives the same version however it was split.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from base import staging
from base.errors import ConfigError, DataError
from connectors import state
from connectors.partitions import WHOLE
from schemas.conform import ROW

HANDOFFS = ("extracted", "conformed", "findings")     # a partition's files, merged or read at publish


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


def handoff(workdir: Path, name: str, part: dict | None) -> Path:
    return staging.transient(workdir, staging.part_name(name, part))


def merged(workdir: Path, parts: list[dict]) -> bool:
    """Whether the merge already ran to its end (its partitions' files are gone)."""
    return (staging.transient(workdir, "accepted").exists()
            and not any(handoff(workdir, "findings", p).exists() for p in parts))


def concat(workdir: Path, name: str, parts: list[dict], source_id: str) -> Path:
    """The partitions' `name` files as the run's one file, in partition order, rows renumbered."""
    out = staging.transient(workdir, name)
    tmp = out.with_name(out.name + ".tmp")
    schema, writer, row = None, None, 0
    try:
        for part in parts:
            table = staging.read_table(handoff(workdir, name, part))
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
    os.replace(tmp, out)
    return out


def merge_pulls(workdir: Path, parts: list[dict], source_id: str) -> list[Path]:
    """extracted, conformed and the pending pull of the whole run; the findings to validate with."""
    for name in ("extracted", "conformed"):
        concat(workdir, name, parts, source_id)
    state.merge_pending(workdir, parts)
    return [handoff(workdir, "findings", p) for p in parts]


def today_of(findings: Path):
    """The day the partitions were checked against (`not in the future`)."""
    from datetime import date
    meta = json.loads(staging.read_schema(findings).metadata[b"findings"])
    return date.fromisoformat(meta["today"])


def clean(workdir: Path, parts: list[dict]) -> None:
    """The partitions' own files, once the whole run's are written."""
    for part in parts:
        for name in HANDOFFS:
            handoff(workdir, name, part).unlink(missing_ok=True)
        (workdir / state.pending_name(part)).unlink(missing_ok=True)
