import hashlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.signing.merkle import MerkleTree, leaf_hashes
from trust.merkle import leaf_hash, node_hash, root_from_inclusion_proof


# -- RFC 9162 §2.1.1 and §2.1.3.1, written straight from the definitions ---------------------
def sha(b):
    return hashlib.sha256(b).digest()


def split(n):  # the largest power of two smaller than n
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d):
    if len(d) == 0:
        return sha(b"")
    if len(d) == 1:
        return sha(b"\x00" + d[0])
    k = split(len(d))
    return sha(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m, d):
    if len(d) == 1:
        return []
    k = split(len(d))
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def tree_of(data):
    return MerkleTree.build(leaf_hashes(pa.array(data, pa.binary())))


def test_hash_definitions():
    assert leaf_hash(b"abc") == sha(b"\x00abc")
    assert node_hash(b"l" * 32, b"r" * 32) == sha(b"\x01" + b"l" * 32 + b"r" * 32)


def test_leaf_hashes_match_leaf_hash_on_slices():
    arr = pa.array([b"", b"a", "中".encode(), b"x" * 1000], pa.large_binary()).slice(1)
    assert [bytes(h) for h in leaf_hashes(arr)] == [leaf_hash(x) for x in arr.to_pylist()]
    assert leaf_hashes(pa.array([], pa.binary())).shape == (0, 32)


def test_empty_tree(tmp_path):
    t = MerkleTree.build(np.empty((0, 32), np.uint8))
    assert t.size == 0 and t.root == sha(b"") == mth([])
    with pytest.raises(ValueError):
        t.inclusion_proof(0)
    t.save(tmp_path / "t")
    assert MerkleTree.open(tmp_path / "t").root == sha(b"")


def test_known_small_trees():
    d = [b"a", b"b", b"c"]
    t = tree_of(d)
    # RFC 9162 §2.1.5 style: a 3-leaf tree is H(H(a,b), c), c promoted one level.
    assert t.root == node_hash(node_hash(leaf_hash(b"a"), leaf_hash(b"b")), leaf_hash(b"c"))
    assert t.inclusion_proof(2) == [node_hash(leaf_hash(b"a"), leaf_hash(b"b"))]


def test_promotion_gives_rfc9162_root_for_every_size_up_to_130():
    for n in range(1, 131):
        d = [i.to_bytes(4, "big") for i in range(n)]
        assert tree_of(d).root == mth(d), n


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=300))
def test_every_proof_is_rfc9162_path_and_verifies(data):
    t = tree_of(data)
    assert t.size == len(data) and t.root == mth(data)
    for m, item in enumerate(data):
        proof = t.inclusion_proof(m)
        assert proof == path(m, data)
        assert root_from_inclusion_proof(m, len(data), leaf_hash(item), proof) == t.root


def _root_or_none(*args):
    try:
        return root_from_inclusion_proof(*args)
    except ValueError:
        return None


def sides(m, n):
    """Which side each PATH(m, D[n]) element sits on (from the definition)."""
    if n == 1:
        return []
    k = split(n)
    return sides(m, k) + ["right"] if m < k else sides(m - k, n - k) + ["left"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=4), min_size=1, max_size=70, unique=True), st.data())
def test_any_tampering_breaks_verification(data, draw):
    t, n = tree_of(data), len(data)
    m = draw.draw(st.integers(0, n - 1))
    leaf, proof = leaf_hash(data[m]), t.inclusion_proof(m)
    assert root_from_inclusion_proof(m, n, leaf, proof) == t.root
    for bit in range(256):  # every single bit of the leaf hash
        bad = bytearray(leaf)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert _root_or_none(m, n, bytes(bad), proof) != t.root
    for i in range(len(proof)):  # every single bit of every proof element
        for bit in range(256):
            bad = bytearray(proof[i])
            bad[bit // 8] ^= 1 << (bit % 8)
            assert _root_or_none(m, n, leaf, proof[:i] + [bytes(bad)] + proof[i + 1:]) != t.root
    for other in range(n + 3):
        if other != m:
            assert _root_or_none(other, n, leaf, proof) != t.root
    for size in range(1, n + 70):
        if size == n:
            continue
        if m < size and sides(m, size) == sides(m, n):
            # Same path shape (e.g. leaf 0 of 5 or of 6 leaves): the path alone cannot tell the
            # sizes apart. The size is bound by the signed tree head (verify step 4).
            assert _root_or_none(m, size, leaf, proof) == t.root
        else:
            assert _root_or_none(m, size, leaf, proof) != t.root


def test_verification_refuses_bad_arguments():
    t = tree_of([b"a", b"b", b"c", b"d", b"e"])
    leaf, proof = leaf_hash(b"a"), t.inclusion_proof(0)
    with pytest.raises(ValueError):
        root_from_inclusion_proof(5, 5, leaf, proof)  # index >= size
    with pytest.raises(ValueError):
        root_from_inclusion_proof(0, 5, leaf, proof + [b"\x00" * 32])  # too long
    with pytest.raises(ValueError):
        root_from_inclusion_proof(0, 5, leaf, proof[:-1])  # too short
    with pytest.raises(ValueError):
        root_from_inclusion_proof(0, 5, leaf, [p[:31] for p in proof])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300))
def test_save_open_round_trip(tmp_path_factory, n):
    d = tmp_path_factory.mktemp("tree")
    t = tree_of([i.to_bytes(2, "big") for i in range(n)])
    t.save(d / "tree.bin")
    u = MerkleTree.open(d / "tree.bin")
    assert isinstance(u.levels[0], np.memmap)
    assert (u.size, u.root) == (t.size, t.root)
    assert all(u.inclusion_proof(i) == t.inclusion_proof(i) for i in range(n))
    assert [p.name for p in d.iterdir()] == ["tree.bin"]  # no temporary file left


def test_open_refuses_other_files(tmp_path):
    (tmp_path / "x").write_bytes(b"not a tree at all, not at all")
    with pytest.raises(ValueError):
        MerkleTree.open(tmp_path / "x")
    t = tree_of([b"a", b"b", b"c"])
    t.save(tmp_path / "t")
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-1])
    with pytest.raises(ValueError):
        MerkleTree.open(tmp_path / "t")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=40), st.data())
def test_any_flipped_bit_in_the_record_or_the_root_fails(data, draw):
    t, n = tree_of(data), len(data)
    m = draw.draw(st.integers(0, n - 1))
    proof = t.inclusion_proof(m)
    for bit in range(8 * len(data[m])):  # every bit of the record's bytes
        bad = bytearray(data[m])
        bad[bit // 8] ^= 1 << (bit % 8)
        assert root_from_inclusion_proof(m, n, leaf_hash(bytes(bad)), proof) != t.root
    computed = root_from_inclusion_proof(m, n, leaf_hash(data[m]), proof)
    for bit in range(256):  # every bit of the signed root
        bad = bytearray(t.root)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert computed != bytes(bad)
    # Leaf and node hashes are domain-separated: an inner node is not accepted as a leaf.
    if n > 1:
        inner = node_hash(t.levels[0][0].tobytes(), t.levels[0][1].tobytes())
        assert leaf_hash(inner) != inner and leaf_hash(t.levels[0][0].tobytes() + t.levels[0][1].tobytes()) != inner
