"""Reading a run's quarantine file (staging/<source>/<run>/quarantine.parquet) back."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def raw_rows(staging_dir: Path, entries: list[dict]) -> dict[tuple[str, str, str], dict]:
    """(source, key, row_hash) -> the silo's raw row, from the run that last quarantined each
    entry (a file written before row hashes: by key alone)."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in entries:
        wanted[(e["source_id"], e["last_run_key"])].add(e["key"])
    out = {}
    for (source, run_key), keys in wanted.items():
        path = staging_dir / source / run_key / "quarantine.parquet"
        if not path.exists():
            continue
        hashed = "row_hash" in pq.read_schema(path).names
        table = pq.read_table(path, columns=["key", "row_hash", "raw"] if hashed else ["key", "raw"])
        table = table.filter(pc.is_in(table.column("key"), value_set=pa_strings(keys)))
        hashes = table.column("row_hash").to_pylist() if hashed else [""] * table.num_rows
        for key, h, raw in zip(table.column("key").to_pylist(), hashes, table.column("raw").to_pylist()):
            out.setdefault((source, key, h), raw)
            out.setdefault((source, key, ""), raw)
    return out


def pa_strings(values):
    return pa.array(sorted(values), pa.string())
