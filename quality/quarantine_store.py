"""Reading a run's quarantine file (staging/<source>/<run>/quarantine.parquet) back."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def raw_rows(staging_dir: Path, entries: list[dict]) -> dict[tuple[str, str], dict]:
    """(source, key) -> the silo's raw row, from the run that last quarantined each entry."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in entries:
        wanted[(e["source_id"], e["last_run_key"])].add(e["key"])
    out = {}
    for (source, run_key), keys in wanted.items():
        path = staging_dir / source / run_key / "quarantine.parquet"
        if not path.exists():
            continue
        table = pq.read_table(path, columns=["key", "raw"])
        table = table.filter(pc.is_in(table.column("key"), value_set=pa_strings(keys)))
        for key, raw in zip(table.column("key").to_pylist(), table.column("raw").to_pylist()):
            out.setdefault((source, key), raw)
    return out


def pa_strings(values):
    import pyarrow as pa
    return pa.array(sorted(values), pa.string())
