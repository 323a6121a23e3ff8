"""Merkle tree of RFC 9162 §2.1, built and stored (the hashes and proof checks: trust/merkle.py).

Built level by level; an odd last node is promoted unchanged to the next level, which gives
the same tree as RFC 9162's recursive MTH (split at the largest power of two below n).
Saved as one file (header + every level) that `open` maps, so proofs read only what they need;
`open_in` reads one from a store: mapped when the store is local, else by ranges (a proof reads
one node per level, the small top levels in one read).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa

from base.files import atomic_writer
from base.parallel import ordered_map
from base.storage import Store
from catalog.signing.digests import sha256_many, sha256_rows
from trust.merkle import EMPTY_ROOT, LEAF_PREFIX, NODE_PREFIX

_MAGIC = b"EXMRKL01"
_HEAD = struct.Struct("<8sQQ")  # magic, tree size, number of levels; then one <Q offset per level
_TAIL = 64 << 10                # a remote tree's last bytes (its top levels), read at once


class _RangedLevel:
    """One level of a tree in a remote file: nodes read by range as they are asked for."""

    def __init__(self, read, offset: int, n: int, cached: bytes | None = None):
        self._read, self._offset, self._n, self._cached = read, offset, n, cached

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < self._n:
            raise IndexError(i)
        data = self._cached[32 * i:32 * i + 32] if self._cached is not None else self._read(self._offset + 32 * i, 32)
        return np.frombuffer(data, np.uint8)

    def whole(self) -> np.ndarray:
        data = self._cached if self._cached is not None else self._read(self._offset, 32 * self._n)
        return np.frombuffer(data, np.uint8).reshape(self._n, 32)


def leaf_hashes(canonical: pa.Array, prefixed: bool = False) -> np.ndarray:
    """Leaf hash of every element of a binary / large_binary array: shape (n, 32) uint8.
    `prefixed`: the elements already start with the leaf prefix 0x00 (canonical_json's prefix)."""
    if isinstance(canonical, pa.ChunkedArray):
        canonical = canonical.combine_chunks()
    if not (pa.types.is_binary(canonical.type) or pa.types.is_large_binary(canonical.type)):
        raise ValueError(f"leaf_hashes needs a binary array, not {canonical.type}")
    if canonical.null_count:
        raise ValueError("leaf_hashes: the array holds nulls")
    if prefixed and len(canonical):
        width = np.int64 if pa.types.is_large_binary(canonical.type) else np.int32
        _, offsets, data = canonical.buffers()
        off = np.frombuffer(offsets, width)[canonical.offset:canonical.offset + len(canonical) + 1]
        if (np.diff(off) < 1).any() or np.frombuffer(data, np.uint8)[off[:-1]].any():
            raise ValueError("leaf_hashes: an element does not start with the leaf prefix 0x00")
    return sha256_many(canonical, b"" if prefixed else LEAF_PREFIX)


_PAIRS_PER_TASK = 1 << 16    # the wide levels are hashed in pieces on worker threads


def _parents(level: np.ndarray) -> np.ndarray:
    m = len(level) // 2
    pairs = np.ascontiguousarray(level[:2 * m]).reshape(m, 64)
    pieces = (pairs[i:i + _PAIRS_PER_TASK] for i in range(0, m, _PAIRS_PER_TASK))
    up = np.concatenate([*ordered_map(lambda p: sha256_rows(p, NODE_PREFIX), pieces),
                         np.zeros((0, 32), np.uint8)])
    return np.concatenate([up, level[-1:]]) if len(level) % 2 else up


class MerkleTree:
    def __init__(self, levels: list[np.ndarray]):
        self.levels = levels  # levels[0] = leaf hashes, levels[-1] = [root]

    @classmethod
    def build(cls, leaves: np.ndarray) -> MerkleTree:
        leaves = np.asarray(leaves, dtype=np.uint8)
        if leaves.ndim != 2 or leaves.shape[1] != 32:
            raise ValueError(f"leaves must have shape (n, 32), not {leaves.shape}")
        levels = [leaves] if len(leaves) else []
        while levels and len(levels[-1]) > 1:
            levels.append(_parents(levels[-1]))
        return cls(levels)

    @property
    def size(self) -> int:
        return len(self.levels[0]) if self.levels else 0

    @property
    def root(self) -> bytes:
        return self.levels[-1][0].tobytes() if self.levels else EMPTY_ROOT

    def leaf_array(self) -> np.ndarray:
        """Every leaf hash, (n, 32) uint8 (read whole from a remote tree)."""
        if not self.levels:
            return np.zeros((0, 32), np.uint8)
        leaves = self.levels[0]
        return leaves.whole() if isinstance(leaves, _RangedLevel) else np.ascontiguousarray(leaves)

    def leaf(self, index: int) -> bytes:
        self._check(index)
        return self.levels[0][index].tobytes()

    def inclusion_proof(self, index: int) -> list[bytes]:
        """The audit path PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf side first."""
        self._check(index)
        proof = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):  # else this node is promoted: no sibling at this level
                proof.append(level[sibling].tobytes())
            index >>= 1
        return proof

    def _check(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise ValueError(f"leaf index {index} is outside a tree of size {self.size}")

    def save(self, path) -> None:
        """Write every level to one file, atomically (temporary file + os.replace)."""
        path = Path(path)
        offsets, pos = [], _HEAD.size + 8 * len(self.levels)
        for level in self.levels:
            offsets.append(pos)
            pos += 32 * len(level)
        with atomic_writer(path) as f:
            f.write(_HEAD.pack(_MAGIC, self.size, len(self.levels)))
            f.write(struct.pack(f"<{len(offsets)}Q", *offsets))
            for level in self.levels:
                f.write(np.ascontiguousarray(level).data)

    @classmethod
    def open(cls, path) -> MerkleTree:
        """Map a saved tree; levels are read from disk only as proofs touch them."""
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        magic, size, count = _HEAD.unpack(mm[:_HEAD.size].tobytes())
        if magic != _MAGIC:
            raise ValueError(f"{path} is not a saved Merkle tree")
        offsets = struct.unpack(f"<{count}Q", mm[_HEAD.size:_HEAD.size + 8 * count].tobytes())
        levels, n = [], size
        for off in offsets:
            levels.append(mm[off:off + 32 * n].reshape(n, 32))
            n = (n + 1) // 2
        if (levels and (len(levels[-1]) != 1 or offsets[-1] + 32 != len(mm))) or (not levels and size):
            raise ValueError(f"{path} is truncated or damaged")
        return cls(levels)


    @classmethod
    def open_in(cls, store: Store, key: str) -> MerkleTree:
        """A saved tree in a store: mapped from a local store; else its header and top levels
        in one read and each lower node by range when a proof needs it."""
        local = store.local_path(key)
        if local is not None:
            return cls.open(local)
        f = store.open_input(key)
        total = f.size()

        def read(offset: int, length: int) -> bytes:
            data = f.read_at(length, offset)
            if len(data) != length:
                raise ValueError(f"{store.url(key)} is truncated or damaged")
            return bytes(data)

        tail_at = max(0, total - _TAIL)
        tail = read(tail_at, total - tail_at)
        head = tail if tail_at == 0 else read(0, _HEAD.size)
        magic, size, count = _HEAD.unpack(head[:_HEAD.size])
        if magic != _MAGIC:
            raise ValueError(f"{store.url(key)} is not a saved Merkle tree")
        raw = head[_HEAD.size:_HEAD.size + 8 * count] if tail_at == 0 else read(_HEAD.size, 8 * count)
        offsets = struct.unpack(f"<{count}Q", raw)
        levels, n = [], size
        for off in offsets:
            cached = tail[off - tail_at:off - tail_at + 32 * n] if off >= tail_at else None
            levels.append(_RangedLevel(read, off, n, cached))
            n = (n + 1) // 2
        if (offsets and (len(levels[-1]) != 1 or offsets[-1] + 32 != total)) or (not offsets and size):
            raise ValueError(f"{store.url(key)} is truncated or damaged")
        return cls(levels)  # type: ignore[arg-type]
