"""SQLite: a secondary index of `records` that a large load fills at random, dropped before the
load and made again after it, inside the publishing transaction.

Rows arrive in record-id order: the primary key and ix_records_dataset_current grow by
appending, but ix_records_dataset_licence (by licence number) takes every entry at a random
place. For 1M rows into an empty table: insert 5.4 s CPU with it, 1.6 s without it plus 2.0 s
to make it again from the table (a sort). Making it again reads the whole table, so it is done
only when the rows coming in outnumber those already there (amortised: the rebuild costs no
more than the load). ix_records_dataset_withdrawn (few entries) and _current
(appended to) gain nothing from it and stay.

SQLite's DDL is transactional: a rollback anywhere after the drop restores the index. The DDL
is the model's (catalog/db/models.py), and only an index whose stored SQL is exactly that is
dropped, so sqlite_master reads the same after as before.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex

from catalog.db.models import Record

REBUILT = ("ix_records_dataset_licence",)
# page caches (KiB). Rows in with every B-tree left appended to: a small cache does as well as
# a large one (1M rows: 1.5 s CPU at 16 MiB or 128 MiB; peak 39 MB against 245 MB). CREATE INDEX
# sorts in memory up to the cache's size before spilling sorted runs; small runs sort faster
# (1M rows: 1.1 s CPU at 4 MiB, 1.7 s at 128 MiB; peak 23 MB against 242 MB).
LOAD_CACHE_KB = 16_384
SORT_CACHE_KB = 4_096


@contextmanager
def rebuilt_around(conn: Connection, incoming: int) -> Iterator[list[str]]:
    """The REBUILT indexes dropped meanwhile, if `incoming` rows outnumber those `records`
    holds and a transaction is open; made again after (not after an error: the
    caller's rollback restores them). Yields the names of those dropped."""
    dropped: dict[str, str] = {}        # name: its DDL
    if conn.dialect.name == "sqlite" and _in_transaction(conn) and not _holds_at_least(conn, incoming):
        for index in Record.__table__.indexes:
            if index.name not in REBUILT:
                continue
            ddl = str(CreateIndex(index).compile(dialect=conn.dialect)).strip()
            stored = conn.exec_driver_sql("SELECT sql FROM main.sqlite_master WHERE type = 'index' AND name = ?",
                                          (index.name,)).scalar()
            if stored == ddl:                 # one not the model's (or absent) is left as it is
                conn.exec_driver_sql(f"DROP INDEX main.{index.name}")
                dropped[index.name] = ddl
    yield list(dropped)
    if dropped:
        was = conn.exec_driver_sql("PRAGMA main.cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA main.cache_size=-{SORT_CACHE_KB}")
        try:
            for ddl in dropped.values():
                conn.exec_driver_sql(ddl)
        finally:
            conn.exec_driver_sql(f"PRAGMA main.cache_size={int(was)}")


def _in_transaction(conn: Connection) -> bool:
    """pysqlite begins a transaction before DML only: DDL outside one would commit at once."""
    return bool(conn.connection.driver_connection.in_transaction)


def _holds_at_least(conn: Connection, n: int) -> bool:
    """`records` has n rows or more: counted up to n (no more than the load it decides on)."""
    return conn.exec_driver_sql("SELECT count(*) FROM (SELECT 1 FROM main.records LIMIT ?)", (n,)).scalar() >= n
