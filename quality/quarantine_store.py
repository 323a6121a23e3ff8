"""Reading runs' quarantine files (the store's staging/<source>/<run>/quarantine.parquet) back."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from base.storage import Store


def raw_rows(store: Store, entries: list[dict], file_of: Callable[[str, str], str]) -> dict[tuple[str, str, str], dict]:
    """(source, key, row_hash) -> the silo's raw row, from the run that last quarantined each
    entry (a file written before row hashes: by key alone). `file_of(source, run_key)`: the
    store key of that run's quarantine file."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in entries:
        wanted[(e["source_id"], e["last_run_key"])].add(e["key"])
    out = {}
    for (source, run_key), keys in wanted.items():
        key = file_of(source, run_key)
        if not store.exists(key):
            continue
        pf = pq.ParquetFile(store.open_input(key))
        hashed = "row_hash" in pf.schema_arrow.names
        table = pf.read(columns=["key", "row_hash", "raw"] if hashed else ["key", "raw"])
        table = table.filter(pc.is_in(table.column("key"), value_set=pa_strings(keys)))
        hashes = table.column("row_hash").to_pylist() if hashed else [""] * table.num_rows
        for key, h, raw in zip(table.column("key").to_pylist(), hashes, table.column("raw").to_pylist()):
            out.setdefault((source, key, h), raw)
            out.setdefault((source, key, ""), raw)
    return out


def pa_strings(values):
    return pa.array(sorted(values), pa.string())
