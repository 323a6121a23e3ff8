"""SHA-256 over whole arrays (catalog/signing/digests.py) against hashlib, on both of its paths
(hashlib below SMALL values, DataFusion above), and record ids against their definition."""
import hashlib
import threading

import numpy as np
import pyarrow as pa
import pytest

from catalog.publish import store
from catalog.signing import digests
from catalog.signing.merkle import MerkleTree, leaf_hashes
from trust.merkle import leaf_hash

SIZES = [0, 1, 7, digests.SMALL - 1, digests.SMALL, 3 * digests.SMALL + 5]


def _values(n: int) -> list[bytes]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, int(rng.integers(0, 900)), dtype=np.uint8).tobytes() for _ in range(n)]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("typ", [pa.binary(), pa.large_binary()])
@pytest.mark.parametrize("prefix", [b"", b"\x00", b"dataset\x1f"])
def test_sha256_many_matches_hashlib(n, typ, prefix):
    values = _values(n)
    got = digests.sha256_many(pa.array(values, typ), prefix)
    assert got.shape == (n, 32) and got.dtype == np.uint8
    assert [bytes(r) for r in got] == [hashlib.sha256(prefix + v).digest() for v in values]


@pytest.mark.parametrize("n", [5, 2 * digests.SMALL])
def test_sha256_many_strings_slices_and_chunks(n):
    words = [f"证照{i}·{'x' * (i % 13)}" for i in range(n + 20)]
    arr = pa.array(words, pa.string()).slice(7, n)           # an offset into the buffers
    want = [hashlib.sha256(w.encode()).digest() for w in words[7:7 + n]]
    assert [bytes(r) for r in digests.sha256_many(arr)] == want
    chunked = pa.chunked_array([arr.slice(0, 3), arr.slice(3)])
    assert [bytes(r) for r in digests.sha256_many(chunked)] == want
    assert [bytes(r) for r in digests.sha256_many(arr.cast(pa.large_string()))] == want


def test_sha256_many_refuses_nulls_and_other_types():
    with pytest.raises(ValueError, match="nulls"):
        digests.sha256_many(pa.array([b"a", None] * digests.SMALL))
    with pytest.raises(ValueError, match="binary or string"):
        digests.sha256_many(pa.array([1, 2, 3]))


@pytest.mark.parametrize("n", [0, 1, digests.SMALL - 1, digests.SMALL, 3 * digests.SMALL + 5])
def test_sha256_joined_matches_hashlib_of_the_parts_joined(n):
    rng = np.random.default_rng(n)
    cols = [[None if rng.random() < 0.2 else v for v in _values(n + k)[k:]] for k in range(3)]
    cols[1] = [None] * n if n % 2 else cols[1]              # a part null in every row
    parts = [pa.array(cols[0], pa.binary()), pa.array(cols[1], pa.large_binary()),
             pa.array([b"\xff\x00"] * 7 + cols[2], pa.binary()).slice(7)]     # an offset
    got = digests.sha256_joined(parts)
    assert got.shape == (n, 32) and got.dtype == np.uint8
    want = [hashlib.sha256(b"".join(c[i] or b"" for c in cols)).digest() for i in range(n)]
    assert [bytes(r) for r in got] == want
    cut = [0, n // 3, n // 2, n] if n else [0, 0]           # parts chunked alike: a query a chunk
    chunked = [pa.chunked_array([p.slice(a, b - a) for a, b in zip(cut, cut[1:])], p.type) for p in parts]
    assert [bytes(r) for r in digests.sha256_joined(chunked)] == want
    one = digests.sha256_joined(parts[:1])
    assert [bytes(r) for r in one] == [hashlib.sha256(v or b"").digest() for v in cols[0]]


def test_sha256_joined_refuses_what_it_cannot_join():
    with pytest.raises(ValueError, match="at least one"):
        digests.sha256_joined([])
    with pytest.raises(ValueError, match="one length"):
        digests.sha256_joined([pa.array([b"a"]), pa.array([b"a", b"b"])])
    with pytest.raises(ValueError, match="one length"):
        digests.sha256_joined([pa.array(["a"])])


@pytest.mark.parametrize("n", [1, 3, digests.SMALL * 2 + 1])
def test_sha256_rows_matches_hashlib(n):
    rows = np.random.default_rng(n).integers(0, 256, (n, 64), dtype=np.uint8)
    got = digests.sha256_rows(rows, b"\x01")
    assert [bytes(r) for r in got] == [hashlib.sha256(b"\x01" + r.tobytes()).digest() for r in rows]


def test_hex_strings():
    m = np.random.default_rng(0).integers(0, 256, (1000, 16), dtype=np.uint8)
    m[0] = 0
    m[1] = 255
    assert digests.hex_strings(m).to_pylist() == [r.tobytes().hex() for r in m]
    assert len(digests.hex_strings(np.zeros((0, 16), np.uint8))) == 0


def test_no_table_is_left_in_the_session():
    # from_arrow registers every input: left there, each batch's bytes stayed in memory
    for _ in range(3):
        digests.sha256_many(pa.array(_values(digests.SMALL * 2), pa.binary()))
    assert not digests._context().catalog().schema().names()


def test_threads_get_right_answers():
    values = [_values(digests.SMALL * 2 + k) for k in range(4)]
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(3):
                results[k] = digests.sha256_many(pa.array(values[k], pa.binary()), b"\x00")
        except Exception as exc:      # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        assert [bytes(r) for r in results[k]] == [leaf_hash(v) for v in values[k]]


# -- record ids and leaves, as catalog/db/models.py Record and RFC 9162 define them -----------
def test_record_ids_follow_their_definition():
    n = digests.SMALL * 2 + 3
    holders = [f"91310000MA{i:08d}" for i in range(n)]
    numbers = [f"310000{i:09d}" for i in range(n)]
    got = store.record_ids("business_licence.x", pa.array(holders), pa.array(numbers)).to_pylist()
    want = [hashlib.sha256(h.encode()).hexdigest()[:12]
            + hashlib.sha256(f"business_licence.x\x1f{x}".encode()).hexdigest()[:20]
            for h, x in zip(holders, numbers)]
    assert got == want
    assert [g[:12] for g in got[:5]] == [store.holder_prefix(h) for h in holders[:5]]
    small = store.record_ids("business_licence.x", pa.array(holders[:4]), pa.array(numbers[:4]))
    assert small.to_pylist() == want[:4]


def test_record_ids_refuse_missing_keys():
    with pytest.raises(ValueError, match="licence_number"):
        store.record_ids("d", pa.array(["a", "b"]), pa.array(["1", None]))
    with pytest.raises(ValueError, match="holder_key"):
        store.record_ids("d", pa.array([None, "b"]), pa.array(["1", "2"]))


def test_prefixed_leaves_equal_leaves():
    values = _values(digests.SMALL + 9)
    plain = leaf_hashes(pa.array(values, pa.binary()))
    prefixed = leaf_hashes(pa.array([b"\x00" + v for v in values], pa.binary()), prefixed=True)
    assert (plain == prefixed).all()
    with pytest.raises(ValueError, match="leaf prefix"):
        leaf_hashes(pa.array([b"\x00a", b"b"], pa.binary()), prefixed=True)
    with pytest.raises(ValueError, match="leaf prefix"):
        leaf_hashes(pa.array([b"\x00a", b""], pa.binary()), prefixed=True)


def _root(level: list[bytes]) -> bytes:
    """RFC 9162's tree, level by level with the odd last node promoted (hashlib only)."""
    while len(level) > 1:
        up = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
              for i in range(0, len(level) - 1, 2)]
        level = up + level[-1:] if len(level) % 2 else up
    return level[0]


@pytest.mark.parametrize("n", [digests.SMALL * 2 + 1, 5000])
def test_tree_on_the_native_path(n):
    leaves = [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n)]
    tree = MerkleTree.build(np.frombuffer(b"".join(leaves), np.uint8).reshape(n, 32))
    assert tree.root == _root(leaves)


@pytest.mark.parametrize("n", [0, 1, 2, 5_000])
def test_record_ids_sorted_as_bytes_like_strings(n):
    """index_load.record_id_order (hex parsed, numpy key order with ties resolved) equals
    sorting the strings, with many ids sharing a holder prefix and first 8 bytes."""
    from catalog.publish import index_load

    rng = np.random.default_rng(n)
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[: n // 2, :6] = raw[0, :6] if n else 0              # one holder with half the records
    raw[: n // 4, 6:8] = 7                                  # ... and ties on the first 8 bytes
    raw[n // 4: n // 4 + 3] = raw[n // 4] if n else 0        # duplicates too
    ids = digests.hex_strings(raw)
    assert np.array_equal(digests.from_hex(ids, 32), raw)
    order = index_load.record_id_order(ids)
    assert ids.take(pa.array(order)).to_pylist() == sorted(ids.to_pylist())


def test_ids_that_are_not_lowercase_hex_are_sorted_as_strings():
    from catalog.publish import index_load

    for ids in (pa.array(["b" * 32, "A" * 32, "a" * 32]), pa.array(["bb", "a", "ab"]),
                pa.array(["g" * 32, "0" * 32])):
        assert digests.from_hex(ids, 32) is None
        assert ids.take(pa.array(index_load.record_id_order(ids))).to_pylist() == sorted(ids.to_pylist())
