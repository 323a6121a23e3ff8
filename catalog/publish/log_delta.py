"""A Delta run's version (log_version.Delta) in proportion to its change: the same LogVersion
as stage_log_version over the whole current state, read from the catalogue's index only
where the run may change something.

    IndexReader(engine, store, dataset)
        The index reads it needs: the current records of the run's ids and licence numbers,
        those of some map buckets, the count of withdrawn ones (indexed, in chunks).
    stage_delta_version(accepted, conformed, base, versions, ...) -> LogVersion
        The segment staged on the run's scope; the map is the current version's with only the
        buckets the segment touches rehashed (the whole state read only when the map's bits
        change, or there is no map yet: the first version of the log).
"""
from __future__ import annotations

import binascii
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from base.storage import Store
from catalog.db.models import Record
from catalog.publish import log_version
from catalog.publish.log_version import STATE, WITHDRAWN, Delta, LogVersion, Segment
from catalog.signing import vmap
from catalog.signing.digests import from_hex
from schemas.types import CertificateType

CHUNK = 500            # values in one IN list
RANGES = 50            # bucket ranges in one query
RANGE_BUCKETS = 1024   # buckets in one range: its packed entries (SQLite) stay far below SQLite's 1 GB string

_r = Record.__table__.c
_COLUMNS = (_r.record_id, _r.version, _r.leaf_index, _r.leaf_hash, _r.status, _r.licence_number, _r.holder_key)
_NAMES = [c.name for c in _COLUMNS]
_TYPES = [pa.int64() if i in (1, 2) else pa.string() for i in range(len(_COLUMNS))]


# the current withdrawn records, as ix_records_dataset_withdrawn's condition says (a literal, not a
# parameter: SQLite uses a partial index only for a query whose terms it can match)
CURRENT_WITHDRAWN = (_r.superseded_in.is_(None), _r.status == sa.literal_column(f"'{WITHDRAWN}'"))


def _current(dataset: str, where) -> sa.Select:
    return sa.select(*_COLUMNS).where(_r.dataset_id == dataset, _r.superseded_in.is_(None), where)


@dataclass(frozen=True)
class Entries:
    """Map entries as vmap hashes them: ids (n, 16) uint8, leaf indexes (n,) int64, leaf
    hashes (n, 32) uint8."""
    ids: np.ndarray
    index: np.ndarray
    leaves: np.ndarray

    @classmethod
    def joined(cls, parts: list[Entries]) -> Entries:
        if not parts:
            return cls(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64), np.zeros((0, 32), np.uint8))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ids", "index", "leaves")))

    def has(self, ids: np.ndarray) -> np.ndarray:
        """For each of `ids` ((m, 16) uint8): whether an entry has it (bool (m,))."""
        if not len(ids) or not len(self.ids):
            return np.zeros(len(ids), bool)
        return pc.is_in(_binary(ids), value_set=_binary(self.ids)).to_numpy(zero_copy_only=False)

    def without(self, ids: np.ndarray) -> Entries:
        """The entries whose id is none of `ids` ((m, 16) uint8)."""
        if not len(ids) or not len(self.ids):
            return self
        gone = pc.is_in(_binary(self.ids), value_set=_binary(ids)).to_numpy(zero_copy_only=False)
        keep = ~gone
        return Entries(self.ids[keep], self.index[keep], self.leaves[keep])


@dataclass(frozen=True)
class Bucketed:
    """The entries of the map buckets `buckets` (ascending, of 2^bits), read (IndexReader.buckets_of)."""
    bits: int
    buckets: np.ndarray
    entries: Entries

    def within(self, buckets: np.ndarray) -> Entries:
        """The entries of those of `buckets` read here."""
        e = self.entries
        if not len(e.ids):
            return e
        wanted = np.zeros(1 << self.bits, bool)
        wanted[buckets] = True
        keep = wanted[_bucket_of(e.ids, self.bits)]
        if keep.all():
            return e
        return Entries(e.ids[keep], e.index[keep], e.leaves[keep])


def _binary(ids: np.ndarray) -> pa.Array:
    data = pa.py_buffer(np.ascontiguousarray(ids))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(ids), [None, data])


class IndexReader:
    """Reads of a dataset's current records (`superseded_in` null) in the catalogue's index;
    `rows_read` counts the rows fetched (reads may run on two threads)."""

    def __init__(self, engine: Engine, store: Store, dataset: str):
        self.engine, self.store, self.dataset = engine, store, dataset
        self.rows_read = 0
        self._lock = threading.Lock()

    def _count(self, n: int) -> None:
        with self._lock:
            self.rows_read += n

    def scoped(self, record_ids: pa.Array, licences: pa.Array) -> pa.Table:
        """STATE rows of the current records with one of `record_ids` or of `licences`, by record
        id: the ids of the licence numbers' records from ix_records_dataset_licence alone (it holds
        the primary key), then every record by its id."""
        ids = set(pc.drop_null(record_ids).to_pylist())
        numbers = sorted(set(pc.drop_null(licences).to_pylist()))
        with self.engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark"
            for at in range(0, len(numbers), CHUNK):
                chunk = numbers[at:at + CHUNK]
                ids.update(r[0] for r in (_sqlite_ids_of(conn, chunk, self.dataset) if sqlite else _raw(
                    conn, sa.select(_r.record_id).where(_r.dataset_id == self.dataset, _r.superseded_in.is_(None),
                                                        _r.licence_number.in_(chunk)))))
            by_id = sorted(ids)
            chunks = [by_id[at:at + CHUNK] for at in range(0, len(by_id), CHUNK)]
            if sqlite:
                return self._state(conn, [_sqlite_by_id(conn, chunk, self.dataset) for chunk in chunks])
            return self._state(conn, [_raw(conn, _current(self.dataset, _r.record_id.in_(chunk))) for chunk in chunks])

    def buckets(self, buckets: list[int], bits: int) -> Entries:
        """The map entries of the current records in the map buckets (of 2^bits), in no
        particular order."""
        ranges: list[list[int]] = []
        for b in sorted(set(buckets)):              # adjacent buckets: one range (of at most RANGE_BUCKETS)
            if ranges and ranges[-1][1] == b and b - ranges[-1][0] < RANGE_BUCKETS:
                ranges[-1][1] = b + 1
            else:
                ranges.append([b, b + 1])
        bounds = [(vmap.bucket_range(first, bits)[0], vmap.bucket_range(end - 1, bits)[1]) for first, end in ranges]
        parts = []
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark":
                unpacked, got = _sqlite_ranges(conn, self.dataset, bounds)
                parts += unpacked
            else:
                selects = [_entries(self.dataset, lo, hi) for lo, hi in bounds]
                got = [row for at in range(0, len(selects), RANGES)
                       for row in _raw(conn, sa.union_all(*selects[at:at + RANGES]))]
            if got:          # rows whose leaf hash is in their version's tree.bin (before the log)
                cols = [pa.array(c, t) for c, t in zip(zip(*got), _TYPES[:4])]
                state = _read_leaves(conn, self.store, self.dataset, [*cols, *[pa.nulls(len(got), pa.string())] * 3])
                parts.append(Entries(_bytes(state.column("record_id").combine_chunks()),
                                     state.column("leaf_index").to_numpy(),
                                     log_version.leaf_matrix(state.column("leaf"))))
        entries = Entries.joined(parts)
        self._count(len(entries.ids))
        return entries

    def buckets_of(self, record_ids: pa.Array, bits: int) -> Bucketed:
        """The entries of the map buckets (of 2^bits) of `record_ids` (hex strings), as buckets()."""
        ids = _bytes(pc.drop_null(record_ids))
        buckets = np.unique(_bucket_of(ids, bits))
        return Bucketed(bits, buckets, self.buckets(buckets.tolist(), bits) if len(buckets) else Entries.joined([]))

    def withdrawn(self) -> int:
        """How many current records are withdrawn."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(Record).where(
                _r.dataset_id == self.dataset, *CURRENT_WITHDRAWN)).scalar() or 0)

    def withdrawn_numbers(self) -> list[tuple]:
        """(record_id, licence_number, status) of every current withdrawn record."""
        with self.engine.connect() as conn:
            got = _raw(conn, sa.select(_r.record_id, _r.licence_number, _r.status).where(
                _r.dataset_id == self.dataset, *CURRENT_WITHDRAWN))
        self._count(len(got))
        return got

    def numbered(self, licences: pa.Array) -> list[tuple]:
        """(record_id, licence_number, status) of the current records with one of `licences`."""
        numbers = sorted(set(pc.drop_null(licences).to_pylist()))
        got: list[tuple] = []
        with self.engine.connect() as conn:
            for at in range(0, len(numbers), CHUNK):
                got += _raw(conn, sa.select(_r.record_id, _r.licence_number, _r.status).where(
                    _r.dataset_id == self.dataset, _r.superseded_in.is_(None),
                    _r.licence_number.in_(numbers[at:at + CHUNK])))
        self._count(len(got))
        return got

    def whole(self) -> pa.Table:
        """Every current record's STATE row (log_version.current_state)."""
        with self.engine.connect() as conn:
            state = log_version.current_state(conn, self.store, self.dataset)
        self._count(state.num_rows)
        return state

    def _state(self, conn: Connection, results: list[list[tuple]]) -> pa.Table:
        """The rows (_COLUMNS) as STATE columns, by record id, each record once."""
        parts = []
        for got in results:
            self._count(len(got))
            if got:
                parts.append(pa.table([pa.array(c, _TYPES[i]) for i, c in enumerate(zip(*got))], names=_NAMES))
        if not parts:
            return STATE.empty_table()
        table = pa.concat_tables(parts).sort_by("record_id")
        ids = table.column("record_id").combine_chunks()
        if len(ids) > 1:           # a record found twice: once
            again = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1))
            table = table.filter(pa.concat_arrays([pa.array([True]), pc.invert(again)]))
        cols = [table.column(i).combine_chunks() for i in range(len(_NAMES))]
        return _read_leaves(conn, self.store, self.dataset, cols)


def _sqlite_by_id(conn: Connection, ids: list[str], dataset: str) -> list[tuple]:
    """The rows of _current(dataset, record_id IN ids) by SQLite's primary key, a look-up an id
    (not one in ix_records_dataset_current and then one in the primary key: unary + keeps those
    terms off it)."""
    return _driver(conn, f"SELECT {', '.join(c.name for c in _COLUMNS)} FROM records WHERE record_id IN "
                         f"({', '.join('?' * len(ids))}) AND +dataset_id = ? AND +superseded_in IS NULL",
                   [*ids, dataset])


def _sqlite_ids_of(conn: Connection, numbers: list[str], dataset: str) -> list[tuple]:
    """The ids of the current records with one of the licence `numbers`, from
    ix_records_dataset_licence alone, in the driver's own SQL (SQLAlchemy's compiling of an
    IN list cost more than the read)."""
    return _driver(conn, "SELECT record_id FROM records WHERE dataset_id = ? AND superseded_in IS NULL AND "
                         f"licence_number IN ({', '.join('?' * len(numbers))})", [dataset, *numbers])


def _entries(dataset: str, lo: str, hi: str | None) -> sa.Select:
    """The map entries' columns of the current records with lo <= record id < hi (hi None: no end)."""
    ids = _r.record_id >= lo if hi is None else sa.and_(_r.record_id >= lo, _r.record_id < hi)
    return sa.select(*_COLUMNS[:4]).where(_r.dataset_id == dataset, _r.superseded_in.is_(None), ids)


# SQLite: the record-id range of ix_records_dataset_current alone (it covers the map's entries since
# migration 0021: read in record-id order, no look-up a row); the range's entries with a leaf hash
# as one string of the hex of their ids and leaf hashes, and one of their leaf indexes (decimal,
# comma-separated: no printf an entry)
_WHERE = "dataset_id = ? AND superseded_in IS NULL AND record_id >= ?{hi}"
_PACKED = ("SELECT CAST(group_concat(record_id || leaf_hash, '') AS BLOB), "
           "CAST(group_concat(CASE WHEN leaf_hash IS NULL THEN NULL ELSE leaf_index END) AS BLOB), "
           "count(*) - count(leaf_hash) FROM records WHERE {where}")
_NO_LEAF = "SELECT record_id, version, leaf_index, leaf_hash FROM records WHERE {where} AND leaf_hash IS NULL"
_PACKED_WIDTH = 32 + 64


def _sqlite_ranges(conn: Connection, dataset: str,
                   bounds: list[tuple[str, str | None]]) -> tuple[list[Entries], list[tuple]]:
    """For every (lo, hi): its current records that have a leaf hash, as Entries (a statement's
    read as one string of their packed ids and leaf hashes (hex) and one of their leaf indexes
    (decimal, comma-separated), unpacked before the next: never every range's text at once),
    and the rows (record_id, version, leaf_index, null) of those that have none; RANGES ranges
    a statement (UNION ALL), the driver's rows (no SQLAlchemy rows)."""
    entries: list[Entries] = []
    rows: list[tuple] = []
    for at in range(0, len(bounds), RANGES):
        part = bounds[at:at + RANGES]
        wheres = [_WHERE.format(hi="" if hi is None else " AND record_id < ?") for _, hi in part]
        args = [a for lo, hi in part for a in ((dataset, lo) if hi is None else (dataset, lo, hi))]
        got = _driver(conn, " UNION ALL ".join(_PACKED.format(where=w) for w in wheres), args)
        missing = [k for k, (_, _, n) in enumerate(got) if n]
        texts = [text for text, _, _ in got if text]
        numbers = [numbers for _, numbers, _ in got if numbers]
        del got
        if texts or numbers:
            entries.append(_unpacked(b"".join(texts), b",".join(numbers)))
        del texts, numbers
        if missing:
            rows += _driver(conn, " UNION ALL ".join(_NO_LEAF.format(where=wheres[k]) for k in missing),
                            [a for k in missing for a in ((dataset, part[k][0]) if part[k][1] is None
                                                           else (dataset, *part[k]))])
    return entries, rows


def _driver(conn: Connection, sql: str, args: list) -> list[tuple]:
    """A statement in the driver's own SQL and its rows as the driver's tuples."""
    result = conn.exec_driver_sql(sql, tuple(args))
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _unpacked(data: bytes, indexes: bytes) -> Entries:
    """The entries of packed ids and leaf hashes and their leaf indexes (_PACKED)."""
    n, extra = divmod(len(data), _PACKED_WIDTH)
    try:
        raw = np.frombuffer(binascii.unhexlify(data), np.uint8).reshape(n, _PACKED_WIDTH // 2)
    except (binascii.Error, ValueError):
        raw = None
    index = np.fromstring(indexes, np.int64, sep=",") if indexes else np.zeros(0, np.int64)
    if extra or raw is None or len(index) != n or (n and int(index.min()) < 0):
        raise ValueError("the index holds a record id, leaf index or leaf hash of the wrong form")
    return Entries(raw[:, :16], index, raw[:, 16:])


def _raw(conn: Connection, query) -> list[tuple]:
    """A query's rows as the driver's tuples (its columns are strings and integers: nothing for
    SQLAlchemy to convert; its Row objects cost more than the query)."""
    result = conn.execute(query)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _read_leaves(conn: Connection, store: Store, dataset: str, cols: list[pa.Array]) -> pa.Table:
    return log_version.state_table(conn, store, dataset, cols, whole=False)


@dataclass(frozen=True)
class DeltaBase:
    """What a Delta version is built on (Catalog.delta_base)."""
    map: vmap.MapLevel | None          # the current version's map; None: no version of the log yet
    record_count: int                  # records in the current state
    reader: IndexReader


def stage_delta_version(accepted: Path, conformed: Path, base: DeltaBase, versions: dict[int, tuple[str, int]],
                        store: Store, dataset: str, ctype: CertificateType, first_leaf: int, scratch: Path,
                        delta: Delta, carried_rows: int | None = None, narrow: bool = True) -> LogVersion:
    """stage_log_version(accepted, conformed, <the whole current state>, ..., delta), reading
    only the run's scope and the map buckets its segment touches. `carried_rows`: the rows the
    run carried (each one current record of its own, none in the scope), if known. `narrow`
    False: every number of delta.licences read (the equivalence tests compare).

    The scope read is narrower than delta.licences: a licence number some row of the run has
    (conformed) but none it accepted holds its records (stage_segment's held rows) whatever
    they are, so they are only counted (held_outside), not read: the ~5 % of rows quarantined
    run after run, each one a number in the scope, cost a look-up each otherwise."""
    reader = base.reader
    run_numbers = log_version.run_licences(accepted, conformed)      # read once (a delta's: small), for both
    numbers, holding = _narrowed(delta.licences, *run_numbers) if narrow else (delta.licences, None)
    with ThreadPoolExecutor(max_workers=1) as pool:
        early: list[Future] = []

        def scoped(ids: pa.Array) -> pa.Table:
            if base.map is not None:      # the buckets of the staged ids on a thread meanwhile (both read SQLite)
                early.append(pool.submit(reader.buckets_of, ids, base.map.bits))
            return reader.scoped(ids, numbers)
        seg = log_version.stage_segment(accepted, conformed, scoped, versions, store, dataset, ctype, first_leaf,
                                        scratch, delta, run_numbers)
        if early:
            early[0].result()        # read (or failed) before the pool goes; taken below, held by no name here
    in_scope = int(pc.sum(pc.cast(pc.equal(seg.state.column("status"), WITHDRAWN), pa.int64())).as_py() or 0)
    withdrawn = reader.withdrawn()
    outside = withdrawn - in_scope          # withdrawn records outside the scope: still withdrawn
    held = 0
    if holding is not None and len(holding):
        known = carried_rows if base.map is not None else None      # a map: its version's record count is known
        held, held_withdrawn = held_outside(reader, holding, seg.state, base.record_count, withdrawn - in_scope,
                                            known, delta.carried)
        outside -= held_withdrawn           # held, as they are in the scope stage_segment holds
    changes = replace(seg.changes, still_withdrawn=seg.changes.still_withdrawn + outside,
                      unchanged=seg.changes.unchanged + held)
    if held:
        seg = replace(seg, held=seg.held + held)
    count = base.record_count + seg.added
    if base.map is None or vmap.bits_for(count) != base.map.bits:
        return seg.version(*log_version.whole_map(reader.whole(), seg), changes)
    return seg.version(touched_map(base.map, seg, reader, early.pop().result() if early else None), count, changes)


def _narrowed(licences: pa.Array, present: pa.Array, taken: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(the numbers of `licences` whose records are read, those whose records are held): a
    number a conformed row has (`present`) and no accepted row has (`taken`) is held
    (stage_segment: a record not among the run's, its number present and not taken), whatever
    its records are."""
    lic = pc.unique(pc.drop_null(licences))
    holds = pc.and_(log_version._in(lic, present), pc.invert(log_version._in(lic, taken)))
    return lic.filter(pc.invert(holds)), lic.filter(holds)


def held_outside(reader: IndexReader, holding: pa.Array, scope: pa.Table, record_count: int,
                 withdrawn_outside: int, carried_rows: int | None, carried_live: int) -> tuple[int, int]:
    """(records held, of them withdrawn) among the current records with a number of `holding`
    that are not in the `scope` read: the scope stage_segment would have read holds them all.
    Every current record is a carried row's, in the scope, one of these, or another outside
    it: when no record is left outside (record_count = carried + scope), there are none; when
    the records left outside are all withdrawn, only the withdrawn are read (a partial index);
    else the numbers' records are read (ids and status)."""
    if carried_rows is not None:
        left = record_count - carried_rows - scope.num_rows
        if left == 0:
            return 0, 0
        carried_withdrawn = carried_rows - carried_live
        if left == withdrawn_outside - carried_withdrawn and left <= WITHDRAWN_LIST:
            rows = reader.withdrawn_numbers()
            return _held(rows, holding, scope, True)
    return _held(reader.numbered(holding), holding, scope, False)


WITHDRAWN_LIST = 200_000       # withdrawn records read as a list at most (else by number)


def _held(rows: list[tuple], holding: pa.Array, scope: pa.Table, withdrawn_only: bool) -> tuple[int, int]:
    """Of `rows` (record_id, licence_number, status): those with a number of `holding` and not
    in `scope`, counted (all, withdrawn)."""
    if not rows:
        return 0, 0
    ids, numbers, status = (pa.array(c, pa.string()) for c in zip(*rows))
    keep = pc.and_(log_version._in(numbers, holding),
                   pc.invert(log_version._in(ids, scope.column("record_id").combine_chunks())))
    n = int(pc.sum(pc.cast(keep, pa.int64())).as_py() or 0)
    w = int(pc.sum(pc.cast(pc.and_(keep, pc.equal(status, WITHDRAWN)), pa.int64())).as_py() or 0)
    return n, (n if withdrawn_only else w)


def _bytes(ids: pa.Array) -> np.ndarray:
    if not len(ids):
        return np.zeros((0, 16), np.uint8)
    out = from_hex(ids, 32)
    if out is None:
        raise ValueError("record ids are 32 lowercase hex characters")
    return out


def _bucket_of(ids: np.ndarray, bits: int) -> np.ndarray:
    if not bits:
        return np.zeros(len(ids), np.int64)
    high = ids[:, :8].copy().view(">u8").ravel()
    return (high >> np.uint64(64 - bits)).astype(np.int64)


def touched_map(level: vmap.MapLevel, seg: Segment, reader: IndexReader,
                prefetched: Bucketed | None = None) -> vmap.MapLevel:
    """`level` with the buckets of the segment's records rehashed: each one's current entries
    in the index, but the records the segment gives a new state, plus the segment's entries.
    `prefetched`: buckets read already (IndexReader.buckets_of); only the others are read."""
    if not len(seg.record_ids):
        return level
    bits = level.bits
    seg_ids = _bytes(seg.record_ids)
    touched = np.unique(_bucket_of(seg_ids, bits))
    if prefetched is None or prefetched.bits != bits:
        prefetched = Bucketed(bits, np.zeros(0, np.int64), Entries.joined([]))
    rest = np.setdiff1d(touched, prefetched.buckets)
    kept = prefetched.within(touched)
    del prefetched           # memory: the entries read once (kept), not also as read
    if len(rest):
        kept = Entries.joined([kept, reader.buckets(rest.tolist(), bits)])
    kept = kept.without(seg_ids)
    ids = np.concatenate([kept.ids, seg_ids])
    index = np.concatenate([kept.index, np.arange(seg.first_leaf, seg.first_leaf + len(seg.leaves), dtype=np.int64)])
    leaves = np.concatenate([kept.leaves, seg.leaves])
    del kept                 # in ids, index and leaves now
    hashes = vmap.some_bucket_hashes(ids, index, leaves, bits, touched)     # a batch of buckets at a time
    return level.replaced_rows(touched, hashes)
