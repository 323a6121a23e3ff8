"""How staging and dataset files are written and read: one place for their formats.

Dataset files (a version's records and index) are Parquet: LZ4 without dictionary encoding,
measured on a 1M-row silo: write 1.5 s, read 1.1 s, against 2.5 s and 4.3 s for the default
snappy with dictionaries.

Files handed from one task to the next (extracted, conformed, accepted, publishable; the
extracted rows then become the source's mirror) are Arrow IPC files, uncompressed: written
as Arrow holds them, read back memory-mapped without copying. 1M conformed rows (CPU): write
0.6 s and read 0.003 s, against 0.8 s and 1.3 s as uncompressed Parquet. The readers here also
take Parquet (files written by hand, by tests, or before this format), told apart by magic bytes.
"""
from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET: dict[str, Any] = {"compression": "lz4", "use_dictionary": False}
# A dataset version's files are read whole or by row group, never filtered on values:
# no column statistics (they cost a quarter of writing 1M records).
DATASET_FILES: dict[str, Any] = {**PARQUET, "write_statistics": False}
TRANSIENT_SUFFIX = ".arrow"
_ARROW_MAGIC = b"ARROW1"


def writer(path: Path, schema: pa.Schema, options: dict[str, Any] = PARQUET) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, schema, **options)


def write_table(table: pa.Table, path: Path, options: dict[str, Any] = PARQUET, **kwargs: Any) -> None:
    pq.write_table(table, path, **options, **kwargs)


def transient(workdir: Path, name: str) -> Path:
    """The path of a run's hand-off file `name` (extracted, conformed, accepted...)."""
    return workdir / f"{name}{TRANSIENT_SUFFIX}"


def part_name(name: str, part: Mapping[str, Any] | None) -> str:
    """The hand-off name `name` of one partition of a run (connectors/partitions.py): the name
    itself for a whole run (one partition), `name.p0002` for the third partition of a split one."""
    if not part or int(part.get("of", 1)) <= 1:
        return name
    return f"{name}.p{int(part['index']):04d}"


def transient_writer(path: Path, schema: pa.Schema) -> pa.ipc.RecordBatchFileWriter:
    """An Arrow IPC file writer (write_batch, write_table, close; a context manager)."""
    import pyarrow as pa
    return pa.ipc.new_file(str(path), schema)


def _is_arrow(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_ARROW_MAGIC)) == _ARROW_MAGIC


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The whole file as a Table (Arrow IPC: memory-mapped, nothing copied)."""
    import pyarrow as pa
    if not _is_arrow(path):
        return pq.read_table(path, columns=columns)
    with pa.memory_map(str(path)) as source:   # the table's buffers keep the mapping alive
        table = pa.ipc.open_file(source).read_all()
    return table.select(columns) if columns is not None else table


def map_table(path: Path) -> tuple[pa.Table, Callable[[], None]]:
    """The whole file as a Table (as read_table) and a `release` that drops the pages read so
    far from this process's memory: a mapped file's pages otherwise stay resident until it is
    unmapped, so reading a large file through holds all of it. The data stays readable (its
    pages are read again, from the page cache, when touched). Parquet: read whole, no release."""
    if not _is_arrow(path):
        return pq.read_table(path), lambda: None
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    table = pa.ipc.open_file(pa.py_buffer(mapped)).read_all()   # the buffers keep the mapping alive

    def release() -> None:
        if hasattr(mmap, "MADV_DONTNEED"):
            mapped.madvise(mmap.MADV_DONTNEED)
    return table, release


def parquet_file(source: Any) -> pq.ParquetFile:
    """A Parquet file to read in batches or by row group: without pre-buffering (pyarrow's
    default), which keeps every range read until the file is closed: read to its end, a
    1M-row version's records held 170 MB, growing with the file."""
    return pq.ParquetFile(source, pre_buffer=False)


def iter_batches(path: Path, batch_size: int | None, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of exactly batch_size rows (the last may be shorter), in file order:
    callers rely on it (a version's row groups are all full but the last). batch_size None:
    the batches as they were written, split at 65,536 rows. An Arrow IPC file is read a batch
    at a time (not mapped), so memory holds a batch or two, whatever the file's size."""
    if not _is_arrow(path):
        yield from parquet_file(path).iter_batches(batch_size=batch_size or 65_536, columns=columns)
        return
    with pa.OSFile(str(path)) as f:
        reader = pa.ipc.open_file(f)
        written = (reader.get_batch(i) for i in range(reader.num_record_batches))
        if columns is not None:
            written = (b.select(columns) for b in written)
        if batch_size is None:
            for batch in written:
                for start in range(0, batch.num_rows, 65_536):
                    yield batch.slice(start, 65_536)
            return
        yield from _exactly(batch_size, written)


class Mapped:
    """The record batches of a file, like iter_batches, but an Arrow IPC file is read through a
    memory map, without copying: `drop(batch)` hands a batch's pages back once it is used
    (MADV_DONTNEED: they are read again from the file if touched), so memory holds only the
    batches in use. Other files are read as iter_batches reads them (drop does nothing)."""

    def __init__(self, path: Path, batch_size: int | None = None):
        self.path, self.batch_size = path, batch_size
        self.map: mmap.mmap | None = None
        self.base = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if not _is_arrow(self.path):
            yield from iter_batches(self.path, self.batch_size)
            return
        with open(self.path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        data = pa.py_buffer(self.map)            # the batches hold the map (never closed here)
        self.base = data.address
        reader = pa.ipc.open_file(pa.BufferReader(data))
        written = (reader.get_batch(i) for i in range(reader.num_record_batches))
        if self.batch_size is None:
            for batch in written:
                for start in range(0, batch.num_rows, 65_536):
                    yield batch.slice(start, 65_536)
            return
        yield from _exactly(self.batch_size, written)

    def drop(self, batch: pa.RecordBatch) -> None:
        spans = [(b.address, b.address + b.size) for c in batch.columns for b in c.buffers() if b is not None]
        if self.map is None or not spans or not hasattr(mmap, "MADV_DONTNEED"):
            return
        lo, hi = min(a for a, _ in spans) - self.base, max(e for _, e in spans) - self.base
        if 0 <= lo < hi <= len(self.map):       # a batch copied together by _exactly is not the map's
            lo -= lo % mmap.PAGESIZE
            self.map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def _exactly(size: int, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The rows of `batches` again in batches of exactly `size` (the last may be shorter)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        while batch.num_rows:
            take = batch.slice(0, size - n)
            held.append(take)
            n += take.num_rows
            batch = batch.slice(take.num_rows)
            if n == size:
                yield held[0] if len(held) == 1 else pa.Table.from_batches(held).combine_chunks().to_batches()[0]
                held, n = [], 0
    if n:
        yield held[0] if len(held) == 1 else pa.Table.from_batches(held).combine_chunks().to_batches()[0]


def take_rows(path: Path, positions: Sequence[int] | np.ndarray) -> pa.Table:
    """The rows at `positions` (0-based, ascending) of a file, in that order. An Arrow IPC file
    is memory-mapped: only the pages of the rows taken are read."""
    at = np.asarray(positions, np.int64)
    if not _is_arrow(path):
        return pq.read_table(path).take(pa.array(at))
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        parts, start = [], 0
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            lo, hi = np.searchsorted(at, [start, start + batch.num_rows])
            if hi > lo:
                parts.append(batch.take(pa.array(at[lo:hi] - start)))
            start += batch.num_rows
        return pa.Table.from_batches(parts, schema=reader.schema)


def read_schema(path: Path) -> pa.Schema:
    if not _is_arrow(path):
        return pq.read_schema(path)
    with pa.OSFile(str(path)) as f:
        return pa.ipc.open_file(f).schema


def num_rows(path: Path) -> int:
    if not _is_arrow(path):
        return int(pq.ParquetFile(path).metadata.num_rows)
    return int(read_table(path).num_rows)
