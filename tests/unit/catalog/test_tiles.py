"""The tiled log (catalog/signing/tiles.py) against the Merkle tree built whole: appended in
uneven batches over many versions, every checkpoint's root, leaves and inclusion proofs are the
built tree's, consistency proofs between checkpoints verify (trust.merkle.verify_consistency),
each append writes only new files, and the files are laid out as C2SP tlog-tiles says."""
from __future__ import annotations

import numpy as np
import pytest

from base.storage import Store
from catalog.signing.merkle import MerkleTree
from catalog.signing.tiles import TileLog, tile_key
from trust.merkle import root_from_inclusion_proof, verify_consistency


class RecordingStore(Store):
    """A local store that notes every key written."""

    def __init__(self, path):
        local = Store.local(path)
        super().__init__(local.fs, local.root, local.base_url)
        self.writes: list[str] = []

    def write_bytes(self, key, data):
        self.writes.append(key)
        return super().write_bytes(key, data)


def test_tile_keys_are_the_c2sp_paths():
    assert tile_key(0, 1234067) == "tile/0/x001/x234/067"     # the spec's example
    assert tile_key(0, 5) == "tile/0/005"
    assert tile_key(3, 0) == "tile/3/000"
    assert tile_key(1, 999) == "tile/1/999"
    assert tile_key(1, 1000) == "tile/1/x001/000"
    assert tile_key(2, 1000000) == "tile/2/x001/x000/000"
    assert tile_key(0, 273, 112) == "tile/0/273.p/112"
    assert tile_key(2, 0, 1) == "tile/2/000.p/1"
    assert tile_key(63, 0, 255) == "tile/63/000.p/255"
    for bad in [(64, 0, None), (-1, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 256)]:
        with pytest.raises(ValueError):
            tile_key(*bad)


def leaves_for(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def uneven(hashes, rng):
    """`hashes` in batches of random sizes (an empty one among them)."""
    cuts = np.sort(rng.integers(0, len(hashes) + 1, rng.integers(0, 5)))
    return np.split(hashes, cuts)


def subproof(m, start, end, whole, leaves):
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 from its definition, on the built trees of ranges."""
    n = end - start
    if m == n:
        return [] if whole else [MerkleTree.build(leaves[start:end]).root]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof(m, start, start + k, whole, leaves) + [MerkleTree.build(leaves[start + k:end]).root]
    return subproof(m - k, start + k, end, False, leaves) + [MerkleTree.build(leaves[start:start + k]).root]


CASES = {
    "c2sp": (8, [0, 1, 3, 7, 8, 8, 300, 700, 70000]),
    "height2": (2, [0, *np.cumsum(np.random.default_rng(2).integers(0, 9, 45)).tolist(), 300, 301, 1024, 1500]),
}


@pytest.mark.parametrize("case", CASES)
def test_the_log_answers_like_the_built_tree_at_every_checkpoint(tmp_path, case):
    height, sizes = CASES[case]
    rng = np.random.default_rng(7)
    leaves = leaves_for(sizes[-1], 1)
    store = RecordingStore(tmp_path)
    log = TileLog(store, "ds/log", height=height)
    roots = {0: log.append(0, []).root}
    for old, new in zip(sizes, sizes[1:]):
        before = {k: store.read_bytes(k) for k in store.list()}
        store.writes.clear()
        done = log.append(old, uneven(leaves[old:new], rng))
        built = MerkleTree.build(leaves[:new])
        assert done.size == new and done.root == built.root == log.root(new)
        # exactly the new files, each written once; none there before is changed
        assert store.writes == done.keys and len(set(done.keys)) == len(done.keys)
        assert set(store.list()) - set(before) == set(done.keys) and not set(done.keys) & set(before)
        assert all(store.read_bytes(k) == v for k, v in before.items())
        assert all(k.startswith("ds/log/tile/") for k in done.keys)
        if new == old:
            assert done.keys == []
        roots[new] = done.root

    reader = TileLog(Store.local(tmp_path), "ds/log", height=height)    # no tile cached from appending
    for s, root in roots.items():
        assert reader.root(s) == root
        if not s:
            continue
        built = MerkleTree.build(leaves[:s])
        for i in sorted({0, s // 2, s - 1, *rng.integers(0, s, 12).tolist()}):
            assert reader.leaf(i, s) == leaves[i].tobytes()
            proof = reader.inclusion_proof(i, s)
            assert proof == built.inclusion_proof(i)
            assert root_from_inclusion_proof(i, s, leaves[i].tobytes(), proof) == root

    checkpoints = sorted(s for s in roots if s)
    for n in checkpoints:
        for m in (m for m in checkpoints if m <= n):
            proof = reader.consistency_proof(m, n)
            verify_consistency(m, n, roots[m], roots[n], proof)
            if case == "c2sp" or n < 40:
                assert proof == subproof(m, 0, n, True, leaves[:n])
            if m == n:
                assert proof == []
                continue
            with pytest.raises(ValueError):
                verify_consistency(m, n, roots[m], roots[n], proof[:-1])
            with pytest.raises(ValueError):
                verify_consistency(m, n, roots[n], roots[n], proof)
            with pytest.raises(ValueError):
                verify_consistency(m, n, roots[m], bytes(32), proof)
            for j in range(len(proof)):
                bad = [*proof[:j], proof[j][:5] + bytes([proof[j][5] ^ 0x80]) + proof[j][6:], *proof[j + 1:]]
                with pytest.raises(ValueError):
                    verify_consistency(m, n, roots[m], roots[n], bad)


def test_a_tree_of_70000_is_stored_as_the_spec_describes(tmp_path):
    store = Store.local(tmp_path)
    leaves = leaves_for(70000, 3)
    TileLog(store).append(0, [leaves])
    # c2sp.org/tlog-tiles, Partial Tiles: 273 full level-0 tiles, a partial one of width 112,
    # one full level-1 tile, a partial one of width 17 and a partial level-2 tile of width 1
    expected = {tile_key(0, n) for n in range(273)} | {"tile/0/273.p/112", "tile/1/000", "tile/1/001.p/17",
                                                        "tile/2/000.p/1"}
    assert set(store.list()) == expected
    assert store.read_bytes("tile/0/005") == leaves[1280:1536].tobytes()
    level1 = store.read_bytes("tile/1/000")
    for i in (0, 1, 255):
        assert level1[32 * i:32 * i + 32] == MerkleTree.build(leaves[256 * i:256 * (i + 1)]).root
    assert store.read_bytes("tile/2/000.p/1") == MerkleTree.build(leaves[:65536]).root
    # a tree of 256 leaves: one full level-0 tile and a partial level-1 tile of width 1
    small = Store.local(tmp_path / "small")
    TileLog(small).append(0, [leaves[:256]])
    assert small.list() == ["tile/0/000", "tile/1/000.p/1"]


def test_appending_nothing_writes_nothing_and_gives_the_root(tmp_path):
    store = RecordingStore(tmp_path)
    log = TileLog(store, "p", height=2)
    leaves = leaves_for(11, 4)
    first = log.append(0, [leaves])
    store.writes.clear()
    again = log.append(11, [leaves[:0]])
    assert again.keys == [] and store.writes == [] and again.size == 11 and again.root == first.root


def test_a_missing_or_cut_tile_is_named(tmp_path):
    store = Store.local(tmp_path)
    TileLog(store, "p").append(0, [leaves_for(600, 5)])
    store.delete("p/tile/0/002.p/88")
    with pytest.raises(ValueError, match=r"tile .*p/tile/0/002\.p/88 is missing"):
        TileLog(store, "p").root(600)
    with pytest.raises(ValueError, match=r"p/tile/0/002\.p/88 is missing"):
        TileLog(store, "p").append(600, [leaves_for(1, 6)])
    store.write_bytes("p/tile/0/001", bytes(8191))
    with pytest.raises(ValueError, match=r"p/tile/0/001 holds 8191 bytes, not 8192"):
        TileLog(store, "p").inclusion_proof(300, 512)


def test_a_failed_append_leaves_no_file(tmp_path):
    store = Store.local(tmp_path)
    log = TileLog(store, height=2)
    log.append(0, [leaves_for(5, 8)])
    before = store.list()

    def batches():
        yield leaves_for(40, 9)
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError):
        log.append(5, batches())
    assert store.list() == before
    with pytest.raises(ValueError, match=r"\(k, 32\)"):
        log.append(5, [np.zeros((3, 31), np.uint8)])
    assert store.list() == before


def test_an_append_whose_tile_write_fails_leaves_no_file(tmp_path, monkeypatch):
    """A write failing part way through an append (the third tile's rename): the tiles already
    written are deleted and no hidden file is left; the log reads as before and appends again."""
    import os

    store = Store.local(tmp_path)
    log = TileLog(store, height=2)
    log.append(0, [leaves_for(5, 8)])
    before = store.list()
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("the disk failed")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="the disk failed"):
        log.append(5, [leaves_for(40, 9)])
    monkeypatch.undo()
    assert len(calls) == 3 and store.list() == before
    again = TileLog(store, height=2)
    assert again.root(5) == log.root(5)
    assert again.append(5, [leaves_for(40, 9)]).size == 45


def test_proof_arguments_are_checked(tmp_path):
    log = TileLog(Store.local(tmp_path), height=2)
    log.append(0, [leaves_for(9, 10)])
    for m, n in [(0, 9), (10, 9), (-1, 9)]:
        with pytest.raises(ValueError, match="0 < m <= n"):
            log.consistency_proof(m, n)
    with pytest.raises(ValueError, match="outside a tree of size 9"):
        log.inclusion_proof(9, 9)
    with pytest.raises(ValueError, match="between 1 and 8"):
        TileLog(Store.local(tmp_path), height=9)


def test_the_log_in_an_s3_store(s3_store):
    leaves = leaves_for(300, 11)
    log = TileLog(s3_store, "ds")
    assert log.append(0, [leaves[:100]]).root == MerkleTree.build(leaves[:100]).root
    done = log.append(100, [leaves[100:]])
    assert sorted(done.keys) == ["ds/tile/0/000", "ds/tile/0/001.p/44", "ds/tile/1/000.p/1"]
    reader = TileLog(s3_store, "ds")
    assert reader.root(100) == MerkleTree.build(leaves[:100]).root and reader.root(300) == done.root
    verify_consistency(100, 300, reader.root(100), done.root, reader.consistency_proof(100, 300))
    s3_store.delete("ds/tile/0/001.p/44")
    with pytest.raises(ValueError, match=r"s3://.*/ds/tile/0/001\.p/44 is missing"):
        TileLog(s3_store, "ds").root(300)


def test_a_batch_pushed_in_slices_writes_the_same_tiles(tmp_path, monkeypatch):
    """A large batch is pushed a slice at a time (memory): the tiles and root are the same as
    pushed whole, whatever the slice (here not a multiple of a tile's width)."""
    import catalog.signing.tiles as tiles

    leaves = leaves_for(70000, 4)
    whole = RecordingStore(tmp_path / "whole")
    got_whole = TileLog(whole).append(0, [leaves])
    monkeypatch.setattr(tiles, "APPEND_SLICE", 1000)
    sliced = RecordingStore(tmp_path / "sliced")
    got_sliced = TileLog(sliced).append(0, [leaves])
    assert (got_sliced.size, got_sliced.root) == (got_whole.size, got_whole.root) \
        == (70000, MerkleTree.build(leaves).root)
    assert sliced.list() == whole.list()
    assert all(sliced.read_bytes(k) == whole.read_bytes(k) for k in whole.list())
