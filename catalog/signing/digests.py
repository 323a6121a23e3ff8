"""SHA-256 of many byte strings at once, without a Python call per string.

DataFusion's `sha256` (the RustCrypto sha2 crate) runs over a whole Arrow array in native code
and releases the GIL; Python's hashlib pays an interpreter round trip per string, which was
most of publish's time (three hashes per record plus one per tree node). Small inputs stay on
hashlib: a query costs about a millisecond whatever its size.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SMALL = 512          # below this many strings, hashlib's loop beats a query's fixed cost
_local = threading.local()


def _context():
    """One DataFusion session per thread, one partition (callers parallelise by batch)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        from datafusion import SessionConfig, SessionContext  # lazy: about a second to import

        ctx = SessionContext(SessionConfig().with_target_partitions(1).with_batch_size(1 << 20))
        _local.ctx = ctx
    return ctx


def warm() -> float:
    """Import DataFusion and open this thread's session (about a second, once per process:
    a long-running worker pays it once); returns the seconds it took."""
    t = time.perf_counter()
    _context()
    return time.perf_counter() - t


def _binary(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    t = values.type
    if not (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t)):
        raise ValueError(f"sha256 needs binary or string values, not {t}")
    if values.null_count:
        raise ValueError("sha256: the values hold nulls")
    return values


def _select(columns: dict[str, pa.Array | pa.ChunkedArray], expr) -> pa.Array:
    ctx = _context()
    try:   # from_arrow registers the table in the session: deregistered, or it is kept for good
        out = ctx.from_arrow(pa.table(columns), name="input").select(expr.alias("out")).to_arrow_table()
    finally:
        ctx.deregister_table("input")
    return out.column("out").combine_chunks()


def _as_matrix(digests: pa.Array) -> np.ndarray:
    """A binary array of 32-byte digests -> (n, 32) uint8, copied once."""
    n = len(digests)
    _, offsets, data = digests.buffers()
    width = np.int64 if pa.types.is_large_binary(digests.type) else np.int32
    off = np.frombuffer(offsets, width)[digests.offset:digests.offset + n + 1]
    if off[-1] - off[0] != 32 * n:
        raise AssertionError("sha256 gave digests that are not 32 bytes")
    return np.frombuffer(data, np.uint8)[off[0]:off[-1]].reshape(n, 32).copy()


def sha256_many(values: pa.Array | pa.ChunkedArray, prefix: bytes = b"") -> np.ndarray:
    """SHA-256(prefix ‖ v) for every v: an (n, 32) uint8 array."""
    values = _binary(values)
    n = len(values)
    if n < SMALL:
        base = hashlib.sha256(prefix)
        out = bytearray()
        for v in values.cast(pa.large_binary()).to_pylist():
            h = base.copy()
            h.update(v)
            out += h.digest()
        return np.frombuffer(bytes(out), np.uint8).reshape(n, 32)
    from datafusion import col, lit  # lazy: about a second to import
    from datafusion import functions as f

    expr = col("v") if not prefix else f.concat(lit(pa.scalar(prefix, pa.binary())), col("v"))
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = values.cast(pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary())
    return _as_matrix(_select({"v": values}, f.sha256(expr)))


def sha256_joined(parts: Sequence[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """SHA-256 of each row's parts one after another (a null part: no bytes), for binary arrays
    of one length: (n, 32) uint8. A chunk (of the parts chunked alike) at a time, Arrow joins the
    parts (one copy of the bytes) and DataFusion hashes them: no joined array of the whole is
    built, and both release the GIL (cheaper than DataFusion's own concat: 1M silo rows' hashes
    0.93 -> 0.85 CPU-s). Below SMALL rows, hashlib hashes."""
    if not parts:
        raise ValueError("sha256_joined needs at least one part")
    n = len(parts[0])
    if any(len(p) != n or not (pa.types.is_binary(p.type) or pa.types.is_large_binary(p.type)) for p in parts):
        raise ValueError("sha256_joined needs binary arrays of one length")
    if any(pa.types.is_large_binary(p.type) for p in parts):
        parts = [p.cast(pa.large_binary()) for p in parts]
    chunks = [p.chunks if isinstance(p, pa.ChunkedArray) else [p] for p in parts]
    if len({tuple(len(c) for c in cs) for cs in chunks}) != 1:       # not chunked alike: one chunk
        chunks = [[pa.concat_arrays(cs) if cs else pa.array([], parts[0].type)] for cs in chunks]
    out = [_hash_joined(list(row)) for row in zip(*chunks)]
    return np.concatenate(out) if len(out) > 1 else out[0] if out else np.zeros((0, 32), np.uint8)


def _hash_joined(parts: list[pa.Array]) -> np.ndarray:
    empty = pa.scalar(b"", parts[0].type)
    joined = pc.binary_join_element_wise(*parts, empty, null_handling="replace", null_replacement=b"")
    return sha256_many(joined)


def sha256_rows(matrix: np.ndarray, prefix: bytes = b"") -> np.ndarray:
    """SHA-256(prefix ‖ row) for every row of an (n, k) uint8 array: (n, 32) uint8."""
    n, k = matrix.shape
    data = np.ascontiguousarray(matrix, dtype=np.uint8)
    if prefix:
        data = np.concatenate([np.broadcast_to(np.frombuffer(prefix, np.uint8), (n, len(prefix))), data], axis=1)
        k += len(prefix)
    width = np.int64 if k * n > 2**31 - 1 else np.int32
    offsets = np.arange(0, k * (n + 1), k, dtype=width)
    typ = pa.large_binary() if width is np.int64 else pa.binary()
    arr = pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return sha256_many(arr)


_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint16)  # byte -> 2 chars


def hex_strings(matrix: np.ndarray) -> pa.Array:
    """Each row of an (n, k) uint8 array as 2k lowercase hex characters: a string array."""
    n, k = matrix.shape
    chars = np.ascontiguousarray(_HEX[matrix])
    offsets = np.arange(0, 2 * k * (n + 1), 2 * k, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


# two hex characters (as a little-endian uint16) -> their byte; 256: not two lowercase hex characters
_PAIR = np.full(65536, 256, np.uint16)
_PAIR[np.frombuffer(_HEX.tobytes(), "<u2")] = np.arange(256, dtype=np.uint16)


def from_hex(strings: pa.Array, width: int) -> np.ndarray | None:
    """An array of lowercase hex strings of `width` characters -> (n, width/2) uint8; None if
    any is null, of another length or not lowercase hex."""
    n = len(strings)
    if strings.null_count or not pa.types.is_string(strings.type) or width % 2:
        return None
    _, offsets, data = strings.buffers()
    off = np.frombuffer(offsets, np.int32)[strings.offset:strings.offset + n + 1]
    if n == 0 or not (np.diff(off) == width).all():
        return None if n else np.zeros((0, width // 2), np.uint8)
    pairs = _PAIR[np.frombuffer(data, np.uint8)[off[0]:off[-1]].view("<u2")]     # a table look-up a byte
    if pairs.max() > 255:
        return None
    return pairs.astype(np.uint8).reshape(n, width // 2)

