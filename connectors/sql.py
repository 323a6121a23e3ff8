"""SQL silos through SQLAlchemy: SQLite, PostgreSQL, MariaDB/MySQL.

The bulk read uses ADBC where its driver is installed (SQLite, PostgreSQL: COPY in Arrow
batches); otherwise SQLAlchemy with a server-side cursor (psycopg named cursor, pymysql
SSCursor) and `yield_per`. Every value is cast to text in SQL: the original text is kept.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from base.errors import SourceError
from base.parallel import ordered_map, workers
from connectors.base import batch_from_rows, redact, string_schema
from connectors.credentials import sql_url
from registration.connector import SqlSettings, sqlite_file

CONNECT_TIMEOUT = 10


class SqlConnector:
    def __init__(self, settings: SqlSettings, source_id: str):
        self.settings, self.source_id = settings, source_id
        self.high_water: str | None = settings.since
        self._url: sa.URL | None = None

    @property
    def url(self) -> sa.URL:
        """The silo's URL; a SQLite file resolved under the silo roots (and refused outside)."""
        if self._url is None:
            url = sql_url(self.settings.conn_id, self.settings.url, self.source_id)
            if url.get_backend_name() == "sqlite":
                key = (f"connection {self.settings.conn_id!r}" if self.settings.conn_id and not self.settings.url
                       else "connector.url")
                url = url.set(database=str(sqlite_file(url, key, f"source {self.source_id}")))
            self._url = url
        return self._url

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _fail(self, what: str, exc: Exception) -> SourceError:
        detail = redact(f"{type(exc).__name__}: {exc}".splitlines()[0], [self.url.password])
        return SourceError(f"source {self.source_id}: {what} {self.settings.table!r} at "
                           f"{self.safe_url}: {detail}; check that the silo is up and the "
                           "connection settings are right, then re-run")

    def _engine(self) -> sa.Engine:
        url = self.url
        backend = url.get_backend_name()
        if backend == "sqlite":   # never create an empty file for a missing silo
            path = Path(url.database or "")
            if not path.is_file():
                raise SourceError(f"source {self.source_id}: the SQLite silo {path} does not exist; "
                                  "check the path in the registration")
            return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", hide_parameters=True)
        args = {"connect_timeout": CONNECT_TIMEOUT}
        return sa.create_engine(url, connect_args=args, hide_parameters=True, poolclass=sa.NullPool)

    def _reflect(self) -> dict[str, sa.types.TypeEngine]:
        engine = self._engine()
        try:
            insp = sa.inspect(engine)
            tables = insp.get_table_names()
            if self.settings.table not in tables:
                raise SourceError(f"source {self.source_id}: the silo has no table "
                                  f"{self.settings.table!r}; it has: {', '.join(tables) or '(none)'}")
            return {c["name"]: c["type"] for c in insp.get_columns(self.settings.table)}
        except sa.exc.SQLAlchemyError as exc:
            raise self._fail("could not inspect table", exc) from exc
        finally:
            engine.dispose()

    def columns(self) -> list[str]:
        return list(self._reflect())

    def column_types(self) -> dict[str, str]:
        """Column name -> the silo's declared type (schema drift checks compare these)."""
        return {name: str(t) for name, t in self._reflect().items()}

    def query(self, types: dict[str, sa.types.TypeEngine]) -> sa.Select:
        """SELECT every column as text, within the watermark window if incremental."""
        s = self.settings
        table = sa.table(s.table, *(sa.column(c) for c in types))
        query = sa.select(*(sa.cast(table.c[c], sa.String).label(c) for c in types))
        if s.watermark:
            if s.watermark not in types:
                raise SourceError(f"source {self.source_id}: watermark column {s.watermark!r} is "
                                  f"not in table {s.table!r}; it has {sorted(types)}")
            col, typ = table.c[s.watermark], types[s.watermark]
            if s.since is not None:
                query = query.where(col > sa.cast(sa.literal(s.since, sa.String), typ))
            upper = None if self.high_water is None else sa.cast(sa.literal(self.high_water, sa.String), typ)
            query = query.where(col <= upper) if upper is not None else query.where(sa.false())
        if s.part:
            query = query.where(self._range(table, types))
        return query

    def _range(self, table, types) -> sa.ColumnElement[bool]:
        """This run's partition: after < key <= upto (an end left open is unbounded); the last
        partition also takes the rows whose key is NULL."""
        part = self.settings.part or {}
        name = part["column"]
        if name not in types:
            raise SourceError(f"source {self.source_id}: partition key column {name!r} is not in "
                              f"table {self.settings.table!r}; it has {sorted(types)}")
        col, typ = table.c[name], types[name]
        conds = [op(col, sa.cast(sa.literal(part[end], sa.String), typ))
                 for end, op in (("after", lambda a, b: a > b), ("upto", lambda a, b: a <= b))
                 if part.get(end) is not None]
        cond = sa.and_(sa.true(), *conds)
        return sa.or_(cond, col.is_(None)) if part.get("nulls") else cond

    def _high_water(self, types) -> str | None:
        """The newest watermark value now: the pull reads up to it, so rows changing during
        the pull are taken next time."""
        s = self.settings
        table = sa.table(s.table, sa.column(s.watermark))
        q = sa.select(sa.cast(sa.func.max(table.c[s.watermark]), sa.String))
        if s.since is not None:
            q = q.where(table.c[s.watermark] > sa.cast(sa.literal(s.since, sa.String), types[s.watermark]))
        engine = self._engine()
        try:
            with engine.connect() as conn:
                newest = conn.scalar(q)
        except sa.exc.SQLAlchemyError as exc:
            raise self._fail("could not read the watermark of", exc) from exc
        finally:
            engine.dispose()
        return s.since if newest is None else newest

    def batches(self) -> Iterator[pa.RecordBatch]:
        types = self._reflect()
        schema = string_schema(types)
        if self.settings.watermark:
            self.high_water = self._high_water(types)
        query = self.query(types)
        backend = self.url.get_backend_name()
        try:
            if backend == "sqlite" and self.settings.adbc and _has("adbc_driver_sqlite"):
                yield from _adbc_sqlite(self.url.database, self.settings, query, schema)
            elif backend == "postgresql" and self.settings.adbc and _has("adbc_driver_postgresql"):
                yield from _adbc_postgresql(self.url, self.settings, query, schema)
            else:
                yield from self._stream(query, schema)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._fail("lost the connection while reading", exc) from exc
        except SourceError:
            raise
        except Exception as exc:  # ADBC and DB-API drivers raise their own errors
            if type(exc).__module__.split(".")[0] in ("adbc_driver_manager", "pymysql", "psycopg"):
                raise self._fail("lost the connection while reading", exc) from exc
            raise

    def _stream(self, query: sa.Select, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Server-side cursor: psycopg names a cursor, pymysql uses SSCursor; SQLite steps."""
        engine = self._engine()
        try:
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                try:
                    result = conn.execution_options(stream_results=True,
                                                    yield_per=self.settings.batch_rows).execute(query)
                    for rows in result.partitions():
                        yield batch_from_rows(rows, schema)
                except BaseException:
                    _abandon(conn, raw)
                    raise
        finally:
            engine.dispose()


def _abandon(conn: sa.Connection, raw) -> None:
    """A stream that died or was given up: drop the connection without draining the rest of
    the table (pymysql would read every remaining row, or fail later in a finaliser)."""
    pending = getattr(raw, "_result", None)
    if getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False
    if not conn.invalidated:
        conn.invalidate()


def _has(module: str) -> bool:
    try:
        __import__(f"{module}.dbapi")
    except ImportError:
        return False
    return True


def _literal_sql(query: sa.Select, dialect: str) -> str:
    d = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}[dialect]
    return str(query.compile(dialect=d, compile_kwargs={"literal_binds": True}))


def _adbc_sqlite(path: str, s: SqlSettings, query: sa.Select, schema: pa.Schema):
    """A rowid table is read in rowid ranges, on one connection per worker thread at once
    (SQLite steps while the driver holds no GIL), and yielded in order.
    ADBC's SQLite driver infers types from the first batch, so a column NULL there breaks
    later batches: a sentinel row of strings fixes every column as text."""
    import adbc_driver_sqlite.dbapi as adbc  # lazy: ADBC is used where installed (_has)

    uri = f"file:{path}?mode=ro"
    cols = schema.names
    sentinel = ", ".join(f"'' AS {_quote(c)}" for c in cols) + ", 0 AS __real"
    body = ", ".join(_quote(c) for c in cols) + ", 1"
    local, opened = threading.local(), []

    def read(part: sa.Select) -> list[pa.RecordBatch]:
        if getattr(local, "conn", None) is None:
            local.conn = adbc.connect(uri)
            opened.append(local.conn)
        with local.conn.cursor() as cur:
            # the sentinel too: a part of batch_rows rows is one batch, not batch_rows - 1 and 1
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(s.batch_rows + 1)})
            cur.execute(f"SELECT {sentinel} UNION ALL SELECT {body} FROM ({_literal_sql(part, 'sqlite')})")
            out = []
            for batch in cur.fetch_record_batch():
                real = pc.equal(batch.column(len(cols)), 1)
                if not pc.all(real).as_py():     # the sentinel (first, as a rule): no copy then
                    batch = batch.slice(1) if pc.all(real.slice(1)).as_py() else batch.filter(real)
                if batch.num_rows:
                    out.append(pa.RecordBatch.from_arrays(batch.columns[:len(cols)], schema=schema))
            return out

    parts = ordered_map(read, _rowid_parts(adbc, uri, s, query))
    try:
        for batches in parts:
            yield from batches
    finally:
        parts.close()                  # waits for the workers before their connections close
        for conn in opened:
            conn.close()


def _rowid_parts(adbc, uri: str, s: SqlSettings, query: sa.Select) -> list[sa.Select]:
    """The query per range of batch_rows rowids; the query whole where the table has no
    rowid (a view, WITHOUT ROWID) or one worker would read it all anyway."""
    with adbc.connect(uri) as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SELECT max(rowid) FROM {_quote(s.table)}")
            top = cur.fetchone()[0]
        except adbc.Error:
            top = None
    if not isinstance(top, int) or top <= s.batch_rows or workers() == 1:
        return [query]
    rowid = sa.literal_column("rowid")
    return [query.where(rowid > lo, rowid <= lo + s.batch_rows) for lo in range(0, top, s.batch_rows)]


def _adbc_postgresql(url: sa.URL, s: SqlSettings, query: sa.Select, schema: pa.Schema):
    """COPY (binary) into Arrow batches: no per-row Python work."""
    import adbc_driver_postgresql.dbapi as adbc  # lazy: as above

    uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
    uri += ("&" if "?" in uri else "?") + f"connect_timeout={CONNECT_TIMEOUT}"
    with adbc.connect(uri) as conn, conn.cursor() as cur:
        hint = max(64 << 10, s.batch_rows * 512)   # about batch_rows rows of a licence table
        cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(hint)})
        cur.execute(_literal_sql(query, "postgresql"))
        for batch in cur.fetch_record_batch():
            if batch.num_rows:
                yield pa.RecordBatch.from_arrays(
                    [c.cast(pa.string()) for c in batch.columns], schema=schema)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
