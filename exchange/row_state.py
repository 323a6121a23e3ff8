"""Change detection: which of a run's silo rows are as they were when the dataset's current
version was published, so that only the others are conformed, validated and published.

The row state (`mirror/<source>.rows.arrow`, beside the mirror) holds one row per silo row of
the last published pull: a hash of the row's content (`row_hash`, 16 bytes), its conformed
licence number, whether it was accepted and whether its accepted state was withdrawn, and for a
quarantined row none of whose failures is dated, those failures (`reasons`: validate takes them
for the row, unchanged, instead of checking it again). Its
schema metadata names the `fingerprint` of what decides a row's outcome (the registration's
mapping and checks, the suite file, the certificate type, the extracted columns, the code that
conforms and checks: DECIDING, CODE) and the dataset `version` it was published as.

A run is a delta run when the row state's fingerprint and version are the current ones: a row
whose hash was accepted then is carried (its record is the current one); every other row (new,
changed, quarantined before) is conformed and validated (a quarantined one with known `reasons`
keeps them: validate does not check it again). A carried row whose
licence number another checked row has, or that a row gone or changed had, is checked too, so
uniqueness and withdrawals are decided as a full run decides them. Otherwise the run is full
(and still writes the row state for the next). The state is stamped with the version only
after publish (`commit`): a stale one does not match the current version, so it can only cost
work. Beside it, `mirror/<source>.held.arrow` (Held, stamped alike) keeps the conformed form of
the state's rows that were not accepted: a delta run checks them again but does not conform them
again.

Matching costs no Python object per row: each extracted batch is hashed in one pass (a header of
the values' byte lengths, then the values) and looked up by binary search in the state's hashes,
sorted once per run (the first 8 bytes as a uint64). A row equal to the mirror's at its position,
the mirror and the state being one pull's (their `pull` stamps), takes the state's hash there
unhashed (exchange/aligned.py): then only equal rows' groups are sorted, and the state's
hashes only if a row is not found by position (Matcher `positional`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base import staging
from base.storage import Store
from catalog.signing.digests import sha256_joined
from quality import suites
from quality.validate import incremental_blocker
from schemas.conform import ROW

CODE = 2                      # bump when the row hash, conform or validate decide rows differently
ENV = "EXCHANGE_CHANGE_DETECTION"      # "0": every run full
HASH = pa.binary(16)
SCHEMA = pa.schema([("row_hash", HASH), ("licence_number", pa.string()), ("accepted", pa.bool_()),
                    ("withdrawn", pa.bool_()), ("reasons", pa.list_(pa.string())),
                    ("rechecked", pa.list_(pa.string()))])
# conform's hand-off `rows`: every extracted row in silo order; carried rows with their state
ROWS = pa.schema([("row_hash", HASH), ("carried", pa.bool_()), ("licence_number", pa.string()),
                  ("withdrawn", pa.bool_())])
WITHDRAWN = "withdrawn"


def state_key(source_id: str) -> str:
    return f"mirror/{source_id}.rows{staging.TRANSIENT_SUFFIX}"


def held_key(source_id: str) -> str:
    """The conformed form of the row state's rows that were not accepted (Held)."""
    return f"mirror/{source_id}.held{staging.TRANSIENT_SUFFIX}"


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


# --- hashing ------------------------------------------------------------------------------
def _text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type):
        return column
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        encode = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True).encode
        return pa.array([None if v is None else encode(v) for v in column.to_pylist()], pa.string())


def _lengths(text: pa.Array) -> np.ndarray:
    """Each value's byte length (null: -1), from the string array's offsets."""
    n = len(text)
    if not n:
        return np.zeros(0, np.int64)
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    length = np.diff(np.frombuffer(text.buffers()[1], width)[text.offset:text.offset + n + 1])
    if text.null_count:
        length = np.where(text.is_null().to_numpy(zero_copy_only=False), -1, length)
    if length.max() >= 2**31:
        raise ValueError("a silo value of 2 GiB or more")
    return length


def row_hashes(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """(n, 16) uint8: SHA-256 of each row's content (every column but `_row`, in order), cut to
    16 bytes. A row is written as its values' byte lengths (int32 little-endian, null: -1), then
    the values' text one after another: the lengths say where each value ends, so no two rows'
    encodings are the same. Joined and hashed in one native pass over the batch's bytes."""
    texts = [_text(batch.column(name)) for name in batch.schema.names if name != ROW]
    n = batch.num_rows
    if not texts:
        return np.zeros((n, 16), np.uint8)
    lengths = np.empty((n, len(texts)), "<i4")
    for i, text in enumerate(texts):
        lengths[:, i] = _lengths(text)
    width = lengths.shape[1] * 4
    sizes = np.maximum(lengths, 0).sum(axis=1, dtype=np.int64) + width
    head = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(np.arange(0, width * (n + 1), width, "<i4")),
                                                  pa.py_buffer(lengths)])
    spans = _spans(sizes)       # a chunk each: DataFusion joins a chunk at a time, in one query
    parts = [pa.chunked_array([a.slice(lo, hi - lo) for lo, hi in spans], a.type) for a in [head, *map(_binary, texts)]]
    return sha256_joined(parts)[:, :16]


def _binary(text: pa.Array) -> pa.Array:
    """The string array's bytes as a binary array (no copy, no kernel call)."""
    typ = pa.large_binary() if pa.types.is_large_string(text.type) else pa.binary()
    return pa.Array.from_buffers(typ, len(text), text.buffers(), text.null_count, text.offset)


SPAN = 1 << 24        # bytes joined and hashed at once: memory stays a few slices of a batch


def _spans(sizes: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [lo, hi) whose encodings together stay under SPAN bytes (one row at least)."""
    spans, lo, n = [], 0, len(sizes)
    ends = np.cumsum(sizes)
    while lo < n:
        base = ends[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, base + SPAN, "right")))
        spans.append((lo, hi))
        lo = hi
    return spans


def as_array(matrix: np.ndarray) -> pa.Array:
    """(n, 16) uint8 -> binary(16) array."""
    return pa.FixedSizeBinaryArray.from_buffers(HASH, len(matrix), [None, pa.py_buffer(np.ascontiguousarray(matrix))])


# --- the fingerprint ------------------------------------------------------------------------
DECIDING = ("schemas/*.py", "schemas/types/*.toml", "quality/arrow_checks.py", "quality/expectations.py",
            "quality/validate.py", "exchange/row_state.py")


@functools.lru_cache(maxsize=1)
def _code() -> str:
    """A hash of the code that conforms and checks rows (and pyarrow's version): a deployment
    that changes it makes the next run full, as a bump of CODE does."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{CODE} {pa.__version__}".encode())
    for path in sorted({p for pattern in DECIDING for p in root.glob(pattern)}):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def fingerprint(reg, extracted: pa.Schema) -> str:
    """A hash of everything that decides a silo row's conformed form and its checks' outcome."""
    ct = reg.ctype
    suite = suites.suite_path(ct.name)
    body = json.dumps({
        "code": _code(), "dataset": reg.dataset, "mapping": reg.mapping, "constants": reg.constants,
        "status_map": reg.status_map, "checks": list(reg.checks),
        "type": [ct.name, ct.version, ct.type_code, ct.title, repr(ct.fields), repr(ct.rules)],
        "suite": suite.read_text("utf-8") if suite.exists() else None,
        "columns": [[f.name, str(f.type)] for f in extracted if f.name != ROW],
    }, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _meta(schema: pa.Schema) -> dict:
    raw = (schema.metadata or {}).get(b"row_state")
    return json.loads(raw) if raw else {}


def read_meta(store: Store, key: str) -> dict:
    """The row state's fingerprint and version (empty if it is unreadable)."""
    try:
        with store.open_input(key) as f:
            return _meta(pa.ipc.open_file(f).schema)
    except (OSError, pa.ArrowInvalid, ValueError):
        return {}


# --- the decision ----------------------------------------------------------------------------
@dataclass
class Plan:
    mode: str                         # delta | full
    reason: str                       # why full
    fingerprint: str
    state: Path | None = None         # the row state on this machine (delta)
    held: Path | None = None          # its rows not accepted, conformed (delta, if stamped alike)
    pull: str | None = None           # the pull the state's rows are (exchange/aligned.py)

    def as_dict(self) -> dict:
        return {"mode": self.mode, **({"reason": self.reason} if self.mode == "full" else {})}


def plan(reg, store: Store, current_version: int | None, extracted: pa.Schema, scratch: Path,
         sources: int = 1) -> Plan:
    """Delta or full, and why full. `sources`: how many sources feed the dataset (several take
    turns moving its version, and publish at once: their runs are full)."""
    fp = fingerprint(reg, extracted)

    def full(reason: str) -> Plan:
        return Plan("full", reason, fp)

    if not enabled():
        return full(f"{ENV}=0")
    if reg.partitioned:
        return full("split run")
    if sources > 1:
        return full(f"dataset fed by {sources} sources")
    blocker = incremental_blocker(reg.ctype, reg.checks)
    if blocker:
        return full(blocker)
    key = state_key(reg.id)
    if not store.exists(key):
        return full("no row state")
    meta = read_meta(store, key)
    if meta.get("fingerprint") != fp:
        return full("mapping, checks, suite or silo columns changed")
    if current_version is None or meta.get("version") != current_version:
        return full(f"row state of version {meta.get('version')}, dataset at {current_version}")
    held = held_key(reg.id)
    stamp = {k: meta.get(k) for k in ("fingerprint", "version")}
    fresh = store.exists(held) and {k: read_meta(store, held).get(k) for k in stamp} == stamp
    return Plan("delta", "", fp, store.local_file(key, scratch), store.local_file(held, scratch) if fresh else None,
                meta.get("pull"))


# --- the run's rows ---------------------------------------------------------------------------
def _keys(hashes: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 hashes -> (n, 2) uint64: the first and last 8 bytes of each."""
    return np.ascontiguousarray(hashes, np.uint8).view("<u8").reshape(len(hashes), 2)


def _matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A binary(16) array -> (n, 16) uint8."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError("the row state holds rows without a hash")
    n = len(column)
    if not n:
        return np.zeros((0, 16), np.uint8)
    return np.frombuffer(column.buffers()[1], np.uint8)[column.offset * 16:(column.offset + n) * 16].reshape(n, 16)


def _prefix_sort(hi: np.ndarray) -> tuple[np.ndarray, int]:
    """`hi`'s top bits with each row's position in the low `bits` (those its position needs),
    sorted (np.sort: no argsort): the order of the rows by (top bits, position)."""
    bits = max(1, (len(hi) - 1).bit_length())
    key = (hi & ~np.uint64((1 << bits) - 1)) | np.arange(len(hi), dtype=np.uint64)
    key.sort()
    return key, bits


def _ties(key: np.ndarray, bits: int) -> np.ndarray:
    """Where a sorted `_prefix_sort` key's top bits are its neighbour's (equal rows, rarely not)."""
    top = key >> np.uint64(bits)
    tie = np.zeros(len(key), bool)
    same = top[1:] == top[:-1]
    del top
    tie[1:] |= same
    tie[:-1] |= same
    return tie


def _halves(hashes: pa.ChunkedArray, second: bool = False) -> tuple[np.ndarray, ...]:
    """A binary(16) column's first 8 bytes (and last 8: `second`) as uint64, a chunk at a time
    (the column is not copied whole)."""
    n = len(hashes)
    out = tuple(np.empty(n, np.uint64) for _ in range(2 if second else 1))
    i = 0
    for chunk in hashes.chunks:
        keys = _keys(_matrix(chunk))
        for j, half in enumerate(out):
            half[i:i + len(keys)] = keys[:, j]
        i += len(keys)
    return out


def _hash_order(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """The permutation that sorts hashes (first 8 bytes `hi`, last 8 `lo`) by (hi, lo,
    position): one sort of hi's top bits with the positions in the low bits, then the rare runs
    that share those bits (equal rows) in order."""
    key, bits = _prefix_sort(hi)
    tie = _ties(key, bits)
    order = (key & np.uint64((1 << bits) - 1)).astype(np.int64)
    del key
    if tie.any():
        sub = order[tie]
        order[tie] = sub[np.lexsort((sub, lo[sub], hi[sub]))]
    return order


def _search(hi: np.ndarray, lo: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Each hash's position in the sorted (`hi`, `lo`) (the first equal one; -1: none)."""
    q = _keys(hashes)
    out = np.full(len(q), -1, np.int64)
    by = np.argsort(q[:, 0])        # sorted probes: binary searches that stay in cache
    pos = np.empty(len(q), np.int64)
    pos[by] = np.searchsorted(hi, q[by, 0])
    todo = np.arange(len(q))
    while len(todo):         # past hashes that share the first 8 bytes only (rare)
        p = pos[todo]
        inside = p < len(hi)
        todo, p = todo[inside], p[inside]
        same = hi[p] == q[todo, 0]
        todo, p = todo[same], p[same]
        hit = lo[p] == q[todo, 1]
        out[todo[hit]] = p[hit]
        todo = todo[~hit]
        pos[todo] += 1
    return out


class _Sorted:
    """(n, 16) uint8 hashes sorted once: equal hashes form a group, found by binary search (no
    hash set built per batch, no Python object per row)."""

    def __init__(self, hashes: np.ndarray):
        keys = _keys(hashes)
        hi, lo = keys[:, 0].copy(), keys[:, 1].copy()
        self.order = _hash_order(hi, lo)
        hi, lo = hi[self.order], lo[self.order]
        self.starts = np.ones(len(hi), bool)
        self.starts[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        self.at = np.flatnonzero(self.starts)
        self.hi, self.lo = hi[self.at], lo[self.at]           # each group's hash, ascending

    def first(self, where: np.ndarray) -> np.ndarray:
        """Each group's first row (in the hashes' order) where `where` holds, else -1."""
        n = len(self.order)
        first = np.where(where[self.order], self.order, n)
        first = np.minimum.reduceat(first, self.at) if n else first
        return np.where(first < n, first, -1)

    def row_groups(self) -> np.ndarray:
        """Each row's group."""
        of = np.empty(len(self.order), np.int64)
        of[self.order] = np.cumsum(self.starts) - 1
        return of

    def groups(self, hashes: np.ndarray) -> np.ndarray:
        """Each hash's group (-1: none)."""
        return _search(self.hi, self.lo, hashes)

    def find(self, hashes: np.ndarray, first: np.ndarray) -> np.ndarray:
        """`first` (a row per group, or -1) of each hash's group; -1 for a hash of no group."""
        if not len(self.hi) or not len(hashes):
            return np.full(len(hashes), -1, np.int64)
        g = self.groups(hashes)
        return np.where(g >= 0, first[np.maximum(g, 0)], -1)


class _Equal:
    """The state's rows that may have another's hash (those whose first 8 bytes' top bits another
    row shares: one sort finds them), their groups (exact) and each one's group's first accepted
    row. Every other row is a group of its own."""

    def __init__(self, hashes: pa.ChunkedArray, accepted: np.ndarray):
        key, bits = _prefix_sort(_halves(hashes)[0])
        tie = _ties(key, bits)
        self.rows = np.sort((key[tie] & np.uint64((1 << bits) - 1)).astype(np.int64))
        del key, tie
        sub = _Sorted(_matrix(hashes.take(pa.array(self.rows, pa.int64()))))
        self.group = sub.row_groups()                              # each row's group
        first = sub.first(accepted[self.rows])
        self.carry = np.where(first >= 0, self.rows[np.maximum(first, 0)], -1)[self.group]

    def where(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of `rows` are among them, their place in `self.rows`)."""
        at = np.minimum(np.searchsorted(self.rows, rows), max(len(self.rows) - 1, 0))
        return (self.rows[at] == rows) if len(self.rows) else np.zeros(len(rows), bool), at


class Matcher:
    """The row state, matched against each extracted batch's hashes. State rows with equal
    hashes form a group; a row of the run is carried as its group's first accepted row.

    `positional` (exchange/aligned.py: most rows are found by position, `at`; or the state's
    hashes, Aligned.hashes, to share): no group is sorted but those of equal rows (_Equal), and
    the sorted hashes `index` searches are built on its first call (none when every row matched
    by position) and dropped by `done`."""

    def __init__(self, state: Path | None, positional: bool | pa.ChunkedArray = False):
        # the table is not kept (its hashes and chunks, ~40 MB a million rows): the sorted hashes are copies
        table = staging.read_table(state) if state is not None else SCHEMA.empty_table()
        self.licences = table.column("licence_number").combine_chunks()
        self.withdrawn = table.column("withdrawn").combine_chunks()
        accepted = pc.fill_null(table.column("accepted"), False).to_numpy(zero_copy_only=False)
        self.empty = not accepted.any()
        self.positional = positional is not False
        if self.positional:          # the hashes stay mapped (the file's pages), for `index`
            self.accepted = accepted
            self.hashes = table.column("row_hash") if positional is True else positional
            if self.hashes.null_count or len(self.hashes) != len(accepted):
                raise ValueError("the row state holds rows without a hash")
            self.equal = _Equal(self.hashes, accepted)
            self._index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
            self._lock = threading.Lock()
            return
        self.sorted = _Sorted(_matrix(table.column("row_hash")))
        self.first = self.sorted.first(accepted)               # each group's first accepted state row

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Matcher.index of the hashes the state's rows at `positions` have (`positional`)."""
        if self.empty:
            return np.full(len(positions), -1, np.int64)
        assert self.positional
        return self._carry(positions)

    def _carry(self, rows: np.ndarray) -> np.ndarray:
        """Each state row's group's first accepted row (-1: none), `positional`."""
        out = np.where(self.accepted[rows], rows, -1)
        equal, at = self.equal.where(rows)
        out[equal] = self.equal.carry[at[equal]]
        return out

    def index(self, hashes: np.ndarray) -> np.ndarray:
        """Each row's state row if it is carried (its hash is an accepted row's), else -1."""
        if self.empty or not len(hashes):
            return np.full(len(hashes), -1, np.int64)
        if not self.positional:
            return self.sorted.find(hashes, self.first)
        order, hi, lo = self._sorted()
        pos = _search(hi, lo, hashes)
        out = np.full(len(hashes), -1, np.int64)
        found = pos >= 0
        out[found] = self._carry(order[pos[found]].astype(np.int64))
        return out

    def _sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every state row's hash sorted (`positional`): (order, first 8 bytes, last 8 bytes)."""
        with self._lock:            # batches are matched on a few threads
            if self._index is None:
                hi, lo = _halves(self.hashes, second=True)
                order = _hash_order(hi, lo)
                hi = hi[order]             # the unsorted halves dropped as the sorted are made
                lo = lo[order]
                self._index = (order.astype(np.uint32) if len(order) < 2**32 else order, hi, lo)
            return self._index

    def done(self) -> None:
        """No batch is matched any more: the sorted hashes `index` searched are dropped."""
        if self.positional:
            self._index = None

    def hit(self, rows: np.ndarray) -> np.ndarray:
        """Each state row: is a row of its group one of `rows`?"""
        if not self.positional:
            of = self.sorted.row_groups()
            hit_group = np.zeros(len(self.sorted.hi), bool)
            hit_group[of[rows]] = True
            return hit_group[of]
        hit = np.zeros(len(self.accepted), bool)
        hit[rows] = True
        if len(self.equal.rows):
            group = np.zeros(len(self.equal.rows), bool)
            group[self.equal.group[hit[self.equal.rows]]] = True
            hit[self.equal.rows] = group[self.equal.group]
        return hit


class Held:
    """The conformed form of the state's rows that were not accepted (`held_key`), by hash: the
    next run checks them again and takes their conformed form from here, as conform is row by
    row (the fingerprint names its code)."""

    def __init__(self, path: Path):
        self.table = staging.read_table(path).combine_chunks()    # take from one chunk: 4x faster
        self.sorted = _Sorted(_matrix(self.table.column("row_hash")))
        self.first = self.sorted.first(np.ones(self.table.num_rows, bool))

    def find(self, hashes: np.ndarray) -> np.ndarray:
        """Each hash's held row (-1: none)."""
        return self.sorted.find(hashes, self.first)

    def rows(self, at: np.ndarray, numbers: pa.Array, schema: pa.Schema) -> pa.Table:
        """The held rows `at` in conform's `schema`, numbered `numbers` (this run's _row)."""
        table = self.table.select(schema.names).take(pa.array(at, pa.int64()))
        i = schema.get_field_index(ROW)
        return table.set_column(i, schema.field(i), numbers).cast(schema)


def scope(m: Matcher, idx: np.ndarray, checked_licences: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(positions of carried rows that must be checked after all, the delta's licence numbers).
    `idx`: each row's state row (Matcher.index; -1: checked). A carried row is checked when its
    licence number is a checked row's, another carried row's, or a state row's that is not
    carried (changed, gone or quarantined): uniqueness and withdrawals are then decided over all
    of them. The delta's licence numbers (log_version.Delta) are those of the state's rows,
    accepted or not, that no carried row matches: the records a delta run may change, hold or
    withdraw.

    The state's accepted rows have licence numbers of their own (a delta run's suite checks
    them unique), so two carried rows share one only when they are the same state row's (equal
    rows): no licence number is hashed but those of the state's rows."""
    carried = np.flatnonzero(idx >= 0)
    if not len(carried):
        return carried, pa.array([], pa.string())
    at = idx[carried]
    gone = m.licences.filter(pa.array(~m.hit(at))).drop_null()
    twice = np.flatnonzero(np.bincount(at, minlength=len(m.licences)) > 1)
    repeated = m.licences.take(pa.array(twice, pa.int64()))
    wanted = pa.chunked_array([checked_licences.drop_null(), repeated, gone], pa.string()).combine_chunks()
    pulled = pc.fill_null(pc.is_in(m.licences, value_set=wanted), False).to_numpy(zero_copy_only=False)
    hit = pulled[at]
    back = m.licences.take(pa.array(np.unique(at[hit]), pa.int64()))
    return carried[hit], pc.unique(pa.chunked_array([gone, back], pa.string()).combine_chunks())


def rows_table(hashes: np.ndarray, idx: np.ndarray, m: Matcher) -> pa.Table:
    """conform's `rows` hand-off: every extracted row, carried ones with their state's licence
    number and withdrawn flag (the checked ones get theirs in validate)."""
    carried = idx >= 0
    take = pa.array(np.where(carried, idx, 0), pa.int64(), mask=~carried)
    if m.empty:
        lic, wd = pa.nulls(len(idx), pa.string()), pa.nulls(len(idx), pa.bool_())
    else:
        lic, wd = m.licences.take(take), m.withdrawn.take(take)
    return pa.table([as_array(hashes), pa.array(carried), lic, wd], schema=ROWS)


def new_state(rows: pa.Table, checked: pa.Table, quarantined_rows: pa.Array, fp: str,
              kept: pa.Table | None = None, rechecked: pa.Table | None = None, pull: str | None = None) -> pa.Table:
    """The run's row state: carried rows as they were, checked rows (`checked`: the conformed
    rows' _row, licence_number, status) with their outcome; `kept` (_row, reasons): the
    quarantined rows whose row-level failures cannot change with time, and those failures;
    `rechecked` (_row, reasons): the other quarantined rows' row-level failures (one is dated).
    `pull`: the token of the extract its rows are (exchange/aligned.py), kept in its metadata."""
    n = rows.num_rows
    pos = pc.subtract(checked.column(ROW), 1).to_numpy(zero_copy_only=False).astype(np.int64)
    every = len(pos) == n and np.array_equal(pos, np.arange(n))    # a full run: every row checked, in order
    at = np.full(n, -1, _index_type(n))
    at[pos] = np.arange(len(pos))
    del pos            # each whole-run intermediate dropped once used: the peak is their sum (3M rows)
    here = at >= 0
    take = None if every else _taking(at, here)
    del at
    bad = np.zeros(n, bool)
    if len(quarantined_rows):
        bad[pc.subtract(quarantined_rows, 1).to_numpy(zero_copy_only=False).astype(np.int64)] = True
    checked_lic, checked_status = (checked.column(c).combine_chunks() for c in ("licence_number", "status"))
    if take is not None:
        checked_lic, checked_status = checked_lic.take(take), checked_status.take(take)
    checked_wd = pc.equal(checked_status, WITHDRAWN)
    del take, checked_status
    carried = rows.column("carried").combine_chunks()
    some = carried.true_count > 0     # none carried: the checked rows' values as they are, not copied
    licence = pc.if_else(carried, rows.column("licence_number").combine_chunks(), checked_lic) if some else checked_lic
    del checked_lic
    accepted = pc.or_(carried, pa.array(here & ~bad))
    fresh = pc.and_(checked_wd, pa.array(~bad))
    withdrawn = pc.fill_null(pc.if_else(carried, rows.column("withdrawn").combine_chunks(), fresh) if some else fresh,
                             False)
    del fresh
    del checked_wd, here, bad
    meta = {b"row_state": json.dumps({"fingerprint": fp, **({"pull": pull} if pull else {})}).encode()}
    return pa.table([rows.column("row_hash").combine_chunks(), licence, accepted, withdrawn, _reasons(n, kept),
                     _reasons(n, rechecked)], schema=SCHEMA.with_metadata(meta))


# --- quarantined rows not checked again (validate) ----------------------------------------------
# A quarantined row's `reasons`: the row-level expectations it failed, when none of them depends
# on "today" (a row in the future now may not be later). Such a row, unchanged, fails them again:
# validate takes them from here instead of checking it (uniqueness is still decided over it).
def _reasons(n: int, kept: pa.Table | None) -> pa.Array:
    if kept is None or not kept.num_rows:
        return pa.nulls(n, pa.list_(pa.string()))
    at = np.full(n, -1, _index_type(n))
    at[pc.subtract(kept.column(ROW), 1).to_numpy(zero_copy_only=False).astype(np.int64)] = np.arange(kept.num_rows)
    return kept.column("reasons").combine_chunks().take(_taking(at, at >= 0))


def _index_type(n: int) -> type:
    """The narrowest of int32 and int64 that numbers `n` rows (a take's indices: half the memory)."""
    return np.int32 if n < 2**31 else np.int64


def _taking(at: np.ndarray, here: np.ndarray) -> pa.Array:
    """Take indices `at` (null where not `here`)."""
    return pa.array(np.where(here, at, 0), pa.from_numpy_dtype(at.dtype), mask=~here)


def known_reasons(state: Path, hashes: pa.Array) -> pa.Array:
    """Each row's (of `hashes`) failures as the row state holds them (null: to be checked)."""
    table = staging.read_table(state)
    if "reasons" not in table.schema.names:
        return pa.nulls(len(hashes), pa.list_(pa.string()))
    table = table.filter(pc.is_valid(table.column("reasons")))
    idx = pc.index_in(hashes, value_set=table.column("row_hash").combine_chunks())
    return table.column("reasons").combine_chunks().take(idx)


def commit(store: Store, source_id: str, handoff: str, version: int | None, scratch: Path,
           conformed: str | None = None) -> str | None:
    """After publish: the run's row state (hand-off `handoff`) becomes the source's, stamped with
    the version it was published as, and the conformed form (hand-off `conformed`) of its rows
    not accepted the source's Held, stamped alike (written first: the state's stamp is what a
    delta run goes by). Idempotent: the hand-off is deleted last. A run that changed no row's
    state (`_as_before`) leaves both files as they are: it returns the kept state's pull (the
    mirror of that pull may stay: its rows are the run's; exchange/aligned.py), else None."""
    if not store.exists(handoff):
        return None
    if version is None:
        store.delete(handoff)
        return None
    local = store.local_file(handoff, scratch)
    table = staging.read_table(local)
    meta = {**_meta(table.schema), "version": version}
    stamp = {b"row_state": json.dumps(meta).encode()}
    if conformed is not None and store.exists(conformed) and _as_before(store, source_id, table, meta, scratch):
        del table
        pull = read_meta(store, state_key(source_id)).get("pull")
        store.delete(handoff)
        return pull
    if conformed is not None and store.exists(conformed):
        _put_held(store, source_id, table, store.local_file(conformed, scratch), stamp, scratch)
    else:
        store.delete(held_key(source_id))
    out = scratch / f"rows.{version}{staging.TRANSIENT_SUFFIX}"
    with staging.transient_writer(out, table.schema.with_metadata(stamp)) as w:
        for batch in table.to_batches(max_chunksize=262_144):
            w.write_batch(batch)
    del table
    store.put_file(out, state_key(source_id), move=True)
    store.delete(handoff)
    return None


def _as_before(store: Store, source_id: str, table: pa.Table, meta: dict, scratch: Path) -> bool:
    """Is the source's row state, stamped `meta` already, the same rows as `table`, with its
    Held stamped alike: a run that changed nothing (its version the current one) then writes
    neither again. Held holds the conformed form of the state's rows not accepted, by hash (a
    row's conformed form is its content's, under the fingerprint): the same rows, the same Held."""
    key, held = state_key(source_id), held_key(source_id)
    stamp = {k: meta.get(k) for k in ("fingerprint", "version")}
    if not store.exists(key) or {k: read_meta(store, key).get(k) for k in stamp} != stamp:
        return False
    if not store.exists(held) or {k: read_meta(store, held).get(k) for k in stamp} != stamp:
        return False
    before = staging.read_table(store.local_file(key, scratch))
    return before.num_rows == table.num_rows and before.equals(table)       # metadata apart


def _put_held(store: Store, source_id: str, state: pa.Table, conformed: Path, stamp: dict, scratch: Path) -> None:
    """The conformed rows (every checked row of the run) whose state row was not accepted, with
    their hashes, read and written a batch at a time."""
    accepted = pc.fill_null(state.column("accepted"), False).to_numpy(zero_copy_only=False)
    hashes = state.column("row_hash").combine_chunks()
    schema = staging.read_schema(conformed).append(pa.field("row_hash", HASH)).with_metadata(stamp)
    out = scratch / f"held{staging.TRANSIENT_SUFFIX}"
    with staging.transient_writer(out, schema) as w:
        for batch in staging.iter_batches(conformed, None):
            pos = pc.subtract(batch.column(ROW), 1).to_numpy(zero_copy_only=False)
            keep = ~accepted[pos]
            if keep.any():
                part = batch.filter(pa.array(keep))
                w.write_batch(pa.RecordBatch.from_arrays([*part.columns, hashes.take(pa.array(pos[keep]))],
                                                         schema=schema))
    store.put_file(out, held_key(source_id), move=True)
