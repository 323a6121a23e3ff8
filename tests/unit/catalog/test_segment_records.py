"""catalog/publish/log_version.py's segment records: when the segment is every staged row and
nothing newly withdrawn (a first version), the staged records.parquet itself, linked, has the
bytes the rewrite would write; any other pick is rewritten."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.publish import ACCEPTED_FILE, records
from catalog.publish import log_version, store
from schemas.types import get_type

DATASET = "business_licence.test"
CTYPE = get_type("business_licence")


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    work = tmp_path_factory.mktemp("segment")
    n = 2 * store.ROW_GROUP + 77          # three row groups, the last short
    pq.write_table(records(n, seed=11), work / "accepted.parquet", row_group_size=5000, **ACCEPTED_FILE)
    return n, store.stage_version(work / "accepted.parquet", DATASET, CTYPE, work / "v1").directory


def _none_withdrawn() -> pa.Table:
    rows = pa.table({"version": pa.array([], pa.int64()), "leaf_index": pa.array([], pa.int64())})
    return log_version._records_of(None, {}, rows, CTYPE)


def test_every_row_is_the_staged_file_linked_with_the_rewrites_bytes(staged, tmp_path):
    n, full = staged
    linked, rewritten = tmp_path / "linked.parquet", tmp_path / "rewritten.parquet"
    log_version._write_segment_records(full, np.arange(n), _none_withdrawn(), linked)
    assert os.path.samefile(linked, full / "records.parquet")
    log_version._rewrite_records(full, np.arange(n), _none_withdrawn(), rewritten)
    assert not os.path.samefile(rewritten, full / "records.parquet")
    assert linked.read_bytes() == rewritten.read_bytes()
    groups = pq.ParquetFile(linked).metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [store.ROW_GROUP] * 2 + [77]


def test_without_hard_links_the_file_is_copied(staged, tmp_path, monkeypatch):
    n, full = staged

    def no_links(src, dst):
        raise OSError("no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "copied.parquet"
    log_version._write_segment_records(full, np.arange(n), _none_withdrawn(), out)
    assert not os.path.samefile(out, full / "records.parquet")
    assert out.read_bytes() == (full / "records.parquet").read_bytes()


def test_a_partial_pick_or_a_withdrawal_is_rewritten(staged, tmp_path):
    n, full = staged
    pick = np.delete(np.arange(n), [5, store.ROW_GROUP + 1])
    out = tmp_path / "partial.parquet"
    log_version._write_segment_records(full, pick, _none_withdrawn(), out)
    staged_rows = pq.read_table(full / "records.parquet")
    assert pq.read_table(out).equals(staged_rows.take(pa.array(pick)))
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [store.ROW_GROUP] * 2 + [75]

    withdrawn = staged_rows.slice(3, 2).select(_none_withdrawn().column_names)
    out = tmp_path / "withdrawn.parquet"
    log_version._write_segment_records(full, np.arange(n), withdrawn, out)
    assert not os.path.samefile(out, full / "records.parquet")
    assert pq.read_table(out).num_rows == n + 2


def test_row_groups_other_than_the_segments_are_rewritten(tmp_path):
    table = records(store.ROW_GROUP + 10, seed=4).select([*CTYPE.field_names])
    table = table.append_column("record_id", pa.array([f"{i:032x}" for i in range(table.num_rows)]))
    (tmp_path / "v").mkdir()
    pq.write_table(table, tmp_path / "v" / "records.parquet", row_group_size=1000)     # not ROW_GROUP
    out = tmp_path / "out.parquet"
    log_version._write_segment_records(tmp_path / "v", np.arange(table.num_rows), _none_withdrawn(), out)
    assert not os.path.samefile(out, tmp_path / "v" / "records.parquet")
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [store.ROW_GROUP, 10]


@pytest.mark.parametrize("every", [True, False])
def test_index_rows_of_every_row_or_a_pick(staged, tmp_path, every):
    """The segment's index rows: the staged index at `pick` (every row: the batches as they
    are), numbered from the first leaf, with their leaf hashes; the holder keys returned."""
    n, full = staged
    pick = np.arange(n) if every else np.arange(0, n, 3)
    leaves = np.random.default_rng(1).integers(0, 256, (len(pick), 32), dtype=np.uint8)
    out = tmp_path / "index_rows.parquet"
    holders = log_version._write_segment_index(full, pick, _none_withdrawn(), None, 100, leaves, out)
    rows = pq.read_table(out)
    want = store.index_table(full / "index.parquet", list(store.INDEX_COLUMNS)).take(pa.array(pick))
    assert rows.select(list(store.INDEX_COLUMNS)).equals(want)
    assert rows.column("leaf_index").to_pylist() == list(range(100, 100 + len(pick)))
    assert rows.column("leaf_hash").to_pylist() == [bytes(x).hex() for x in leaves]
    assert holders.to_pylist() == want.column("holder_key").to_pylist()


def test_a_first_version_reads_no_licence_numbers_and_holds_no_record_ids(staged, tmp_path, monkeypatch):
    """A first version (no current records) holds no one: the run's licence numbers are not
    read; its record ids are not kept once the map is made, but read back from the index rows
    (in the segment's order) when asked for, in chunks as before."""
    n, full = staged
    read = []
    real = log_version.staging.read_table
    monkeypatch.setattr(log_version.staging, "read_table",
                        lambda path, cols=None: read.append(cols) or real(path, cols))
    accepted = full.parent / "accepted.parquet"
    empty = log_version.STATE.empty_table()
    lv = log_version.stage_log_version(accepted, accepted, empty, {}, None, DATASET, CTYPE, 0, tmp_path)
    assert ["licence_number"] not in read
    assert lv.ids is None and lv.appended == lv.record_count == n
    want = pq.read_table(full / "records.parquet", columns=["record_id"]).column(0).to_pylist()
    assert lv.record_ids == want and lv.record_id_array.to_pylist() == want
    chunks = list(lv.iter_record_ids(500))
    assert [len(c) for c in chunks] == [500] * (n // 500) + [n % 500] and sum(chunks, []) == want
    kept = log_version.LogVersion(lv.directory, 0, lv.leaves, pa.array(want), n, lv.map, lv.changes, 0, 0)
    assert list(kept.iter_record_ids(500)) == chunks
