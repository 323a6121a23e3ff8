"""A saved Merkle tree read from a remote store (range reads, no mapping) gives the same leaves,
root and proofs as the tree in memory; a damaged one is refused."""
from __future__ import annotations

import numpy as np
import pytest

from catalog.signing.merkle import MerkleTree


@pytest.mark.parametrize("n", [0, 1, 2, 7, 5_000])      # 5,000 leaves: lower levels beyond the tail read
def test_a_remote_tree_answers_like_the_built_one(s3_store, tmp_path, n):
    leaves = np.random.default_rng(n).integers(0, 256, (n, 32), dtype=np.uint8)
    built = MerkleTree.build(leaves)
    built.save(tmp_path / "tree.bin")
    s3_store.put_file(tmp_path / "tree.bin", "v/tree.bin")
    remote = MerkleTree.open_in(s3_store, "v/tree.bin")
    assert remote.size == n and remote.root == built.root
    assert np.array_equal(remote.leaf_array(), leaves)
    for i in sorted({0, n // 2, n - 1}) if n else []:
        assert remote.leaf(i) == built.leaf(i) and remote.inclusion_proof(i) == built.inclusion_proof(i)


def test_a_cut_remote_tree_is_refused(s3_store, tmp_path):
    MerkleTree.build(np.ones((100, 32), np.uint8)).save(tmp_path / "tree.bin")
    s3_store.write_bytes("v/tree.bin", (tmp_path / "tree.bin").read_bytes()[:-40])
    with pytest.raises(ValueError, match="truncated or damaged"):
        MerkleTree.open_in(s3_store, "v/tree.bin")
    s3_store.write_bytes("v/tree.bin", b"NOTATREE" + bytes(100))
    with pytest.raises(ValueError, match="not a saved Merkle tree"):
        MerkleTree.open_in(s3_store, "v/tree.bin")
