"""store.stage_version over several batches (worker threads, DataFusion hashing, a last batch
small enough for hashlib) against a plain re-computation with hashlib and the rfc8785 package."""
import hashlib
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
import rfc8785

from bench.publish import ACCEPTED_FILE, records
from catalog.publish import index_load, store
from catalog.signing.merkle import MerkleTree
from schemas.types import get_type
from trust.canonical import to_json_record
from trust.merkle import root_from_inclusion_proof

DATASET = "business_licence.test"


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    work = tmp_path_factory.mktemp("stage")
    mp = pytest.MonkeyPatch()
    mp.setattr(store, "BATCH", store.ROW_GROUP)       # four batches, the last of 77 rows
    mp.setattr(store, "DIGEST_ROWS", 1000)            # the content digest over 25 slices
    n = 3 * store.ROW_GROUP + 77
    pq.write_table(records(n, seed=3), work / "accepted.parquet", row_group_size=5000, **ACCEPTED_FILE)
    try:
        yield n, store.stage_version(work / "accepted.parquet", DATASET, get_type("business_licence"),
                                     work / "v1")
    finally:
        mp.undo()


def _root(level):
    while len(level) > 1:
        up = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = up + level[-1:] if len(level) % 2 else up
    return level[0]


def test_records_ids_and_tree(staged):
    n, version = staged
    recs = pq.read_table(version.directory / "records.parquet")
    assert recs.num_rows == version.tree_size == n
    ids = recs.column("record_id").to_pylist()
    holders = pq.read_table(version.index_path, columns=["holder_key"]).column(0).to_pylist()
    numbers = recs.column("licence_number").to_pylist()
    assert ids == [hashlib.sha256(h.encode()).hexdigest()[:12]
                   + hashlib.sha256(f"{DATASET}\x1f{x}".encode()).hexdigest()[:20]
                   for h, x in zip(holders, numbers)]
    tree = MerkleTree.open(version.directory / "tree.bin")
    leaves = [tree.leaf(i) for i in range(n)]
    assert tree.root == version.root == _root(leaves)
    assert version.content_digest == hashlib.sha256(b"".join(sorted(leaves))).hexdigest()
    for i in random.Random(5).sample(range(n), 300) + [0, n - 1]:   # every batch, both ends
        rec = to_json_record(recs.slice(i, 1).to_pylist()[0])
        leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(rec)).digest()
        assert leaves[i] == leaf
        assert store.read_record(version.directory, i) == rec
        assert root_from_inclusion_proof(i, n, leaf, store.inclusion_proof(version.directory, i)) == version.root


def test_index_in_leaf_order_and_inserted_in_key_order(staged):
    n, version = staged
    assert pq.read_schema(version.index_path).names == ["holder_key"]   # the rest is in the records
    index = store.index_table(version.index_path, list(store.INDEX_COLUMNS) + ["leaf_index"])
    recs = pq.read_table(version.directory / "records.parquet")
    assert index.column("leaf_index").to_pylist() == list(range(n))
    for c in store.INDEX_COLUMNS:
        if c != "holder_key":
            assert index.column(c).equals(recs.column(c)), c
    order = ["record_id", "leaf_index", "dataset_id", "holder_key", "valid_to"]
    rows = [r for batch in index_load.iter_tuples(version.index_path, order, {"dataset_id": DATASET},
                                                  dates_as_text=True, batch_rows=7000) for r in batch]
    assert [r[0] for r in rows] == sorted(recs.column("record_id").to_pylist())
    assert sorted(r[1] for r in rows) == list(range(n)) and {r[2] for r in rows} == {DATASET}
    holders = pq.read_table(version.index_path).column("holder_key").to_pylist()
    valid_to = recs.column("valid_to").to_pylist()
    for rid, leaf, _, holder, vt in rows[:500]:
        assert recs.column("record_id")[leaf].as_py() == rid and holders[leaf] == holder
        assert vt == (valid_to[leaf].isoformat() if valid_to[leaf] else None)


def test_same_records_same_version(staged, tmp_path):
    """Staging again (one batch, another thread layout) gives the same root and digest."""
    n, version = staged
    pq.write_table(pq.read_table(version.directory.parent / "accepted.parquet"),
                   tmp_path / "accepted.parquet", **ACCEPTED_FILE)
    again = store.stage_version(tmp_path / "accepted.parquet", DATASET, get_type("business_licence"),
                                tmp_path / "v")
    assert (again.root, again.content_digest, again.tree_size) == (version.root, version.content_digest, n)


def test_empty_version(tmp_path):
    pq.write_table(records(0), tmp_path / "accepted.parquet", **ACCEPTED_FILE)
    v = store.stage_version(tmp_path / "accepted.parquet", DATASET, get_type("business_licence"), tmp_path / "v")
    assert v.tree_size == 0 and v.root == hashlib.sha256(b"").digest()
    order = [*store.INDEX_COLUMNS, "leaf_index", "dataset_id"]
    assert list(index_load.iter_tuples(v.index_path, order, {"dataset_id": DATASET}, dates_as_text=True)) == []


def test_several_files_stage_as_their_concatenation(staged, tmp_path):
    """changes.publishable hands stage_version the accepted file and the withdrawn rows' file:
    the version equals staging both as one file, and every row group but the last is full."""
    n, version = staged
    whole = pq.read_table(version.directory.parent / "accepted.parquet")
    cut = store.ROW_GROUP + 1000                 # neither part a whole number of batches
    pq.write_table(whole.slice(0, cut), tmp_path / "a.parquet", **ACCEPTED_FILE)
    pq.write_table(whole.slice(cut), tmp_path / "b.parquet", row_group_size=3000, **ACCEPTED_FILE)
    mp = pytest.MonkeyPatch()
    mp.setattr(store, "BATCH", store.ROW_GROUP)
    try:
        parts = store.stage_version([tmp_path / "a.parquet", tmp_path / "b.parquet"], DATASET,
                                    get_type("business_licence"), tmp_path / "v")
    finally:
        mp.undo()
    assert (parts.root, parts.content_digest, parts.tree_size) == (version.root, version.content_digest, n)
    meta = pq.ParquetFile(parts.directory / "records.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert set(sizes[:-1]) == {store.ROW_GROUP} and sum(sizes) == n
    for i in (0, cut - 1, cut, n - 1):
        assert store.read_record(parts.directory, i) == store.read_record(version.directory, i)


def test_exactly_rebatches_any_sizes():
    import pyarrow as pa
    batches = [pa.record_batch({"x": pa.array(range(a, b), pa.int64())}) for a, b in
               [(0, 5), (5, 5), (5, 13), (13, 21), (21, 22), (22, 40)]]
    out = list(store.exactly(8, iter(batches)))
    assert [b.num_rows for b in out] == [8, 8, 8, 8, 8]
    assert [v for b in out for v in b.column(0).to_pylist()] == list(range(40))
    assert list(store.exactly(8, iter([]))) == []


@pytest.mark.parametrize("parts, batch_rows", [(1, 7000), (4, 5000), (3, 65_536)])
def test_index_sorted_through_run_files_as_in_memory(staged, monkeypatch, parts, batch_rows):
    """An index of more rows than index_load.RUN is sorted through run files: the same rows,
    parts and batches as sorting it whole in memory; the run files are gone after."""
    n, version = staged

    def read(readers):
        return [[b for b in r] for r in readers]

    whole = read(index_load._sorted_parts_whole(version.index_path, parts, True, batch_rows))
    monkeypatch.setattr(index_load, "RUN", 4000)         # seven runs, the last one short
    runs = read(index_load.sorted_parts(version.index_path, parts, True, batch_rows))
    assert [[b.num_rows for b in p] for p in runs] == [[b.num_rows for b in p] for p in whole]
    assert all(a.equals(b) for p, q in zip(runs, whole) for a, b in zip(p, q))
    assert sum(b.num_rows for p in runs for b in p) == n
    assert not list(version.index_path.parent.glob(".index-runs-*"))


def test_staged_files_alone_are_the_version_without_its_tree(staged, tmp_path):
    """stage_files (a log version's segment: no tree, no digest) writes the same records and
    index files as stage_version and returns the tree's leaves; version_leaves over them equals
    version_leaves read from the tree."""
    n, version = staged
    leaves = store.stage_files(version.directory.parent / "accepted.parquet", DATASET, get_type("business_licence"),
                               tmp_path / "v")
    assert not (tmp_path / "v" / "tree.bin").exists()
    for name in ("records.parquet", "index.parquet"):
        assert (tmp_path / "v" / name).read_bytes() == (version.directory / name).read_bytes()
    assert leaves.shape == (n, 32)
    assert leaves.tobytes() == MerkleTree.open(version.directory / "tree.bin").leaf_array().tobytes()
    assert store.version_leaves(tmp_path / "v", leaves).equals(store.version_leaves(version.directory))
    with pytest.raises(ValueError, match="leaf hashes"):
        store.version_leaves(tmp_path / "v", leaves[1:])


def test_key_order_sorts_bytewise_with_ties_in_the_first_eight_bytes():
    """store.key_order: rows sorted on all 16 bytes, rows sharing the first 8 (many here) too."""
    rng = np.random.default_rng(12)
    keys = rng.integers(0, 3, (4000, 16), dtype=np.uint8)
    keys[::7, :8] = 255                    # a large group tied on the first 8 bytes
    got = keys[store.key_order(keys)]
    want = keys[np.lexsort(keys.T[::-1])]
    assert (got == want).all()
