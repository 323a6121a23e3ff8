"""RFC 8785 (JCS) canonical JSON of a whole table at once (one record: trust/canonical.py).

`canonical_json(table)[i] == canonical_bytes(table.slice(i, 1).to_pylist()[0])`, built with
pyarrow.compute (no per-row Python). Records are flat: strings, integers, dates, booleans, null.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rfc8785

from trust.canonical import FLOAT_MSG as _FLOAT_MSG
from trust.canonical import MAX_SAFE_INT, sort_keys

_DATE_MIN = (dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days  # what Python's date can hold
_DATE_MAX = (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days

# RFC 8785 §3.2.2.2: short forms, then \u00xx (lowercase hex) for the other controls.
_SHORT = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROLS = [(chr(i), _SHORT.get(chr(i), f"\\u{i:04x}")) for i in range(0x20)]


def _utf8_bytes(chunk: pa.Array) -> np.ndarray:
    """The UTF-8 bytes a string chunk refers to, without copying."""
    _, offsets, data = chunk.buffers()
    if not len(chunk) or data is None:
        return np.empty(0, np.uint8)
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    off = np.frombuffer(offsets, width)[chunk.offset:chunk.offset + len(chunk) + 1]
    return np.frombuffer(data, np.uint8)[off[0]:off[-1]]


def _escape_mask(col: pa.ChunkedArray) -> np.ndarray | None:
    """Which rows hold '"', '\\' or a control byte (None: no row does), from the raw bytes
    (in UTF-8, bytes below 0x80 are ASCII characters only). A quick test first, usually all
    that runs: memchr for the two characters, a minimum for the controls."""
    rows, start = [], 0
    for chunk in col.chunks:
        b = _utf8_bytes(chunk)
        if b.size and (b.min() < 0x20 or b'"' in (raw := b.tobytes()) or b"\\" in raw):
            width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
            off = np.frombuffer(chunk.buffers()[1], width)[chunk.offset:chunk.offset + len(chunk) + 1]
            hits = np.flatnonzero((b < 0x20) | (b == 0x22) | (b == 0x5C))
            rows.append(start + np.searchsorted(off[1:] - off[0], hits, side="right"))
        start += len(chunk)
    if not rows:
        return None
    mask = np.zeros(len(col), bool)
    mask[np.concatenate(rows)] = True
    return mask


def _escape(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Escape only the rows that need it (usually none: found on the raw bytes first)."""
    mask = _escape_mask(col)
    if mask is None:
        return col
    mask = pa.array(mask)
    sub = pc.filter(col, mask)
    sub = pc.replace_substring(sub, "\\", "\\\\")
    sub = pc.replace_substring(sub, '"', '\\"')
    if pc.any(pc.match_substring_regex(sub, r"[\x00-\x1f]")).as_py():
        for ch, esc in _CONTROLS:
            sub = pc.replace_substring(sub, ch, esc)
    return pc.replace_with_mask(col, mask, sub.combine_chunks())


def _value_text(name: str, col: pa.ChunkedArray) -> tuple[str, pa.ChunkedArray]:
    """(quote, text): the JSON text of each value is quote + text + quote; nulls give `null`."""
    t = col.type
    if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _quoted(_escape(col))
    if pa.types.is_date32(t):
        lo, hi = pc.min_max(col.cast(pa.int32())).values()
        if lo.is_valid and (lo.as_py() < _DATE_MIN or hi.as_py() > _DATE_MAX):
            raise ValueError(f"column {name!r} holds dates outside 0001-01-01..9999-12-31")
        return _quoted(col.cast(pa.string()))
    if pa.types.is_integer(t):
        lo, hi = pc.min_max(col).values()
        if lo.is_valid and (lo.as_py() < -MAX_SAFE_INT or hi.as_py() > MAX_SAFE_INT):
            raise ValueError(f"column {name!r} holds integers outside ±(2**53-1); store them as decimal strings")
        return "", _fill_null(col.cast(pa.string()))
    if pa.types.is_boolean(t):
        return "", _fill_null(col.cast(pa.string()))
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        raise ValueError(f"column {name!r}: {_FLOAT_MSG}")
    raise ValueError(f"column {name!r} has unsupported type {t}; use string, date32, int8..int64 or bool")


def _fill_null(text):
    return pc.fill_null(text, "null") if text.null_count else text


def _quoted(text) -> tuple[str, pa.ChunkedArray]:
    if not text.null_count:  # the quotes go into the literals of the final join: one pass less
        return '"', text
    q, empty = pa.scalar('"', text.type), pa.scalar("", text.type)
    return "", _fill_null(pc.binary_join_element_wise(q, text, q, empty))


def canonical_json(table: pa.Table, prefix: bytes = b"") -> pa.Array:
    """Canonical JSON bytes of every row: binary, or large_binary past 2 GiB.
    `prefix` (ASCII) goes before each row's bytes: the leaf hash's 0x00, without a second copy."""
    n = table.num_rows
    names = sort_keys(table.column_names)
    if len(set(names)) != len(names):
        raise ValueError("duplicate column names cannot be one JSON object")
    start = prefix.decode("ascii")
    if not names:
        return pa.array([(start + "{}").encode()] * n, pa.binary())
    parts, literal = [], start + "{"
    for i, name in enumerate(names):
        col = table.column(name)
        key = ("," if i else "") + rfc8785.dumps(name).decode() + ":"
        if n and col.null_count == n and _supported(col.type):   # all null: a literal
            literal += key + "null"
            continue
        quote, text = _value_text(name, col)
        parts += [literal + key + quote, text]
        literal = quote
    parts.append(literal + "}")
    if len(parts) == 1:
        return pa.array([parts[0].encode()] * n, pa.binary())
    literals = sum(len(p.encode()) for p in parts[::2])
    large = (sum(t.nbytes for t in parts[1::2]) + n * literals > 2**31 - 1  # nbytes: an upper bound
             or any(pa.types.is_large_string(t.type) for t in parts[1::2]))
    typ = pa.large_string() if large else pa.string()
    parts = [pa.scalar(p, typ) if isinstance(p, str) else p.cast(typ) for p in parts]
    out = pc.binary_join_element_wise(*parts, pa.scalar("", typ))
    if isinstance(out, pa.ChunkedArray):   # one chunk: no copy
        out = out.chunk(0) if out.num_chunks == 1 else out.combine_chunks()
    return out.cast(pa.large_binary() if large else pa.binary())


def _supported(t: pa.DataType) -> bool:
    """Types a column may have (an all-null column of another type is refused as before)."""
    if pa.types.is_dictionary(t):
        return pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_date32(t)
            or pa.types.is_integer(t) or pa.types.is_boolean(t))
