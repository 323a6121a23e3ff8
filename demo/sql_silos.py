"""Seeded PostgreSQL and MariaDB silos, made from code (demo/synth.py data).

    python -m demo.sql_silos postgresql+psycopg://postgres@127.0.0.1:5432/postgres smr_demo 10000

makes database `smr_demo` on that server with the business-licence table, GXSJ as a real
timestamp (the watermark column), ID the primary key.
"""
from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from demo.synth import TABLE, business_licences


def database_url(server_url: str, name: str) -> sa.URL:
    return sa.make_url(server_url).set(database=name)


def create_database(server_url: str, name: str) -> sa.URL:
    """(Re)create an empty database `name` on the server; returns its URL."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    engine.dispose()
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


def silo_table(name: str, columns: list[str], metadata: sa.MetaData) -> sa.Table:
    cols = []
    for c in columns:
        if c == "ID":
            cols.append(sa.Column(c, sa.BigInteger, primary_key=True, autoincrement=False))
        elif c == "GXSJ":
            cols.append(sa.Column(c, sa.DateTime, index=True))
        else:
            cols.append(sa.Column(c, sa.Text))
    return sa.Table(name, metadata, *cols)


def as_silo_types(table: pa.Table) -> pa.Table:
    """GXSJ text -> timestamp, so the silo has a real change-timestamp column."""
    if "GXSJ" in table.column_names and pa.types.is_string(table.schema.field("GXSJ").type):
        i = table.column_names.index("GXSJ")
        ts = pc.strptime(table.column(i), format="%Y-%m-%dT%H:%M:%S", unit="s")
        table = table.set_column(i, "GXSJ", ts)
    return table


def seed(url, table: pa.Table, name: str = TABLE, chunk_rows: int = 20_000) -> None:
    """Create `name` in the database at `url` and fill it with `table`."""
    table = as_silo_types(table)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    meta = sa.MetaData()
    target = silo_table(name, table.column_names, meta)
    meta.drop_all(engine)
    meta.create_all(engine)
    try:
        if engine.dialect.name == "postgresql" and _copy_postgresql(engine, name, table):
            return
        with engine.begin() as conn:
            for batch in table.to_batches(chunk_rows):
                conn.execute(sa.insert(target), batch.to_pylist())
    finally:
        engine.dispose()


def _copy_postgresql(engine: sa.Engine, name: str, table: pa.Table) -> bool:
    """COPY through psycopg: a million rows in seconds."""
    raw = engine.raw_connection()
    try:
        cols = ", ".join(f'"{c}"' for c in table.column_names)
        with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({cols}) FROM STDIN') as copy:
            for batch in table.to_batches(50_000):
                for row in zip(*(c.to_pylist() for c in batch.columns)):
                    copy.write_row(row)
        raw.commit()
        return True
    finally:
        raw.close()


def main(argv: list[str]) -> int:

    server, name, rows = argv[0], argv[1], int(argv[2]) if len(argv) > 2 else 10_000
    url = create_database(server, name)
    seed(url, business_licences(rows)[0])
    print(url.render_as_string(hide_password=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
