"""DB-API connections for the API's hot paths (the holder lookup and the audit append): one
per thread and engine, opened through the engine (so its connect events, e.g. SQLite's pragmas,
apply) and then detached from its pool. Statements are compiled from SQLAlchemy Core once and
executed on the driver directly: no pool checkout, no compiled-cache lookup, no result
processing per call, and on PostgreSQL psycopg prepares them server-side after a few uses.

Connections are in autocommit mode: a read sees the newest commit, and writes open their own
transaction (`transaction()`). A connection that failed is closed and reopened on next use.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event

from catalog.db import wal

_registry: WeakKeyDictionary = WeakKeyDictionary()
# SQLite's WAL file is kept under this size: journal_size_limit (catalog/db/engine.py) truncates it when
# a writer starts it over, and the checkpoint thread truncates it (TRUNCATE) when it is larger
WAL_LIMIT = 16 * 2**20
TRUNCATE_WAIT_MS = 100     # how long a TRUNCATE checkpoint waits for readers (writers retry meanwhile)
_registry_lock = threading.Lock()


class Busy(Exception):
    """Another connection holds SQLite's write lock (only from `transaction(wait=False)`)."""


class Raw:
    """The hot-path connections of one engine (get it with `raw(engine)`)."""

    def __init__(self, engine: Engine):
        self.engine, self.dialect = engine, engine.dialect.name
        self._local = threading.local()
        self._sql: dict = {}
        self._checkpointer: threading.Thread | None = None

    def compiled(self, stmt) -> tuple[str, tuple[str, ...] | None]:
        """(SQL text, parameter order or None for named parameters) of a Core statement."""
        hit = self._sql.get(stmt)
        if hit is None:
            c = stmt.compile(dialect=self.engine.dialect)
            hit = self._sql[stmt] = (c.string, tuple(c.positiontup) if c.positional else None)
        return hit

    def args(self, stmt, params: dict):
        sql, order = self.compiled(stmt)
        return sql, (tuple(params[k] for k in order) if order is not None else params)

    def _open(self):
        fairy = self.engine.raw_connection()
        fairy.detach()                # ours until closed; the pool opens another for others
        conn = fairy.dbapi_connection
        conn.rollback()
        if self.dialect == "sqlite":
            conn.isolation_level = None      # autocommit; writes say BEGIN IMMEDIATE themselves
        else:
            conn.autocommit = True
        return conn

    @contextmanager
    def connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        try:
            yield conn
        except self.engine.dialect.loaded_dbapi.Error:
            self._drop(conn)
            raise

    @contextmanager
    def transaction(self, wait: bool = True):
        """A write transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE),
        waiting for it up to the busy timeout, or with wait=False raising Busy if it is taken."""
        with self.connection() as conn:
            if self.dialect == "sqlite":
                if not self._begin(conn, wait):
                    raise Busy("the catalogue's write lock is taken")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            else:
                with conn.transaction():
                    yield conn

    def _begin(self, conn, wait: bool) -> bool:
        if wait:
            conn.execute("BEGIN IMMEDIATE")
            return True
        timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except self.engine.dialect.loaded_dbapi.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")

    def _drop(self, conn) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        try:
            conn.close()
        except Exception:   # noqa: BLE001 - it is being thrown away
            pass

    def checkpoint_aside(self, every: float = 1.0) -> None:
        """SQLite: this thread's connection stops checkpointing the WAL in its commits, and one
        daemon thread per engine runs a PASSIVE checkpoint every `every` seconds instead
        (catalog/db/wal.py)."""
        with self.connection() as conn:
            conn.execute(wal.OFF)
        with _registry_lock:
            if self._checkpointer is None:
                self._checkpointer = wal.start(lambda: self._checkpoints(every), daemon=True)

    def _checkpoints(self, every: float) -> None:
        while True:
            time.sleep(every)
            wal.guarded(self._checkpoint)

    def _checkpoint(self) -> None:
        db = self.engine.url.database
        path = f"{db}-wal" if db and db != ":memory:" else None
        with self.connection() as conn:
            conn.execute(wal.PASSIVE).fetchall()
            if path and os.path.exists(path) and os.path.getsize(path) > WAL_LIMIT:
                self._truncate(conn)

    @staticmethod
    def _truncate(conn) -> None:
        """A TRUNCATE checkpoint (the WAL file to zero bytes) that waits for readers at most
        TRUNCATE_WAIT_MS; if they are still reading, the next round tries again."""
        timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")

    def dispose(self) -> None:
        """Forget every thread's connection (each closes when it is garbage-collected)."""
        self._local = threading.local()


def raw(engine: Engine) -> Raw:
    r = _registry.get(engine)
    if r is None:
        with _registry_lock:
            r = _registry.get(engine)
            if r is None:
                r = _registry[engine] = Raw(engine)
                event.listen(engine, "engine_disposed", lambda _e: r.dispose())
    return r
