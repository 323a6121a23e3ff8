"""How staging and dataset files are written: one place for Parquet settings.

LZ4 without dictionary encoding, measured on a 1M-row silo: write 1.5 s, read 1.1 s,
against 2.5 s and 4.3 s for the default snappy with dictionaries.
"""
from __future__ import annotations

from pathlib import Path

PARQUET = {"compression": "lz4", "use_dictionary": False}


def writer(path: Path, schema):
    import pyarrow.parquet as pq
    return pq.ParquetWriter(path, schema, **PARQUET)


def write_table(table, path: Path, **kwargs) -> None:
    import pyarrow.parquet as pq
    pq.write_table(table, path, **PARQUET, **kwargs)
