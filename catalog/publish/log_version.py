"""A run's records as the next entries of the dataset's append-only log (docs/verification.md).

    current_state(conn, store, dataset) -> Table
        The dataset's current record states from the catalogue's index (one row each: record id,
        version, log leaf index, leaf hash, status, licence number, holder key).
    stage_log_version(accepted, conformed, state, ...) -> LogVersion
        The version's segment: only the record states that differ from the current ones (new,
        changed, newly withdrawn), with their log leaf indexes from `first_leaf`; records.parquet
        and index.parquet in a local folder, their leaf hashes, the new state's verifiable map
        and the counts. A record still in the pull whose rows were all quarantined is held: its
        state stays as it is (no leaf). The records' changes are not stored: status.py reads
        them from the appended states.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from base import memory, staging
from base.storage import Store
from catalog.db.models import DatasetVersion
from catalog.publish import store as version_store
from catalog.publish.changes import Changes
from catalog.signing import vmap
from catalog.signing.canonical import canonical_json
from catalog.signing.digests import from_hex, hex_strings
from catalog.signing.merkle import MerkleTree, leaf_hashes
from schemas.types import CertificateType
from trust.merkle import LEAF_PREFIX

WITHDRAWN = "withdrawn"
STATE = pa.schema([("record_id", pa.string()), ("version", pa.int64()), ("leaf_index", pa.int64()),
                   ("leaf", pa.binary(32)), ("status", pa.string()), ("licence_number", pa.string()),
                   ("holder_key", pa.string())])
LOG = "log"        # a dataset's log (C2SP tlog tiles) in the store: store/<dataset>/log


def log_prefix(dataset: str) -> str:
    version_store.version_key(dataset, 0)          # refuses a name that would lead elsewhere
    return f"{version_store.VERSIONS}/{dataset}/{LOG}"


_STATE_SQL = ("SELECT record_id, version, leaf_index, leaf_hash, status, licence_number, holder_key FROM records "
              "WHERE dataset_id = {p} AND superseded_in IS NULL ORDER BY record_id")


def current_state(conn: Connection, store: Store, dataset: str) -> pa.Table:
    """STATE rows of the dataset's current records, in record-id order. Leaf hashes the index
    does not hold (rows from before the log) are read from their version's tree.bin."""
    return state_table(conn, store, dataset, _state_columns(conn, dataset))


def state_table(conn: Connection, store: Store, dataset: str, cols: list[pa.Array], whole: bool = True) -> pa.Table:
    """STATE rows from the index's columns (record_id, version, leaf_index, leaf_hash hex or
    null, status, licence_number, holder_key): a null leaf hash is read from its version's
    tree.bin (`whole`: every leaf of it at once; else leaf by leaf)."""
    n = len(cols[0])
    hashes = cols[3]
    leaf = np.zeros((n, 32), np.uint8)
    known = pc.invert(pc.is_null(hashes)).to_numpy(zero_copy_only=False)
    if known.any():
        leaf[known] = from_hex(hashes.filter(pa.array(known)), 64)
    versions = cols[1].to_numpy(zero_copy_only=False).astype(np.int64)
    indexes = cols[2].to_numpy(zero_copy_only=False).astype(np.int64)
    for v in np.unique(versions[~known]):
        path = conn.execute(sa.select(DatasetVersion.path).where(
            DatasetVersion.dataset_id == dataset, DatasetVersion.version == int(v))).scalar_one()
        tree = MerkleTree.open_in(store.sub(path), "tree.bin")
        at = (~known) & (versions == v)
        if whole:
            leaf[at] = tree.leaf_array()[indexes[at]]
        else:
            leaf[at] = np.frombuffer(b"".join(tree.leaf(int(i)) for i in indexes[at]), np.uint8).reshape(-1, 32)
    return pa.table([cols[0], pa.array(versions), pa.array(indexes), _fixed(leaf), *cols[4:]], schema=STATE)


def _state_columns(conn: Connection, dataset: str) -> list[pa.Array]:
    """The current rows' columns as Arrow: PostgreSQL through COPY, straight into Arrow; any
    other database through the driver's cursor, without SQLAlchemy's rows. (Not SQLite through
    ADBC: a second SQLite library on the same WAL file in one process read stale pages and
    failed with disk I/O errors.)"""
    dialect = conn.dialect.name
    if dialect == "postgresql" and conn.dialect.driver == "psycopg":
        import pyarrow.csv as csv  # lazy: likewise

        sql = _STATE_SQL.format(p="%s")
        out = bytearray()
        with conn.connection.dbapi_connection.cursor() as cur:
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", (dataset,)) as copy:
                for chunk in copy:
                    out += chunk
        if not out:
            return _empty_columns()
        names = [f.name if f.name != "leaf" else "leaf_hash" for f in STATE]
        types = {n: (pa.int64() if n in ("version", "leaf_index") else pa.string()) for n in names}
        table = csv.read_csv(pa.py_buffer(bytes(out)), read_options=csv.ReadOptions(column_names=names),
                             convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                                quoted_strings_can_be_null=False))
        return [table.column(i).combine_chunks() for i in range(7)]
    param = {"qmark": "?", "numeric": ":1", "named": ":d"}.get(conn.dialect.paramstyle, "%s")
    args = {"d": dataset} if param == ":d" else (dataset,)
    cursor = conn.exec_driver_sql(_STATE_SQL.format(p=param), args).cursor
    parts: list[list[pa.Array]] = []
    while rows := cursor.fetchmany(_FETCH):      # Python rows a chunk at a time, kept as Arrow
        parts.append([pa.array(c, pa.int64() if i in (1, 2) else pa.string()) for i, c in enumerate(zip(*rows))])
    if not parts:
        return _empty_columns()
    return [pa.concat_arrays([p[i] for p in parts]) for i in range(7)]


_FETCH = 50_000


def _empty_columns() -> list[pa.Array]:
    return [pa.array([], pa.int64() if i in (1, 2) else pa.string()) for i in range(7)]


def _fixed(matrix: np.ndarray) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(matrix),
                                                [None, pa.py_buffer(np.ascontiguousarray(matrix).tobytes())])


def _matrix(leaf: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(leaf, pa.ChunkedArray):      # one chunk: its buffer, not a copy (combine_chunks copies)
        leaf = leaf.chunk(0) if leaf.num_chunks == 1 else leaf.combine_chunks()
    if len(leaf) == 0:
        return np.zeros((0, 32), np.uint8)
    return np.frombuffer(leaf.buffers()[1], np.uint8)[leaf.offset * 32:(leaf.offset + len(leaf)) * 32].reshape(-1, 32)


@dataclass
class LogVersion:
    directory: Path                    # the version's folder: records.parquet, index.parquet (holder keys)
    first_leaf: int
    leaves: np.ndarray                 # (k, 32): the appended leaf hashes, in order
    ids: pa.Array | None               # the appended states' record ids (their older rows are superseded);
    record_count: int                  # None: not held, read from index_path when needed
    map: vmap.MapLevel
    changes: Changes
    held: int
    withdrawn_now: int

    @property
    def appended(self) -> int:
        return len(self.leaves)

    @property
    def record_id_array(self) -> pa.Array:
        if self.ids is not None:
            return self.ids
        if not self.appended:
            return pa.array([], pa.string())
        return pa.concat_arrays(list(self._id_batches(version_store.BATCH)))

    @property
    def record_ids(self) -> list[str]:
        return self.record_id_array.to_pylist()

    def iter_record_ids(self, chunk: int) -> Iterator[list[str]]:
        """The record ids as lists of at most `chunk` (never all as Python strings at once)."""
        for ids in ([self.ids] if self.ids is not None else self._id_batches(chunk * 128)):
            for at in range(0, len(ids), chunk):
                yield ids.slice(at, chunk).to_pylist()

    def _id_batches(self, rows: int) -> Iterator[pa.Array]:
        """The record ids from index_path (the index rows: in the segment's order), `rows` at a time."""
        for batch in staging.parquet_file(self.index_path).iter_batches(batch_size=rows, columns=["record_id"]):
            yield batch.column(0).cast(pa.string())

    @property
    def size(self) -> int:
        return self.first_leaf + self.appended

    @property
    def index_path(self) -> Path:
        """The version's index rows, whole (version_store.INDEX_COLUMNS, leaf_index, leaf_hash):
        what the catalogue's index loads; the version folder keeps only the holder keys."""
        return self.directory.parent / "index_rows.parquet"


@dataclass(frozen=True)
class Delta:
    """A run that carried its unchanged rows over (change detection before conform): its
    accepted and conformed files hold only the rows that changed, so only the current records
    with their ids among the run's or their licence numbers among `licences` (those of the
    rows that changed or left the pull since the last published run) may change, be held or be
    withdrawn; every other current record stays as it is."""
    licences: pa.Array                 # licence numbers (string)
    carried: int = 0                   # accepted rows carried unchanged whose status is not withdrawn


def _in(values, value_set) -> pa.Array:
    if not len(values):       # no look-up table of `value_set` for nothing (a first version: 3M ids, 200 MB)
        return pa.array([], pa.bool_())
    return pc.fill_null(pc.is_in(values, value_set=value_set), False)


def stage_log_version(accepted: Path, conformed: Path, state: pa.Table, versions: dict[int, tuple[str, int]],
                      store: Store, dataset: str, ctype: CertificateType, first_leaf: int,
                      scratch: Path, delta: Delta | None = None) -> LogVersion:
    """`versions`: version -> (its folder's key, its first leaf) for reading current records
    (a newly withdrawn one is appended again with status withdrawn). `delta`: the run holds
    only its changed rows (Delta); catalog/publish/log_delta.py builds the same version from
    the records it may change alone."""
    staged = stage_segment(accepted, conformed, lambda ids: state, versions, store, dataset, ctype, first_leaf,
                           scratch, delta)
    memory.release()       # the segment's intermediates, before the map's
    lv = staged.version(*whole_map(state, staged))
    lv.ids = None          # read from the index rows if superseding needs them: not held while publishing
    del staged
    memory.release()       # the freed pages back before the catalogue's turn
    return lv


@dataclass
class Segment:
    """A version's segment, staged (stage_segment) on `state`, before its map."""
    state: pa.Table                    # the STATE rows it was built on (the whole state, or a Delta's scope)
    directory: Path
    first_leaf: int
    leaves: np.ndarray
    record_ids: pa.Array               # the segment's record ids, in its order
    added: int                         # of them, records new to the state
    changes: Changes
    held: int
    withdrawn_now: int

    def version(self, level: vmap.MapLevel, record_count: int, changes: Changes | None = None) -> LogVersion:
        return LogVersion(self.directory, self.first_leaf, self.leaves, self.record_ids, record_count,
                          level, changes or self.changes, held=self.held, withdrawn_now=self.withdrawn_now)


def whole_map(state: pa.Table, seg: Segment) -> tuple[vmap.MapLevel, int]:
    """The new state's map and record count from the whole current `state` and the segment."""
    ids = state.column("record_id").combine_chunks()
    kept = state.select(["record_id", "leaf_index", "leaf"]).filter(pc.invert(_in(ids, seg.record_ids)))
    del ids
    first = seg.first_leaf
    appended = np.arange(first, first + len(seg.leaves), dtype=np.int64)
    if not kept.num_rows:            # a first version: the segment alone, not copied
        return _map(seg.record_ids, appended, seg.leaves), len(seg.record_ids)
    all_ids = pa.concat_arrays([kept.column("record_id").combine_chunks(), seg.record_ids])
    all_index = np.concatenate([kept.column("leaf_index").to_numpy(), appended])
    all_leaves = np.concatenate([_matrix(kept.column("leaf")), seg.leaves])
    del kept
    return _map(all_ids, all_index, all_leaves), len(all_ids)


def stage_segment(accepted: Path, conformed: Path, state_of: Callable[[pa.Array], pa.Table],
                  versions: dict[int, tuple[str, int]], store: Store, dataset: str, ctype: CertificateType,
                  first_leaf: int, scratch: Path, delta: Delta | None = None,
                  run_numbers: tuple[pa.Array, pa.Array] | None = None) -> Segment:
    """The segment of stage_log_version; `state_of(staged record ids)` gives the current STATE
    rows it is built on (in record-id order): the whole state, or with `delta` at least its
    scope (the current records with those ids or with a licence number in delta.licences).
    `run_numbers`: run_licences(accepted, conformed) if read already."""
    full = scratch / "accepted_version"        # records and index only: no tree of them, no digest
    staged_leaves = version_store.stage_files(accepted, dataset, ctype, full)
    memory.release()      # its batches' pages, freed on worker threads
    new = version_store.version_leaves(Store.local(full), staged_leaves)        # record_id, status, leaf
    del staged_leaves
    new_ids = new.column("record_id").combine_chunks()
    new = new.set_column(new.schema.get_field_index("record_id"), "record_id", new_ids)   # one copy of the ids
    state = state_of(new_ids)
    if state.num_rows:       # the run's licence numbers: whether a current record is held
        present, taken = run_numbers or run_licences(accepted, conformed)
    else:                    # none to hold (a first version): not read
        present = taken = pa.array([], pa.string())

    ids = state.column("record_id").combine_chunks()
    in_new = _in(ids, new_ids)
    numbers = state.column("licence_number")
    held_mask = pc.and_(pc.invert(in_new), pc.and_(_in(numbers, present), pc.invert(_in(numbers, taken))))
    del present, taken          # every licence number of the run, twice: not kept while the segment is written
    gone = pc.and_(pc.invert(in_new), pc.invert(held_mask))
    was_withdrawn = pc.equal(state.column("status"), WITHDRAWN)
    if delta is not None:          # records outside the change stay as they are
        scope = pc.or_(in_new, _in(numbers, delta.licences))
        held_mask, gone = pc.and_(held_mask, scope), pc.and_(gone, scope)
    withdraw = pc.and_(gone, pc.invert(was_withdrawn))

    old = state.select(["record_id", "status", "leaf"]).rename_columns(["record_id", "old_status", "old_leaf"])
    joined = new.append_column("row", pa.array(np.arange(new.num_rows), pa.int64()))
    if state.num_rows:
        joined = joined.join(old, "record_id", join_type="left outer").sort_by("row")
        is_new = pc.is_null(joined.column("old_leaf"))
        same = pc.fill_null(pc.equal(joined.column("leaf"), joined.column("old_leaf")), False)
    else:      # nothing to join (a first version): every row new, none the same (no null columns of n rows)
        is_new, same = pa.array(np.ones(new.num_rows, bool)), pa.array(np.zeros(new.num_rows, bool))
    changed_rows = pc.invert(same)

    out = scratch / "log_version"
    out.mkdir(parents=True, exist_ok=True)
    pick = joined.column("row").filter(changed_rows).to_numpy()
    withdrawn_rows = state.filter(withdraw)
    w_records = _records_of(store, versions, withdrawn_rows, ctype)
    w_records = w_records.set_column(w_records.schema.get_field_index("status"), "status",
                                     pa.array([WITHDRAWN] * w_records.num_rows, w_records.schema.field("status").type))
    w_leaves = leaf_hashes(canonical_json(w_records, prefix=LEAF_PREFIX), prefixed=True)

    _write_segment_records(full, pick, w_records, out / "records.parquet")
    memory.release()      # the records' batches, decoded and encoded
    leaves = _matrix(_picked(new.column("leaf"), pick))
    if len(w_leaves):         # else the picked leaves as they are (a first version's: not copied)
        leaves = np.concatenate([leaves, w_leaves])
    # the store keeps what the records do not hold (the holder key, as before the log); the
    # catalogue's index rows are loaded from the whole index, in scratch, written a batch at a time
    holders = _write_segment_index(full, pick, w_records, withdrawn_rows, first_leaf, leaves,
                                   scratch / "index_rows.parquet")
    staging.write_table(pa.table({"holder_key": holders}), out / "index.parquet", staging.DATASET_FILES)
    memory.release()
    seg_ids = _picked(new_ids, pick)
    if w_records.num_rows:
        seg_ids = pa.concat_arrays([seg_ids, w_records.column("record_id").combine_chunks()])

    def count(mask) -> int:
        return int(pc.sum(mask).as_py() or 0)       # the trues, no int64 copy of n rows

    new_status = joined.column("status")
    withdrawn_new = pc.equal(new_status, WITHDRAWN)
    still_gone = pc.and_(gone, was_withdrawn)
    carried = 0
    if delta is not None:          # withdrawn records outside the change stay withdrawn
        still_gone = pc.and_(was_withdrawn, pc.invert(pc.and_(scope, pc.invert(gone))))
        carried = delta.carried
    changes = Changes(new=count(pc.and_(is_new, pc.invert(withdrawn_new))),
                      changed=count(pc.and_(pc.invert(is_new), pc.and_(changed_rows, pc.invert(withdrawn_new)))),
                      unchanged=count(pc.and_(same, pc.invert(withdrawn_new))) + count(held_mask) + carried,
                      withdrawn=count(withdraw) + count(pc.and_(withdrawn_new, changed_rows)),
                      still_withdrawn=count(still_gone) + count(pc.and_(withdrawn_new, same)))
    return Segment(state, out, first_leaf, leaves, seg_ids,
                   added=count(is_new), changes=changes, held=count(held_mask), withdrawn_now=count(withdraw))


def run_licences(accepted: Path, conformed: Path) -> tuple[pa.Array, pa.Array]:
    """(the licence numbers of the run's conformed rows, of its accepted rows): whole columns."""
    present = staging.read_table(conformed, ["licence_number"]).column(0).combine_chunks()
    return present, staging.read_table(accepted, ["licence_number"]).column(0).combine_chunks()


def _picked(column: pa.Array | pa.ChunkedArray, pick: np.ndarray) -> pa.Array | pa.ChunkedArray:
    """column.take(pick) for ascending `pick`; the column itself when it picks every row (a
    first version, or every record changed): no copy of a whole column."""
    if len(pick) == len(column):
        return column
    return column.take(pa.array(pick, pa.int64()))


def _map(ids: pa.Array, leaf_index: np.ndarray, leaves: np.ndarray) -> vmap.MapLevel:
    id_bytes = from_hex(ids, 32) if len(ids) else np.zeros((0, 16), np.uint8)
    bits = vmap.bits_for(len(ids))
    return vmap.MapLevel(vmap.bucket_hashes(id_bytes, leaf_index, leaves, bits))


def state_map(state: pa.Table) -> vmap.MapLevel:
    """The verifiable map of a current state (current_state)."""
    return _map(state.column("record_id").combine_chunks(), state.column("leaf_index").to_numpy(),
                _matrix(state.column("leaf")))


def _records_of(store: Store, versions: dict[int, tuple[str, int]], rows: pa.Table,
                ctype: CertificateType) -> pa.Table:
    """The published records of state `rows` (their version's segment, at leaf - first leaf)."""
    cols = [*ctype.field_names, "record_id"]
    parts = []
    v_col, i_col = rows.column("version").to_numpy(), rows.column("leaf_index").to_numpy()
    order = []
    for v in np.unique(v_col):
        key, first = versions[int(v)]
        at = np.flatnonzero(v_col == v)
        rows = i_col[at] - first
        groups = np.unique(rows // version_store.ROW_GROUP)       # only the row groups they are in
        table = version_store.records_file(store.sub(key)).read_row_groups(groups.tolist(), columns=cols)
        start = {int(g): k * version_store.ROW_GROUP for k, g in enumerate(groups)}
        local = [start[int(r // version_store.ROW_GROUP)] + int(r % version_store.ROW_GROUP) for r in rows]
        parts.append(table.take(pa.array(local, pa.int64())))
        order.append(at)
    if not parts:
        return ctype.arrow_schema().append(pa.field("record_id", pa.string())).empty_table().select(cols)
    table = pa.concat_tables(parts)
    return table.take(pa.array(np.argsort(np.concatenate(order), kind="stable"), pa.int64()))


def _write_segment_records(full_dir: Path, pick: np.ndarray, w_records: pa.Table, path: Path) -> None:
    """The segment's records: the staged rows at `pick` (ascending), then the newly withdrawn,
    streamed a batch at a time into row groups of version_store.ROW_GROUP (every one full but
    the last: read_record finds a leaf by division). When that is the staged file as it is
    (every row picked, none withdrawn: a first version), the file itself, linked."""
    if not w_records.num_rows and _every_row(pq.read_metadata(full_dir / "records.parquet"), pick):
        _link(full_dir / "records.parquet", path)
    else:
        _rewrite_records(full_dir, pick, w_records, path)


def _rewrite_records(full_dir: Path, pick: np.ndarray, w_records: pa.Table, path: Path) -> None:
    f = staging.parquet_file(full_dir / "records.parquet")
    schema = f.schema_arrow
    mask = np.zeros(f.metadata.num_rows, bool)
    mask[pick] = True

    def batches():
        at = 0
        for batch in f.iter_batches(batch_size=version_store.BATCH):
            keep = mask[at:at + batch.num_rows]
            at += batch.num_rows
            if keep.any():
                yield batch.filter(pa.array(keep))
        if w_records.num_rows:
            yield from w_records.select(schema.names).cast(schema).combine_chunks().to_batches()

    with staging.writer(path, schema, staging.DATASET_FILES) as writer:
        for batch in memory.released(version_store.exactly(version_store.ROW_GROUP, batches())):
            writer.write_table(pa.Table.from_batches([batch], schema), row_group_size=version_store.ROW_GROUP)


def _every_row(meta: pq.FileMetaData, pick: np.ndarray) -> bool:
    """`pick` (ascending, distinct) is every row of a file whose row groups are those the
    segment's would be: version_store.ROW_GROUP rows each, the last at most that. Then the
    rewrite would give the same bytes (same rows, schema, row groups and DATASET_FILES options)."""
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return (0 < len(pick) == meta.num_rows and all(g == version_store.ROW_GROUP for g in groups[:-1])
            and 0 < groups[-1] <= version_store.ROW_GROUP)


def _link(src: Path, dst: Path) -> None:
    """`dst` the same file as `src` (read again later: a link, not a move); a copy where the
    file system has no hard links."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# index_rows.parquet: scratch, read by the index load and dropped; not compressed (LZ4 over 1M
# rows' hex leaf hashes cost 0.4 s of CPU to write and saved a third of its size)
ROWS_FILE = {**staging.DATASET_FILES, "compression": "none"}


def _write_segment_index(full_dir: Path, pick: np.ndarray, w_records: pa.Table, w_state: pa.Table,
                         first_leaf: int, leaves: np.ndarray, path: Path) -> pa.Array:
    """The index rows (version_store.INDEX_COLUMNS, leaf_index, leaf_hash) of the segment's
    records, in its order, written to `path` a batch at a time; returns their holder keys."""
    index_cols = list(version_store.INDEX_COLUMNS)
    mask = np.zeros(pq.ParquetFile(full_dir / "records.parquet").metadata.num_rows, bool)
    mask[pick] = True
    holders: list[pa.Array] = []
    schema = None
    writer = None
    at = k = 0

    def write(part: pa.Table) -> None:
        nonlocal writer, k
        n = part.num_rows
        part = part.append_column("leaf_index", pa.array(np.arange(first_leaf + k, first_leaf + k + n), pa.int64()))
        part = part.append_column("leaf_hash", hex_strings(leaves[k:k + n]))
        if writer is None:
            writer = staging.writer(path, part.schema, ROWS_FILE)
        writer.write_table(part)
        holders.append(part.column("holder_key").combine_chunks())
        k += n

    try:
        for batch in memory.released(version_store.index_batches(full_dir / "index.parquet", index_cols), 4):
            keep = mask[at:at + batch.num_rows]
            at += batch.num_rows
            schema = batch.schema
            if keep.all():           # a first version's: every row, not copied
                write(pa.Table.from_batches([batch]))
            elif keep.any():
                write(pa.Table.from_batches([batch.filter(pa.array(keep))]))
        if schema is None:
            schema = version_store.index_table(full_dir / "index.parquet", index_cols).schema
        if w_records.num_rows:
            write(pa.table({c: (w_state.column("holder_key") if c == "holder_key" else w_records.column(c))
                            for c in index_cols}).cast(schema))
        if writer is None:
            empty = schema.append(pa.field("leaf_index", pa.int64())).append(pa.field("leaf_hash", pa.string()))
            staging.write_table(empty.empty_table(), path, ROWS_FILE)
    finally:
        if writer is not None:
            writer.close()
    if not holders:
        return pa.array([], schema.field("holder_key").type)
    return pa.concat_arrays(holders)


leaf_matrix = _matrix      # a column of leaf hashes as (n, 32) uint8
fixed = _fixed             # (n, 32) uint8 as a column of leaf hashes
