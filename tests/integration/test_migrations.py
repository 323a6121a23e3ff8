"""The Alembic migrations build exactly the tables the models describe (SQLite and PostgreSQL),
and downgrade cleanly to nothing: a migration forgotten or mis-chained fails here."""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from catalog.db import _alembic_config
from catalog.models import Base
from tests.integration.conftest import server_url


def _functions(conn) -> set[str]:
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.execute(sa.text("select proname from pg_proc p join pg_namespace n on "
                                    "n.oid = p.pronamespace where nspname = 'public'")).scalars())


def _diff(url: str) -> list:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        cfg = _alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        functions = _functions(conn)
        command.downgrade(cfg, "base")
        left = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
        left |= _functions(conn)
    engine.dispose()
    assert functions == ({"audit_append"} if url.startswith("postgresql") else set()), functions
    return diff, left


def test_one_head():
    heads = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"migrations have several heads {heads}: chain the newest onto the last"


def test_sqlite_migrations_match_models(tmp_path):
    diff, left = _diff(f"sqlite:///{tmp_path / 'c.db'}")
    assert diff == [] and left == set()


def test_postgresql_migrations_match_models():
    from demo.sql_silos import create_database, drop_database

    server = server_url("postgresql")
    name = f"t_mig_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    try:
        diff, left = _diff(sa.make_url(url).render_as_string(hide_password=False))
    finally:
        drop_database(server, name)
    assert diff == [] and left == set()
