"""An append-only Merkle log (RFC 9162 §2.1) stored as C2SP tlog-tiles (https://c2sp.org/tlog-tiles).

A tile at level L holds consecutive hashes of complete subtrees of height 8·L (level 0: leaf
hashes), 256 to a full tile, each the 32 bytes of a SHA-256 concatenated; the n-th hash of a
level-L tile is MTH(D[(n·256 + i)·256**L : (n·256 + i + 1)·256**L]) (tlog-tiles "Merkle Tree").
The rightmost tile of a level is partial at most tree sizes: for size s it holds
floor(s / 256**L) mod 256 hashes and is stored as its own file, `tile/L/N.p/W`, beside the full
one written later ("Partial Tiles"). Files are never rewritten: an append writes the full tiles it
completes and the partial tiles of the new size, so a version costs storage in proportion to
what it appends. Reading at a tree size uses the tiles as they were at that size, so any
checkpoint's root and proofs stay answerable after later appends.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from base.storage import Store
from catalog.signing.merkle import _parents
from trust.merkle import EMPTY_ROOT, NODE_PREFIX, node_hash

_CACHED_TILES = 64


def tile_key(level: int, index: int, width: int | None = None) -> str:
    """The tlog-tiles path of a tile: "tile/<L>/<N>" with N in zero-padded 3-digit elements, all
    but the last prefixed "x" (1234067 -> "x001/x234/067"); a partial tile of W hashes
    (1 <= W <= 255) is "tile/<L>/<N>.p/<W>"; width None is a full tile."""
    if not 0 <= level <= 63:
        raise ValueError(f"a tile level is between 0 and 63, not {level}")
    if index < 0:
        raise ValueError(f"a tile index is not negative, not {index}")
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    path = f"tile/{level}/" + "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])
    if width is None:
        return path
    if not 1 <= width <= 255:
        raise ValueError(f"a partial tile is 1 to 255 hashes wide, not {width}")
    return f"{path}.p/{width}"


@dataclass(frozen=True)
class Appended:
    """The log after an append: its size, its root (RFC 9162 MTH) and the keys written."""
    size: int
    root: bytes
    keys: list[str]


class _Tile:
    """A tile's hashes and the complete subtrees above them inside the tile: nodes[r] holds the
    hashes of height r (relative to the tile's level), as many as its width fills."""

    def __init__(self, data: bytes):
        self.nodes = [data]
        while len(self.nodes[-1]) >= 64:
            below = self.nodes[-1]
            self.nodes.append(b"".join(hashlib.sha256(NODE_PREFIX + below[j:j + 64]).digest()
                                       for j in range(0, len(below) - 63, 64)))

    def node(self, height: int, index: int) -> bytes:
        return self.nodes[height][32 * index:32 * index + 32]


_Tiles = Callable[[int, int], _Tile]   # (level, index) -> the tile as it is at one tree size


APPEND_SLICE = 1 << 19      # leaf hashes pushed at once (16 MB): a whole version's would be copied whole


class TileLog:
    """A Merkle log in `store` under `prefix` as tlog-tiles. `height` is the tile height (8, as
    C2SP fixes it; smaller only for tests: 2**height hashes to a full tile)."""

    def __init__(self, store: Store, prefix: str = "", height: int = 8):
        if not 1 <= height <= 8:
            raise ValueError(f"a tile height is between 1 and 8, not {height}")
        self.store, self.prefix, self.height = store, prefix.strip("/"), height
        self.width = 1 << height
        self._cache: OrderedDict[str, _Tile] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, level: int, index: int, width: int | None = None) -> str:
        key = tile_key(level, index, width)
        return f"{self.prefix}/{key}" if self.prefix else key

    # --- the tile of a level at a tree size ------------------------------------------
    def _count(self, level: int, size: int) -> int:
        """Hashes at `level` for a tree of `size` leaves."""
        return size >> (self.height * level)

    def _levels(self, size: int) -> int:
        return next(level for level in range(64) if not self._count(level, size))

    def _at(self, level: int, index: int, size: int) -> tuple[str, int]:
        """The key and width of tile `index` of `level` as it is at `size`: full if complete, else
        the partial tile written when `size` was appended."""
        width = min(self.width, self._count(level, size) - index * self.width)
        if width <= 0:
            raise ValueError(f"tile {index} of level {level} is empty at tree size {size}")
        return self.key(level, index, None if width == self.width else width), width

    def _read(self, key: str, width: int) -> _Tile:
        with self._lock:
            tile = self._cache.get(key)
            if tile is not None:
                self._cache.move_to_end(key)
                return tile
        try:
            data = self.store.read_bytes(key)
        except OSError as e:
            if self.store.exists(key):
                raise
            raise ValueError(f"the tile {self.store.url(key)} is missing") from e
        if len(data) != 32 * width:
            raise ValueError(f"the tile {self.store.url(key)} holds {len(data)} bytes, not {32 * width}")
        tile = _Tile(data)
        with self._lock:                  # an API host's threads share a reader
            self._cache[key] = tile
            if len(self._cache) > _CACHED_TILES:
                self._cache.popitem(last=False)
        return tile

    def _tiles_at(self, size: int) -> _Tiles:
        return lambda level, index: self._read(*self._at(level, index, size))

    def _edge(self, size: int) -> list[np.ndarray]:
        """The hashes of each level's partial tile at `size` (none where the level fills whole tiles)."""
        edge = []
        for level in range(self._levels(size)):
            count = self._count(level, size)
            data = self._read(*self._at(level, count // self.width, size)).nodes[0] if count % self.width else b""
            edge.append(np.frombuffer(data, np.uint8).reshape(-1, 32))
        return edge

    # --- hashes of ranges (RFC 9162 §2.1.1) -------------------------------------------
    def _subtree(self, tile: _Tiles, height: int, index: int) -> bytes:
        """MTH of the complete subtree `index` of `height` (leaves index·2**height onwards):
        one tile read at level height // self.height, the rest hashed inside that tile."""
        level, rest = divmod(height, self.height)
        first = index << rest                 # its first hash at `level`
        return tile(level, first >> self.height).node(rest, (first % self.width) >> rest)

    def _range(self, tile: _Tiles, start: int, end: int) -> bytes:
        """MTH(D[start:end]), split as RFC 9162 §2.1.1 does; the ranges of the RFC's recursions
        start at a multiple of a power of two >= their length, so the pieces are complete subtrees."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self._subtree(tile, n.bit_length() - 1, start // n)
        k = 1 << ((n - 1).bit_length() - 1)   # the largest power of two smaller than n
        return node_hash(self._range(tile, start, start + k), self._range(tile, start + k, end))

    # --- reading -----------------------------------------------------------------------
    def root(self, size: int) -> bytes:
        """MTH(D[0:size]) (RFC 9162 §2.1.1); EMPTY_ROOT for 0. Reads only the partial tiles of `size`."""
        self._check_size(size)
        return self._range(self._tiles_at(size), 0, size) if size else EMPTY_ROOT

    def leaf(self, index: int, size: int) -> bytes:
        """The hash of leaf `index`, read as the tree of `size` leaves holds it."""
        self._check_index(index, size)
        return self._subtree(self._tiles_at(size), 0, index)

    def leaves(self, start: int, end: int, size: int) -> np.ndarray:
        """The hashes of leaves start..end-1 ((end - start, 32) uint8), read a level-0 tile at a time."""
        if not 0 <= start <= end <= size:
            raise ValueError(f"leaves {start} to {end} are outside a tree of size {size}")
        out, at = [], start
        while at < end:
            tile = at // self.width
            data = self._read(*self._at(0, tile, size)).nodes[0]
            lo, hi = at - tile * self.width, min(end - tile * self.width, self.width)
            out.append(np.frombuffer(data, np.uint8)[32 * lo:32 * hi].reshape(-1, 32))
            at = tile * self.width + hi
        return np.concatenate(out) if out else np.zeros((0, 32), np.uint8)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf side first."""
        self._check_index(index, size)
        tile, proof, start, end = self._tiles_at(size), [], 0, size
        while end - start > 1:
            k = 1 << ((end - start - 1).bit_length() - 1)
            if index < start + k:
                proof.append(self._range(tile, start + k, end))
                end = start + k
            else:
                proof.append(self._range(tile, start, start + k))
                start += k
        return proof[::-1]

    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 for 0 < m <= n ([] when m == n), read at size n."""
        if not 0 < m <= n:
            raise ValueError(f"a consistency proof needs 0 < m <= n, not m={m}, n={n}")
        self._check_size(n)
        tile, proof, start, end, whole = self._tiles_at(n), [], 0, n, True
        while m != end - start:                # SUBPROOF(m, D[start:end], whole), m relative to start
            k = 1 << ((end - start - 1).bit_length() - 1)
            if m <= k:
                proof.append(self._range(tile, start + k, end))
                end = start + k
            else:
                proof.append(self._range(tile, start, start + k))
                start, m, whole = start + k, m - k, False
        if not whole:                          # SUBPROOF(m, D[m], false) = {MTH(D[m])}
            proof.append(self._range(tile, start, end))
        return proof[::-1]

    @staticmethod
    def _check_size(size: int) -> None:
        if size < 0:
            raise ValueError(f"a tree size is not negative, not {size}")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside a tree of size {size}")

    # --- appending ---------------------------------------------------------------------
    def append(self, size: int, batches: Iterable[np.ndarray]) -> Appended:
        """Append leaf hashes ((k, 32) uint8 batches) to the log of `size` leaves, whose tiles for
        `size` are stored. Writes the full tiles the append completes and the partial tiles of
        the new size that differ from those of `size` (never a file already there); holds one
        batch and the right edge (a partial tile per level) in memory. Returns the new size, its
        root and the keys written; if the append fails, the keys it wrote are deleted."""
        self._check_size(size)
        buffers = self._edge(size)
        written: list[str] = []
        try:
            new = size
            for batch in batches:
                batch = np.ascontiguousarray(batch, dtype=np.uint8)
                if batch.ndim != 2 or batch.shape[1] != 32:
                    raise ValueError(f"leaf hashes come as (k, 32) arrays, not {batch.shape}")
                for at in range(0, len(batch), APPEND_SLICE):     # memory: a slice's copies, not the batch's
                    part = batch[at:at + APPEND_SLICE]
                    self._push(buffers, 0, self._count(0, new), part, written)
                    new += len(part)
            for level, buf in enumerate(buffers):     # a level that did not grow keeps its file
                if len(buf) and self._count(level, new) != self._count(level, size):
                    key = self.key(level, self._count(level, new) // self.width, len(buf))
                    self._write(key, buf, written)
        except BaseException:
            for key in written:
                self.store.delete(key)
            raise
        # the subtrees of the root all lie in the partial tiles of the new size (see root)
        edge_tiles = [_Tile(buf.tobytes()) for buf in buffers]
        root = self._range(lambda level, index: edge_tiles[level], 0, new) if new else EMPTY_ROOT
        return Appended(new, root, written)

    def _push(self, buffers: list[np.ndarray], level: int, count: int, hashes: np.ndarray,
              written: list[str]) -> None:
        """Add `hashes` to `level`, which holds `count` hashes: write each tile they complete and
        carry its root (the MTH of its subtree) to the level above."""
        while len(hashes):
            if level == len(buffers):
                buffers.append(np.zeros((0, 32), np.uint8))
            buf = np.concatenate([buffers[level], hashes])
            full = len(buf) // self.width
            first = count // self.width
            for t in range(full):
                self._write(self.key(level, first + t), buf[t * self.width:(t + 1) * self.width], written)
            buffers[level] = buf[full * self.width:].copy()
            hashes = buf[:full * self.width]
            for _ in range(self.height):
                hashes = _parents(hashes) if len(hashes) else hashes
            count, level = count // self.width, level + 1

    def _write(self, key: str, hashes: np.ndarray, written: list[str]) -> None:
        with self._lock:
            self._cache.pop(key, None)
        self.store.write_bytes(key, np.ascontiguousarray(hashes).tobytes())
        written.append(key)
