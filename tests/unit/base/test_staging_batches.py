"""staging.iter_batches: the same rows in the same order, in batches of exactly the size asked
(the last may be shorter), read a batch at a time from an Arrow IPC file."""
from __future__ import annotations

import pyarrow as pa
import pytest

from base import staging


@pytest.fixture()
def handoff(tmp_path):
    path = staging.transient(tmp_path, "extracted")
    schema = pa.schema([("n", pa.int64()), ("s", pa.string())])
    with staging.transient_writer(path, schema) as w:
        start = 0
        for size in (5, 0, 17, 3, 100_000, 1):       # uneven written batches, one empty
            w.write_batch(pa.record_batch([pa.array(range(start, start + size), pa.int64()),
                                           pa.array([f"r{i}" for i in range(start, start + size)])], schema=schema))
            start += size
    return path, start


@pytest.mark.parametrize("size", [1, 7, 20, 65_536, 200_000])
def test_exact_batches(handoff, size):
    path, total = handoff
    got = list(staging.iter_batches(path, size))
    assert [b.num_rows for b in got[:-1]] == [size] * (len(got) - 1)
    assert 0 < got[-1].num_rows <= size
    assert pa.Table.from_batches(got).column("n").to_pylist() == list(range(total))


def test_written_batches_and_columns(handoff):
    path, total = handoff
    got = list(staging.iter_batches(path, None, ["s"]))
    assert all(b.schema.names == ["s"] for b in got)
    assert max(b.num_rows for b in got) == 65_536
    assert pa.Table.from_batches(got).column("s").to_pylist() == [f"r{i}" for i in range(total)]


def test_batches_outlive_the_file(handoff):
    path, total = handoff
    got = list(staging.iter_batches(path, 10))
    path.unlink()
    assert sum(b.num_rows for b in got) == total and got[-1].column("n")[-1].as_py() == total - 1


def test_take_rows_across_written_batches(handoff, tmp_path):
    path, total = handoff
    at = [0, 4, 5, 21, 22, 24, 25, 50_000, total - 1]       # first, last, and each side of a seam
    got = staging.take_rows(path, at)
    assert got.column("n").to_pylist() == at and got.column("s").to_pylist() == [f"r{i}" for i in at]
    assert staging.take_rows(path, []).num_rows == 0
    parquet = tmp_path / "extracted.parquet"
    staging.write_table(staging.read_table(path), parquet)
    assert staging.take_rows(parquet, at).column("n").to_pylist() == at


def test_read_schema_of_either_format(handoff, tmp_path):
    path, _ = handoff
    parquet = tmp_path / "extracted.parquet"
    staging.write_table(staging.read_table(path), parquet)
    assert staging.read_schema(path).names == staging.read_schema(parquet).names == ["n", "s"]


@pytest.mark.parametrize("size", [None, 7, 65_536])
def test_mapped_batches_are_iter_batches_and_outlive_their_pages(handoff, tmp_path, size):
    path, total = handoff
    mapped = staging.Mapped(path, size)
    got = []
    for batch in mapped:
        got.append(batch)
        mapped.drop(batch)                  # its pages handed back: read again if touched
    assert [b.num_rows for b in got] == [b.num_rows for b in staging.iter_batches(path, size)]
    assert pa.Table.from_batches(got).column("s").to_pylist() == [f"r{i}" for i in range(total)]
    parquet = tmp_path / "extracted.parquet"
    staging.write_table(staging.read_table(path), parquet)
    again = staging.Mapped(parquet, size)
    assert sum(b.num_rows for b in again) == total
    again.drop(got[0])


def test_reading_a_parquet_file_to_its_end_holds_a_batch_not_the_file(tmp_path):
    """pyarrow's default pre-buffering keeps every range read till the file is closed; the
    staging reader (parquet_file, iter_batches) holds about a batch, whatever the file's size."""
    import os

    import pyarrow.parquet as pq

    path = tmp_path / "big.parquet"
    values = pa.array([os.urandom(24).hex() for _ in range(20_000)])      # 48 bytes, incompressible
    with pq.ParquetWriter(path, pa.schema([("v", pa.string())]), compression="lz4") as w:
        for _ in range(20):
            w.write_table(pa.table({"v": values}), row_group_size=20_000)
    size = path.stat().st_size

    def allocated() -> int:      # every pool's (Arrow's C++ default may not be pyarrow's)
        total = 0
        for pool in (pa.system_memory_pool, pa.mimalloc_memory_pool, pa.jemalloc_memory_pool):
            try:
                total += pool().bytes_allocated()
            except NotImplementedError:       # not built into this pyarrow
                pass
        return total

    def held_after_reading(f) -> int:
        before = allocated()
        for _ in f.iter_batches(batch_size=4_096):
            pass
        return allocated() - before

    assert held_after_reading(pq.ParquetFile(path)) > size // 2         # the default: the file's ranges held
    assert held_after_reading(staging.parquet_file(path)) < size // 4
    before = allocated()
    peak = 0
    for _ in staging.iter_batches(path, 4_096):
        peak = max(peak, allocated() - before)
    assert peak < size // 4        # a row group or two
