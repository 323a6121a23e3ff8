"""Building the verifiable map "exchange-map/1" (the format and the proof check: trust/vmap.py).

`bucket_hashes` hashes every bucket, a range of buckets at a time, from (id, leaf index, leaf hash) columns;
`MapLevel` holds the 2^bits bucket hashes and every level of the perfect tree above them, gives
the root and paths, and `replaced` rehashes only the ancestors of changed buckets.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from base.storage import Store
from catalog.signing.digests import sha256_many, sha256_rows
from trust.merkle import LEAF_PREFIX, NODE_PREFIX
from trust.vmap import MAX_BITS, bucket_of, entry_bytes

PER_BUCKET = 64            # bits_for aims at this many records a bucket at most
_MAGIC = b"EXVMAP01"
_HEAD = struct.Struct("<8sI")   # magic, bits; then 2^bits hashes of 32 bytes


def bits_for(n: int) -> int:
    """The smallest b >= 0 with n <= 64 * 2^b, at most 24."""
    b = 0
    while b < MAX_BITS and n > PER_BUCKET << b:
        b += 1
    return b


def _check_bits(bits: int) -> None:
    if not 0 <= bits <= MAX_BITS:
        raise ValueError(f"bits is from 0 to {MAX_BITS}, not {bits}")


def bucket_range(bucket: int, bits: int) -> tuple[str, str | None]:
    """The record ids of a bucket are lo <= id < hi (32 lowercase hex); hi None for the last."""
    _check_bits(bits)
    if not 0 <= bucket < 1 << bits:
        raise ValueError(f"bucket {bucket} is not one of the 2^{bits} buckets")
    shift = 128 - bits
    hi = None if bucket + 1 == 1 << bits else f"{(bucket + 1) << shift:032x}"
    return f"{bucket << shift:032x}", hi


BATCH = 262_144          # bucket_hashes builds and hashes about this many entries at once


def bucket_hashes(ids: np.ndarray, leaf_index: np.ndarray, leaf_hash: np.ndarray, bits: int,
                  batch: int = BATCH) -> np.ndarray:
    """The hash of every bucket, (2^bits, 32) uint8, from one entry per record in any order:
    ids (n, 16) uint8, leaf_index (n,) int, leaf_hash (n, 32) uint8. Duplicate ids are refused.
    Whole buckets about `batch` entries at a time (at least one bucket): beside the columns,
    memory is the record order's and a batch's entries, whatever n."""
    ids, leaf_index, leaf_hash = _checked(ids, leaf_index, leaf_hash, bits)
    order, high = _order(ids)
    counts = np.bincount(_bucket(high, bits), minlength=1 << bits)
    del high
    ends = np.cumsum(counts)
    out = np.empty((1 << bits, 32), np.uint8)
    lo = start = 0
    while lo < len(counts):
        hi = max(lo + 1, int(np.searchsorted(ends, start + batch, "right")))
        end = int(ends[hi - 1])
        out[lo:hi] = _hashes(_build(ids, leaf_index, leaf_hash, order[start:end]), counts[lo:hi])
        lo, start = hi, end
    return out


def some_bucket_hashes(ids: np.ndarray, leaf_index: np.ndarray, leaf_hash: np.ndarray, bits: int,
                       buckets: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """bucket_hashes of the ascending `buckets` alone, (len(buckets), 32), from every entry of
    those buckets (and of no other) in any order: a Delta version's touched buckets. Whole
    buckets about `batch` entries at a time, as bucket_hashes."""
    ids, leaf_index, leaf_hash = _checked(ids, leaf_index, leaf_hash, bits)
    order, high = _order(ids)
    bucket = _bucket(high[order], bits)
    del high
    buckets = np.asarray(buckets, np.int64)
    if len(buckets) > 1 and (np.diff(buckets) <= 0).any():
        raise ValueError("the buckets are listed once each, in ascending order")
    starts = np.searchsorted(bucket, buckets, "left")
    ends = np.searchsorted(bucket, buckets, "right")
    if int((ends - starts).sum()) != len(bucket):
        raise ValueError("an entry outside the buckets listed")
    del bucket
    counts = ends - starts
    out = np.empty((len(buckets), 32), np.uint8)
    lo = 0
    while lo < len(buckets):
        hi = max(lo + 1, int(np.searchsorted(ends, int(starts[lo]) + batch, "right")))
        out[lo:hi] = _hashes(_build(ids, leaf_index, leaf_hash, order[starts[lo]:ends[hi - 1]]), counts[lo:hi])
        lo = hi
    return out


def _checked(ids: np.ndarray, leaf_index: np.ndarray, leaf_hash: np.ndarray,
             bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _check_bits(bits)
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    leaf_hash = np.ascontiguousarray(leaf_hash, dtype=np.uint8)
    leaf_index = np.asarray(leaf_index)
    n = len(ids)
    if ids.shape != (n, 16) or leaf_hash.shape != (n, 32) or leaf_index.shape != (n,):
        raise ValueError(f"shapes {ids.shape}, {leaf_index.shape}, {leaf_hash.shape}: want (n, 16), (n,), (n, 32)")
    if n and (leaf_index.dtype.kind not in "iu" or int(leaf_index.min()) < 0):
        raise ValueError("leaf indexes are whole numbers >= 0")
    return ids, leaf_index, leaf_hash


def _order(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The record id order of `ids` (duplicates refused) and their first 8 bytes as uint64."""
    n = len(ids)
    high = ids[:, :8].copy().view(">u8").ravel()    # ids compare as (high, low) uint64 pairs
    order = np.argsort(high)
    if n > 1 and np.equal((sh := high[order])[1:], sh[:-1]).any():   # rare for random ids: low decides
        low = ids[:, 8:].copy().view(">u8").ravel()
        order = np.lexsort((low, high))
        h, lo = high[order], low[order]
        if ((h[1:] == h[:-1]) & (lo[1:] == lo[:-1])).any():
            raise ValueError("a record id appears twice: the map has one entry per record")
    return order, high


def _bucket(high: np.ndarray, bits: int) -> np.ndarray:
    return (high >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(high), np.int64)


def _build(ids: np.ndarray, leaf_index: np.ndarray, leaf_hash: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The entries (len(rows), 56) of the records at `rows`, in that order."""
    k = len(rows)
    entries = np.empty((k, 56), np.uint8)
    entries[:, :16] = ids[rows]
    entries[:, 16:24] = leaf_index[rows].astype(">u8").view(np.uint8).reshape(k, 8)
    entries[:, 24:] = leaf_hash[rows]
    return entries


_HASHED = 4_096         # buckets hashed at once: the hashing's copies of the entries stay small


def _hashes(entries: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """SHA-256(0x00 ‖ entries) of consecutive groups of `counts` entries."""
    offsets = np.concatenate([[0], np.cumsum(counts) * 56]).astype(np.int64)
    data = pa.py_buffer(np.ascontiguousarray(entries).ravel())
    out = np.empty((len(counts), 32), np.uint8)
    for lo in range(0, len(counts), _HASHED):
        hi = min(lo + _HASHED, len(counts))
        # each bucket's entries are contiguous in id order: one binary value per bucket
        arr = pa.Array.from_buffers(pa.large_binary(), hi - lo, [None, pa.py_buffer(offsets[lo:hi + 1]), data])
        out[lo:hi] = sha256_many(arr, LEAF_PREFIX)
    return out


def _parents(level: np.ndarray) -> np.ndarray:
    return sha256_rows(level.reshape(len(level) // 2, 64), NODE_PREFIX)


class MapLevel:
    """The 2^bits bucket hashes of a map and the perfect RFC 9162 tree above them."""

    def __init__(self, hashes: np.ndarray, _levels: list[np.ndarray] | None = None):
        hashes = np.ascontiguousarray(hashes, dtype=np.uint8)
        bits = len(hashes).bit_length() - 1
        if hashes.ndim != 2 or hashes.shape[1] != 32 or len(hashes) != 1 << bits or bits > MAX_BITS:
            raise ValueError(f"a map has 2^bits (bits <= {MAX_BITS}) hashes of 32 bytes, not {hashes.shape}")
        self.bits = bits
        if _levels is None:
            _levels = [hashes]
            while len(_levels[-1]) > 1:
                _levels.append(_parents(_levels[-1]))
        self.levels = _levels   # levels[0]: bucket hashes; levels[-1]: [root]

    @property
    def hashes(self) -> np.ndarray:
        return self.levels[0]

    def root(self) -> bytes:
        return self.levels[-1][0].tobytes()

    def path(self, bucket: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(bucket, D[2^bits]), leaf side first."""
        if not 0 <= bucket < len(self.hashes):
            raise ValueError(f"bucket {bucket} is not one of the 2^{self.bits} buckets")
        out = []
        for level in self.levels[:-1]:
            out.append(level[bucket ^ 1].tobytes())
            bucket >>= 1
        return out

    def replaced(self, updates: dict[int, bytes]) -> MapLevel:
        """A new map with new hashes for some buckets; only their ancestors are rehashed."""
        if not updates:
            return self
        if any(len(h) != 32 for h in updates.values()):
            raise ValueError("a bucket hash is 32 bytes")
        return self.replaced_rows(np.fromiter(updates, np.int64, len(updates)),
                                  np.frombuffer(b"".join(updates.values()), np.uint8).reshape(-1, 32))

    def replaced_rows(self, buckets: np.ndarray, hashes: np.ndarray) -> MapLevel:
        """replaced() of buckets[i] -> hashes[i] ((n,) distinct bucket numbers, (n, 32) uint8)."""
        idx = np.asarray(buckets, np.int64)
        hashes = np.asarray(hashes, np.uint8)
        if not len(idx):
            return self
        if (idx < 0).any() or (idx >= len(self.hashes)).any():
            raise ValueError(f"a bucket outside the 2^{self.bits} buckets: {sorted(idx.tolist())}")
        if hashes.shape != (len(idx), 32):
            raise ValueError(f"{len(idx)} bucket hashes of 32 bytes, not {hashes.shape}")
        levels = [level.copy() for level in self.levels]
        levels[0][idx] = hashes
        for d in range(1, len(levels)):
            idx = np.unique(idx >> 1)
            below = levels[d - 1]
            pairs = np.concatenate([below[2 * idx], below[2 * idx + 1]], axis=1)
            levels[d][idx] = sha256_rows(pairs, NODE_PREFIX)
        return MapLevel(levels[0], levels)

    def save(self, store: Store, key: str) -> str:
        """Write the bucket hashes to `store` (magic, bits, hashes); the tree is rebuilt on load."""
        return store.write_bytes(key, _HEAD.pack(_MAGIC, self.bits) + self.hashes.tobytes())

    @classmethod
    def load(cls, store: Store, key: str) -> MapLevel:
        data = store.read_bytes(key)
        if len(data) < _HEAD.size:
            raise ValueError(f"{store.url(key)} is not a saved map")
        magic, bits = _HEAD.unpack_from(data)
        if magic != _MAGIC or bits > MAX_BITS:
            raise ValueError(f"{store.url(key)} is not a saved map")
        if len(data) != _HEAD.size + (32 << bits):
            raise ValueError(f"{store.url(key)} is truncated or damaged")
        return cls(np.frombuffer(data, np.uint8, offset=_HEAD.size).reshape(1 << bits, 32))


def proof(bits: int, bucket: int, entries: Iterable[tuple[str, int, bytes]], path: list[bytes]) -> dict:
    """The map proof dict of trust/vmap.py from a bucket's (record_id, leaf_index, leaf_hash)
    entries (any order; each checked to be of the bucket, ids once) and its path (MapLevel.path)."""
    rows = sorted((str(rid), int(index), bytes(leaf)) for rid, index, leaf in entries)
    for i, (rid, index, leaf) in enumerate(rows):
        entry_bytes(rid, index, leaf)
        if bucket_of(rid, bits) != bucket:
            raise ValueError(f"record {rid} is not in bucket {bucket}")
        if i and rows[i - 1][0] == rid:
            raise ValueError(f"record {rid} appears twice in bucket {bucket}")
    if len(path) != bits or any(len(p) != 32 for p in path):
        raise ValueError(f"a path for {bits} bits is {bits} hashes of 32 bytes")
    return {"bits": bits, "bucket": bucket, "entries": [[rid, index, leaf.hex()] for rid, index, leaf in rows],
            "path": [bytes(p).hex() for p in path]}
