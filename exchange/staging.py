"""How staging and dataset files are written: one place for Parquet settings.

LZ4 without dictionary encoding, measured on a 1M-row silo: write 1.5 s, read 1.1 s,
against 2.5 s and 4.3 s for the default snappy with dictionaries.
"""
from __future__ import annotations

from pathlib import Path

PARQUET = {"compression": "lz4", "use_dictionary": False}
# Files handed from one task to the next and deleted after publish (extracted, conformed,
# accepted): no compression, no statistics (1M conformed rows: write 0.9 s against 1.8 s).
TRANSIENT = {"compression": "none", "use_dictionary": False, "write_statistics": False}
# A dataset version's files are read whole or by row group, never filtered on values:
# no column statistics (they cost a quarter of writing 1M records).
DATASET_FILES = {**PARQUET, "write_statistics": False}


def writer(path: Path, schema, options: dict = PARQUET):
    import pyarrow.parquet as pq
    return pq.ParquetWriter(path, schema, **options)


def write_table(table, path: Path, options: dict = PARQUET, **kwargs) -> None:
    import pyarrow.parquet as pq
    pq.write_table(table, path, **options, **kwargs)
