"""Engines and schema upgrades for the catalogue (Alembic owns the tables).

Processes that start together on an empty catalogue (the API's workers, Airflow's tasks) take
turns to upgrade it: PostgreSQL a session advisory lock, MariaDB GET_LOCK, SQLite an exclusive
lock on a file beside the database, each released only after the upgrade's transaction commits.
The first migrates; the others then find the schema at head and do nothing.

`exchange db upgrade` runs the same upgrade as an explicit step (`upgrade`). A process that
opens a catalogue behind the code's head upgrades it itself only where Settings.migrates_itself
says so (SQLite, or a local executor, or EXCHANGE_AUTO_MIGRATE=1); elsewhere it refuses and
names `exchange db upgrade`, so machines started together never race on the schema.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import weakref
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, NullPool, create_engine, event, make_url

from base.errors import ConfigError
from base.files import private_dir, private_file
from base.settings import get_settings
from catalog.db import rawdb, wal

MIGRATIONS = Path(__file__).parent.parent / "migrations"
MIGRATION_LOCK = 0x65786368616E6765     # "exchange": the advisory lock key on PostgreSQL
# alembic's per-open INFO lines ("Context impl SQLiteImpl") would reach stdout through Airflow's
# logging once Airflow is imported, and break a command's --json output
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
MIGRATION_WAIT = 300                    # seconds MariaDB waits for another process's upgrade


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


CACHE_KB = 65_536        # each SQLite connection's page cache, KiB


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA journal_size_limit={int(rawdb.WAL_LIMIT)}")   # the WAL shrinks back when restarted
    # 64 MB: a page cache fills to its cap and stays resident while the pool keeps the connection
    # (a delta publish's index reads: ~250 MB at 256 MB); the bulk index load sets its own
    cur.execute(f"PRAGMA cache_size=-{CACHE_KB}")
    cur.close()


@contextlib.contextmanager
def checkpoint_aside(conn: Connection):
    """SQLite: `conn`'s commits meanwhile leave the WAL to `checkpoint_thread` (catalog/db/wal.py).
    Other dialects: nothing."""
    if conn.dialect.name != "sqlite":
        yield
        return
    was = int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
    conn.exec_driver_sql(wal.OFF)
    conn.commit()                 # ends SQLAlchemy's autobegun transaction (pysqlite began none)
    try:
        yield
    finally:
        if not conn.invalidated:
            conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={was}")
            conn.commit()


def checkpoint_thread(engine: Engine) -> threading.Thread | None:
    """SQLite: one PASSIVE checkpoint on a started thread with its own connection; join it when
    the work it overlaps is done. Not a daemon: the process waits for it before it exits. Other
    dialects: None."""
    if engine.dialect.name != "sqlite":
        return None

    def passive() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(wal.PASSIVE).fetchall()
    return wal.start(lambda: wal.guarded(passive), daemon=False)


def _private_sqlite(path: Path) -> None:
    """The catalogue file 0600 before SQLite opens it (its -wal and -shm files take its mode);
    a directory made for it is 0700."""
    if not path.parent.exists():
        private_dir(path.parent)
    if path.exists():       # never opened here: closing a descriptor of it would drop this
        if path.stat().st_mode & 0o077:      # process's SQLite locks on it (POSIX), and another
            path.chmod(0o600)                # process would then delete the -wal and -shm in use
    else:
        private_file(path)
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists() and extra.stat().st_mode & 0o077:
            extra.chmod(0o600)


def _engine(url: str, pre_ping: bool = True, **kw) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        _private_sqlite(Path(url.removeprefix("sqlite:///").split("?")[0]))
    engine = create_engine(url, pool_pre_ping=pre_ping, **kw)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        _SQLITE.add(engine)
    return engine


_SQLITE: weakref.WeakSet[Engine] = weakref.WeakSet()


def shrink_caches() -> None:
    """The page cache of every idle pooled SQLite connection handed back (PRAGMA shrink_memory).
    A bulk write (a run's quarantine entries, a version's index rows) leaves up to cache_size of
    pages in each connection it used, resident while the pool keeps it: ~90 MB after a 3M-row
    run's validate, in the way of publish's peak. For between a run's stages."""
    for engine in list(_SQLITE):
        idle = getattr(engine.pool, "checkedin", lambda: 0)()
        conns = []
        try:
            for _ in range(idle):             # held together: each a different pooled connection
                conns.append(engine.raw_connection())
            for c in conns:
                c.driver_connection.execute("PRAGMA shrink_memory")
        finally:
            for c in conns:
                c.close()                     # back to the pool


@lru_cache(maxsize=8)
def engine_for(url: str, pre_ping: bool = True) -> Engine:
    """An engine whose schema is at the newest migration. pre_ping=False saves a round trip
    per checkout (the API's hot path); a dropped connection then fails one request."""
    engine = _engine(url, pre_ping)
    if get_settings().migrates_itself(engine.dialect.name):
        with _migration_lock(engine, url) as conn, conn.begin():
            _upgrade(conn, url)      # committed before the lock is released
        return engine
    with engine.connect() as conn:
        current = _revision(conn)
    if current is not None and not _known(current):
        engine.dispose()
        raise ConfigError(
            f"the catalogue ({_shown(url)}) is at schema revision {current}, which this code does not "
            f"know (its newest is {head()}): the catalogue was upgraded by newer code; run that version "
            "of the exchange here too")
    if current != head():
        engine.dispose()
        raise ConfigError(
            f"the catalogue ({_shown(url)}) is at schema revision {current or 'none (empty)'}, this code "
            f"needs {head()}: run `exchange db upgrade` once, from any one machine, before starting the "
            "exchange (Airflow's executor runs tasks on other machines, so no process upgrades it on its "
            "own; EXCHANGE_AUTO_MIGRATE=1 lets it)")
    return engine


@lru_cache(maxsize=8)
def reader_for(url: str) -> Engine:
    """An engine that reads without checking the schema's revision first: a DAG parse's one
    SELECT (catalog/registrations.py). Connections are not pooled: a parse is short-lived."""
    return _engine(url, poolclass=NullPool)


def head() -> str:
    """The newest migration this code knows."""
    return str(ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head())


def _known(revision: str) -> bool:
    """Whether this code's migrations include `revision` (one newer code made is unknown)."""
    try:
        return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_revision(revision) is not None
    except Exception:          # alembic raises for a revision it cannot resolve
        return False


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade(conn: Connection, url: str) -> None:
    cfg = _alembic_config(url)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def schema_status(url: str) -> dict:
    """The catalogue's schema revision against the code's head; changes nothing."""
    engine = _engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            current = _revision(conn)
    finally:
        engine.dispose()
    return {"catalogue": _shown(url), "current": current, "head": head(), "at_head": current == head()}


def upgrade(url: str) -> dict:
    """Upgrade the catalogue's schema to head: the explicit step (`exchange db upgrade`). Safe
    from several machines at once (one migrates under the lock, the others find it at head)."""
    engine = _engine(url, poolclass=NullPool)
    try:
        with _migration_lock(engine, url) as conn, conn.begin():   # committed, then unlocked
            before = _revision(conn)
            _upgrade(conn, url)
            after = _revision(conn)
    finally:
        engine.dispose()
    return {"catalogue": _shown(url), "from": before, "to": after, "head": head(), "upgraded": before != after}


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: str):
    """A connection holding the one-upgrade-at-a-time lock (see the module's doc): a session
    lock, taken outside the upgrade's transaction and released only after it ends, so the next
    process reads the committed revision (MariaDB commits DDL at once, but not the version's
    last update). SQLite's lock is taken before connecting: a new file's first connections
    switch it to WAL, and two doing so at once fail with "database is locked"."""
    if engine.dialect.name == "sqlite" and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///").split("?")[0])
        fd = os.open(path.with_name(path.name + ".migrate-lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with engine.connect() as conn:
                yield conn
        finally:
            os.close(fd)
        return
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            conn.commit()
            try:
                yield conn
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                conn.commit()
        elif dialect in ("mysql", "mariadb"):
            got = conn.exec_driver_sql(f"SELECT GET_LOCK('exchange_migrations', {MIGRATION_WAIT})").scalar()
            conn.commit()
            if got != 1:
                raise ConfigError(f"another process has been upgrading the catalogue's schema for "
                                  f"{MIGRATION_WAIT} s; check it, then start again")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("SELECT RELEASE_LOCK('exchange_migrations')")
                conn.commit()
        else:
            yield conn
