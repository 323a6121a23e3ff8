"""Processes that start at the same moment on an empty catalogue: the schema is migrated once,
by one of them, and every one of them starts (PostgreSQL: an advisory lock; SQLite: a lock
file; MariaDB: GET_LOCK)."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import sqlalchemy as sa

from tests.conftest import ROOT
from tests.integration.conftest import server_url

STARTERS = 4
CODE = """
import sys, time
from catalog.db.engine import engine_for
at = float(sys.argv[2])
time.sleep(max(0.0, at - time.time()))      # every process starts its upgrade at the same moment
engine_for(sys.argv[1])
print("started")
"""


def _start_together(url: str) -> list[subprocess.CompletedProcess]:
    at = time.time() + 6                          # after every interpreter has imported Alembic
    procs = [subprocess.Popen([sys.executable, "-c", CODE, url, str(at)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(STARTERS)]
    return [subprocess.CompletedProcess(p.args, p.wait(120), *p.communicate()) for p in procs]


def _head(url: str) -> list[str]:
    from alembic.script import ScriptDirectory

    from catalog.db.engine import _alembic_config

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as c:
        got = list(c.execute(sa.text("select version_num from alembic_version")).scalars())
    engine.dispose()
    assert got == ScriptDirectory.from_config(_alembic_config("sqlite://")).get_heads()
    return got


def _all_started(results) -> None:
    failed = ["\n".join(r.stderr.splitlines()[-30:]) for r in results if r.returncode != 0]
    assert not failed, f"{len(failed)} of {STARTERS} processes failed to start: {failed[0]}"
    assert all(r.stdout.strip() == "started" for r in results)


def test_postgresql(tmp_path):
    from demo.sql_silos import create_database, drop_database

    server = server_url("postgresql")
    name = f"t_start_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name).render_as_string(hide_password=False)
    try:
        _all_started(_start_together(url))
        _head(url)
    finally:
        drop_database(server, name)


def test_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    _all_started(_start_together(url))
    _head(url)


def test_mariadb(tmp_path):
    from demo.sql_silos import create_database, drop_database

    server = server_url("mariadb")
    name = f"t_start_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name).render_as_string(hide_password=False)
    try:
        _all_started(_start_together(url))
        _head(url)
    finally:
        drop_database(server, name)
