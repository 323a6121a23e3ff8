"""`exchange db upgrade | current`: the schema upgrade as an explicit step, safe from several
machines at once; under an executor that runs tasks on other machines, a process that finds a
shared catalogue behind the code's head refuses (naming `exchange db upgrade`) instead of
migrating on its own, and a SQLite catalogue is refused outright."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from alembic import command

from catalog.db.engine import _alembic_config, head
from tests.conftest import ROOT, TEST_PASSPHRASE
from tests.integration.conftest import server_url

MACHINES = 4
AT_ONCE = """
import sys, time
from cli import main
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))    # every process upgrades at the same moment
sys.exit(main(sys.argv[2:]))
"""


def _env(home, url: str | None, executor: str | None = "CeleryExecutor", **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EXCHANGE_CATALOG_URL", "AIRFLOW__CORE__EXECUTOR", "EXCHANGE_AUTO_MIGRATE")}
    env.update(EXCHANGE_HOME=str(home), EXCHANGE_KEY_PASSPHRASE=TEST_PASSPHRASE, **extra)
    if url:
        env["EXCHANGE_CATALOG_URL"] = url
    if executor:
        env["AIRFLOW__CORE__EXECUTOR"] = executor
    return env


def _exchange(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=180)


@pytest.fixture(params=["postgresql", "mariadb"])
def fresh(request):
    """A fresh, empty shared catalogue database."""
    from demo.sql_silos import create_database, drop_database

    server = server_url(request.param)
    name = f"t_dbup_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name).render_as_string(hide_password=False)
    yield url
    drop_database(server, name)


def test_upgrade_from_four_machines_at_once(fresh, tmp_path):
    env = _env(tmp_path / "home", fresh)
    before = _exchange(env, "db", "current", "--json")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout) | {"catalogue": None} == {
        "catalogue": None, "current": None, "head": head(), "at_head": False}

    at = time.time() + 6                          # after every interpreter has imported the CLI
    procs = [subprocess.Popen([sys.executable, "-c", AT_ONCE, str(at), "db", "upgrade", "--json"], cwd=ROOT,
                              env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(MACHINES)]
    results = [(p.wait(180), *p.communicate()) for p in procs]
    failed = [err[-400:] for rc, _, err in results if rc != 0]
    assert not failed, f"{len(failed)} of {MACHINES} upgrades failed: {failed[0]}"
    done = [json.loads(out) for _, out, _ in results]
    assert sum(d["upgraded"] for d in done) == 1, done        # one migrated; the others found it at head
    assert {d["to"] for d in done} == {head()}

    after = _exchange(env, "db", "current")
    assert after.returncode == 0 and f"{head()} (head)" in after.stdout, after.stdout + after.stderr
    assert _exchange(env, "datasets", "--json").returncode == 0      # the exchange now starts


def test_behind_head_refused_under_a_remote_executor(fresh, tmp_path):
    cfg = _alembic_config(fresh)
    command.upgrade(cfg, _previous())          # an older exchange's schema
    env = _env(tmp_path / "home", fresh)
    refused = _exchange(env, "datasets", "--json")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "exchange db upgrade" in refused.stderr and _previous() in refused.stderr, refused.stderr
    assert _exchange(env, "db", "current", "--json").returncode == 0
    assert json.loads(_exchange(env, "db", "current", "--json").stdout)["current"] == _previous()

    allowed = _exchange(_env(tmp_path / "home", fresh, EXCHANGE_AUTO_MIGRATE="1"), "datasets", "--json")
    assert allowed.returncode == 0, allowed.stderr                     # the setting lets it migrate
    assert json.loads(_exchange(env, "db", "current", "--json").stdout)["at_head"] is True


def test_catalogue_upgraded_by_newer_code_is_refused_without_advice_to_upgrade(fresh, tmp_path):
    import sqlalchemy as sa

    command.upgrade(_alembic_config(fresh), "head")
    engine = sa.create_engine(fresh)
    with engine.begin() as conn:            # what a newer exchange's next migration would leave
        conn.execute(sa.text("update alembic_version set version_num = '9999_from_newer_code'"))
    engine.dispose()
    refused = _exchange(_env(tmp_path / "home", fresh), "datasets", "--json")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "9999_from_newer_code" in refused.stderr and "newer code" in refused.stderr, refused.stderr
    assert "exchange db upgrade" not in refused.stderr, refused.stderr


def test_empty_catalogue_refused_under_a_remote_executor_migrated_under_a_local_one(fresh, tmp_path):
    refused = _exchange(_env(tmp_path / "home", fresh), "datasets", "--json")
    assert refused.returncode == 2 and "exchange db upgrade" in refused.stderr, refused.stderr
    local = _exchange(_env(tmp_path / "home", fresh, executor="LocalExecutor"), "datasets", "--json")
    assert local.returncode == 0, local.stderr                         # one machine: it upgrades itself
    assert json.loads(_exchange(_env(tmp_path / "home", fresh), "db", "current", "--json").stdout)["at_head"]


def _previous() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_alembic_config("sqlite://")).get_revision(head()).down_revision)


@pytest.mark.parametrize("where", ["environment", "airflow.cfg"])
def test_sqlite_refused_under_celery(tmp_path, where):
    if where == "environment":
        env = _env(tmp_path / "home", None, executor="CeleryExecutor")
    else:
        cfg = tmp_path / "airflow.cfg"
        cfg.write_text("[core]\nexecutor = airflow.providers.celery.executors.celery_executor.CeleryExecutor\n")
        env = _env(tmp_path / "home", None, executor=None, AIRFLOW_CONFIG=str(cfg))
    for args in (("db", "upgrade"), ("datasets",)):
        got = _exchange(env, *args)
        assert got.returncode == 2, got.stdout + got.stderr
        assert "SQLite" in got.stderr and "EXCHANGE_CATALOG_URL" in got.stderr and "PostgreSQL" in got.stderr


def test_sqlite_upgrades_itself_by_default(tmp_path):
    env = _env(tmp_path / "home", None, executor=None)
    assert _exchange(env, "datasets", "--json").returncode == 0
    now = json.loads(_exchange(env, "db", "current", "--json").stdout)
    assert now["current"] == head() and now["at_head"] is True
    again = json.loads(_exchange(env, "db", "upgrade", "--json").stdout)
    assert again["upgraded"] is False and again["to"] == head()
