"""A version's index rows into the `records` table, in bulk, inside the publishing transaction.

Per-row Python (a tuple per row for the driver's executemany) was half of publishing a large
version. Here the rows go from Arrow to the database without it:
- SQLite: ADBC bulk ingest writes them to a scratch SQLite file, which the catalogue connection
  ATTACHed before its transaction began (SQLite refuses ATTACH inside one); one
  INSERT ... SELECT copies them into `records` in record-id order. The scratch file is detached
  and removed after the commit or rollback; one left by a killed publish is swept by the next
  (catalog/publish/scratch_dirs.py).
- PostgreSQL: COPY ... FROM STDIN on the transaction's connection, fed CSV written by pyarrow.
- Any other dialect: the driver's executemany, a batch of tuples at a time.
Either way the rows belong to the caller's transaction: a rollback leaves none.
"""
from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from base import memory
from catalog.db.models import Record
from catalog.publish import index_rebuild, store
from catalog.publish.scratch_dirs import Scratch
from catalog.signing import digests

# from the version's index.parquet; dataset_id and version are constants
COLUMNS = (*store.INDEX_COLUMNS, "leaf_hash", "leaf_index")
SCRATCH = "index_scratch"                        # the scratch file's schema name on the connection
_CSV_BATCH = 65_536
LOAD_CACHE_KB = 131_072      # the catalogue's page cache while the rows are copied in (SQLite): twice its usual


def loader(conn: Connection) -> IndexLoader:
    """The loader for the connection's dialect, a context manager around the publishing
    transaction: it attaches before the transaction begins and detaches after it ends."""
    kind = {("sqlite", "pysqlite"): SQLiteLoader, ("postgresql", "psycopg"): PostgresLoader}
    return kind.get((conn.dialect.name, conn.dialect.driver), IndexLoader)(conn)


def sorted_rows(index_path: Path, dates_as_text: bool = False, batch_rows: int = 65_536) -> pa.RecordBatchReader:
    """The version's index rows (COLUMNS) in record-id order, so that a B-tree fills by
    appending; a batch at a time (memory: a run of RUN rows, whatever the version's size)."""
    return sorted_parts(index_path, 1, dates_as_text, batch_rows)[0]


RUN = 131_072       # rows sorted in memory at once: more are sorted through run files beside the index


def sorted_parts(index_path: Path, parts: int, dates_as_text: bool = False,
                 batch_rows: int = 65_536) -> list[pa.RecordBatchReader]:
    """sorted_rows in `parts` consecutive runs of record ids. Record ids (16 bytes each) give
    every row its rank; the rows are dealt into run files of RUN consecutive ranks (Arrow IPC,
    in scratch beside the index), each sorted in memory when its turn comes."""
    n = pq.ParquetFile(index_path).metadata.num_rows        # as many as records.parquet beside it
    if n <= RUN:                                    # small: in memory
        return _sorted_parts_whole(index_path, parts, dates_as_text, batch_rows)
    keys, at = np.empty((n, 16), np.uint8), 0       # 16 bytes an id, filled a batch at a time
    for batch in store.index_batches(index_path, ["record_id"]):
        raw = digests.from_hex(batch.column(0), 32) if batch.num_rows else keys[:0]
        if raw is None:                             # ids not all hex: in memory
            return _sorted_parts_whole(index_path, parts, dates_as_text, batch_rows)
        keys[at:at + len(raw)] = raw
        at += len(raw)
    if at != n:
        raise ValueError(f"{index_path.name}: {at} record ids, not {n}")
    order = store.key_order(keys)
    del keys
    rank = np.empty(n, np.int32 if n < 2**31 else np.int64)    # memory: held while the rows are dealt
    rank[order] = np.arange(n, dtype=rank.dtype)
    del order
    memory.release()
    runs = _deal(index_path, rank)
    schema = runs.schema(dates_as_text)
    bounds = np.cumsum([0, *(len(p) for p in np.array_split(np.arange(n), parts))])

    def batches(lo: int, hi: int, last: bool):
        try:
            for at in range(lo, hi, batch_rows):
                yield runs.rows(at, min(at + batch_rows, hi), schema, dates_as_text)
        finally:
            if last:
                runs.remove()
    return [pa.RecordBatchReader.from_batches(schema, batches(int(bounds[i]), int(bounds[i + 1]), i == parts - 1))
            for i in range(parts)]


class _Runs:
    """Run files of RUN consecutive ranks: run r holds the rows ranked r*RUN .. (r+1)*RUN-1
    with their rank; one run at a time is read back and sorted."""

    def __init__(self, folder: Path, row_schema: pa.Schema):
        self.folder, self.row_schema = folder, row_schema
        self._at, self._table = -1, None

    def path(self, r: int) -> Path:
        return self.folder / f"run{r}.arrow"

    def schema(self, dates_as_text: bool) -> pa.Schema:
        schema = self.row_schema.remove(self.row_schema.get_field_index("leaf_index"))
        if dates_as_text:
            i = schema.get_field_index("valid_to")
            schema = schema.set(i, pa.field("valid_to", pa.string()))
        return schema.append(pa.field("leaf_index", pa.int64()))

    def _run(self, r: int) -> pa.Table:
        if self._at != r:
            self._table = None
            with pa.memory_map(str(self.path(r))) as f:
                table = pa.ipc.open_file(f).read_all()
            order = np.argsort(table.column("_rank").to_numpy(), kind="stable")
            self._at, self._table = r, table.drop_columns(["_rank"]).take(pa.array(order, pa.int64())).combine_chunks()
        return self._table

    def rows(self, lo: int, hi: int, schema: pa.Schema, dates_as_text: bool) -> pa.RecordBatch:
        pieces = []
        while lo < hi:
            r = lo // RUN
            end = min(hi, (r + 1) * RUN)
            pieces.append(self._run(r).slice(lo - r * RUN, end - lo))
            lo = end
        table = pa.concat_tables(pieces).combine_chunks()
        leaf_index = table.column("leaf_index")
        table = table.drop_columns(["leaf_index"])
        if dates_as_text:
            i = table.schema.get_field_index("valid_to")
            table = table.set_column(i, "valid_to", pc.cast(table.column(i), pa.string()))
        return pa.RecordBatch.from_arrays([*(c.combine_chunks() for c in table.columns),
                                           leaf_index.combine_chunks()], schema=schema)

    def remove(self) -> None:
        self._table = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _deal(index_path: Path, rank: np.ndarray) -> _Runs:
    """The index rows (COLUMNS) dealt into run files by rank, a batch at a time."""
    folder = Path(tempfile.mkdtemp(prefix=".index-runs-", dir=index_path.parent))
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    runs = None
    try:
        at = 0
        for batch in memory.released(store.index_batches(index_path, list(COLUMNS)), 4):
            k = batch.num_rows
            r = rank[at:at + k]
            batch = pa.RecordBatch.from_arrays([*batch.columns, pa.array(r, pa.int64())],
                                               schema=batch.schema.append(pa.field("_rank", pa.int64())))
            runs = runs or _Runs(folder, batch.schema.remove(batch.schema.get_field_index("_rank")))
            which = r // RUN
            for u in np.unique(which):
                if int(u) not in writers:
                    writers[int(u)] = pa.ipc.new_file(str(runs.path(int(u))), batch.schema)
                writers[int(u)].write_batch(batch.filter(pa.array(which == u)))
            at += k
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        for w in writers.values():
            w.close()
    return runs


def _sorted_parts_whole(index_path: Path, parts: int, dates_as_text: bool,
                        batch_rows: int) -> list[pa.RecordBatchReader]:
    """sorted_parts with the whole index in memory (a small one, or record ids not all hex)."""
    table = store.index_table(index_path, list(COLUMNS))
    leaf_index = table.column("leaf_index").to_numpy()         # log leaf indexes (the segment's)
    table = table.drop_columns(["leaf_index"])
    table = pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=table.schema)
    order = record_id_order(table.column("record_id"))
    if dates_as_text:
        i = table.schema.get_field_index("valid_to")
        table = table.set_column(i, "valid_to", pc.cast(table.column(i), pa.string()))
    schema = table.schema.append(pa.field("leaf_index", pa.int64()))

    def batches(run: np.ndarray):
        for at in range(0, len(run), batch_rows):
            part = run[at:at + batch_rows]      # the index's row numbers
            yield pa.RecordBatch.from_arrays([*table.take(part).columns, pa.array(leaf_index[part], pa.int64())],
                                             schema=schema)
    return [pa.RecordBatchReader.from_batches(schema, batches(run)) for run in np.array_split(order, parts)]


def record_id_order(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Indices sorting record ids. Lowercase hex sorts as its bytes: sorted as 16 bytes with
    numpy (a fraction of sorting the strings), or as strings if any is not 32 hex."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    raw = digests.from_hex(ids, 32)
    if raw is None:
        return pc.sort_indices(ids).to_numpy()
    return store.key_order(raw)


def iter_tuples(index_path: Path, order: list[str], fixed: dict, dates_as_text: bool,
                batch_rows: int = 50_000):
    """The rows as tuples in `order` (index columns, or constants from `fixed`), a batch at a
    time, in record-id order; made by zip in C, not per row in Python (the generic path)."""
    for batch in sorted_rows(index_path, dates_as_text, batch_rows):
        cols = [itertools.repeat(fixed[c]) if c in fixed else batch.column(c).to_pylist() for c in order]
        yield list(zip(*cols))


class IndexLoader:
    """Any dialect: the driver's executemany over tuples, a batch at a time."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self) -> IndexLoader:
        self.attach()
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def attach(self) -> None:
        """Before the publishing transaction begins (nothing to do here)."""

    def detach(self) -> None:
        """After the publishing transaction ended, committed or not (nothing to do here)."""

    def prepare(self, index_path: Path) -> None:
        """What load can do ahead, while the publish does its other steps (nothing here)."""

    def load(self, index_path: Path, dataset: str, version: int) -> None:
        conn = self.conn
        cols = [*COLUMNS, "dataset_id", "version"]
        compiled = sa.insert(Record.__table__).values({c: sa.bindparam(c) for c in cols}).compile(
            dialect=conn.dialect)
        order = list(compiled.positiontup) if compiled.positional else cols
        fixed = {"dataset_id": dataset, "version": version}
        for rows in iter_tuples(index_path, order, fixed, dates_as_text=conn.dialect.name == "sqlite"):
            conn.exec_driver_sql(str(compiled), rows if compiled.positional else
                                 [dict(zip(order, r)) for r in rows])


class SQLiteLoader(IndexLoader):
    """ADBC ingest into scratch files ATTACHed to the connection, then INSERT ... SELECT: in
    PARTS runs of record ids, all ingested on a worker thread (begun by prepare(), while the
    publish does its other steps) before the first is copied (the connection must never read a
    part while ADBC writes it)."""
    PARTS = 4

    def __init__(self, conn: Connection):
        super().__init__(conn)
        self.scratch: Scratch | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ingested: tuple[Path, Future] | None = None

    def _part(self, i: int) -> tuple[str, Path]:
        return f"{SCRATCH}_{i}", self.scratch.path / f"part{i}.db"

    def attach(self) -> None:
        db = self.conn.engine.url.database
        near = Path(db).parent if db and db != ":memory:" else None   # the catalogue's volume
        self.scratch = Scratch.make(near, ".index-scratch-")
        for i in range(self.PARTS):
            name, path = self._part(i)
            self.conn.exec_driver_sql(f"ATTACH DATABASE ? AS {name}", (str(path),))
        self.conn.commit()            # ends SQLAlchemy's autobegun transaction (pysqlite began none)

    def detach(self) -> None:
        self._stop()
        try:
            if self.conn.in_transaction():
                self.conn.rollback()
            for i in range(self.PARTS):
                self.conn.exec_driver_sql(f"DETACH DATABASE {self._part(i)[0]}")
            self.conn.commit()
        except Exception:                 # never hand the pool a connection with them attached
            self.conn.invalidate()
        finally:
            if self.scratch is not None:
                self.scratch.remove()
                self.scratch = None

    def prepare(self, index_path: Path) -> None:
        """The rows sorted and ingested into the scratch files on a worker thread, while the
        publish appends to the log (1M rows: ~1.6 s of ~2 s). The catalogue's connection reads
        none of the parts until load() has waited for all of them (reading one may load the
        schemas of all, one half-written: "malformed")."""
        self._start(index_path)

    def _start(self, index_path: Path) -> None:
        self._stop()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._ingested = (index_path, self._pool.submit(self._ingest_all, index_path))

    def _ingest_all(self, index_path: Path) -> None:
        memory.release()       # what the publish freed so far (the log's tiles), before the sort's
        runs = sorted_parts(index_path, self.PARTS, dates_as_text=True)  # dates as SQLAlchemy stores them
        for i, rows in enumerate(runs):
            _ingest(self._part(i)[1], rows)
        del runs, rows
        memory.release()          # the sorted runs', before the catalogue's pages

    def _stop(self) -> None:
        """The worker's ingest finished (it cannot be cut short) and the worker gone."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._ingested = None, None

    def load(self, index_path: Path, dataset: str, version: int) -> None:
        if self._ingested is None or self._ingested[0] != index_path:
            self._start(index_path)
        try:
            self._ingested[1].result()     # every part written before the catalogue's connection reads any
        finally:
            self._stop()
        memory.release()
        incoming = pq.ParquetFile(index_path).metadata.num_rows
        with index_rebuild.rebuilt_around(self.conn, incoming) as dropped, \
                self._cache(index_rebuild.LOAD_CACHE_KB if dropped else LOAD_CACHE_KB):
            for i in range(self.PARTS):
                # the catalogue connection reads the part's new schema when this names its table
                src = sa.table("rows", *(sa.column(c) for c in COLUMNS), schema=self._part(i)[0])
                select = (sa.select(*(src.c[c] for c in COLUMNS), sa.literal(dataset), sa.literal(version))
                          .order_by(sa.literal_column("rowid")))    # rowid order is record-id order
                self.conn.execute(sa.insert(Record.__table__).from_select(
                    [*COLUMNS, "dataset_id", "version"], select))

    @contextmanager
    def _cache(self, kib: int) -> Iterator[None]:
        """The connection's page cache at most `kib` KiB meanwhile (its pages, malloc'd, are
        rarely handed back to the system once filled: the cap bounds the process's peak)."""
        was = self.conn.exec_driver_sql("PRAGMA main.cache_size").scalar()
        self.conn.exec_driver_sql(f"PRAGMA main.cache_size=-{int(kib)}")
        try:
            yield
        finally:
            self.conn.exec_driver_sql(f"PRAGMA main.cache_size={int(was)}")


def _ingest(path: Path, rows: pa.RecordBatchReader) -> None:
    """Rows into a new scratch SQLite file through ADBC (its own connection and SQLite)."""
    import adbc_driver_sqlite.dbapi as adbc  # lazy: the SQLite loader's alone

    with adbc.connect(str(path), autocommit=True) as scratch, scratch.cursor() as cur:
        # a scratch file: no journal, no syncs; large pages, fewer writes and reads
        for pragma in ("page_size=65536", "journal_mode=OFF", "synchronous=OFF"):
            cur.execute(f"PRAGMA {pragma}")
            cur.fetchall()
        cur.adbc_ingest("rows", rows, mode="create")


class PostgresLoader(IndexLoader):
    """COPY records FROM STDIN (CSV: strings quoted, nulls unquoted and empty) in the
    transaction, on the psycopg connection underneath SQLAlchemy's. The foreign key
    records.dataset_id -> datasets is checked row by row (two thirds of the COPY's server time
    for 1M rows); it stays on: integrity is not traded for speed."""

    def load(self, index_path: Path, dataset: str, version: int) -> None:
        import pyarrow.csv as csv  # lazy: the PostgreSQL loader's alone
        from psycopg import sql  # lazy: likewise

        rows = sorted_rows(index_path, batch_rows=_CSV_BATCH)
        names = [*rows.schema.names, "dataset_id", "version"]
        dbapi = self.conn.connection.dbapi_connection
        copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(Record.__tablename__), sql.SQL(", ").join(map(sql.Identifier, names)))
        options = csv.WriteOptions(include_header=False, quoting_style="needed")
        with dbapi.cursor() as cur:
            if dbapi.info.encoding != "utf-8":       # pyarrow writes UTF-8
                cur.execute("SET LOCAL client_encoding TO 'UTF8'")
            with cur.copy(copy) as out:
                for batch in rows:
                    n = batch.num_rows
                    batch = pa.RecordBatch.from_arrays(
                        [*batch.columns, pa.repeat(pa.scalar(dataset, pa.string()), n),
                         pa.repeat(pa.scalar(version, pa.int32()), n)], names=names)
                    sink = pa.BufferOutputStream()
                    csv.write_csv(batch, sink, options)
                    out.write(memoryview(sink.getvalue()))
