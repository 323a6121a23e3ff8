"""The demo under real Airflow: six departments, five kinds of silo (SQLite, PostgreSQL,
MariaDB, an HTTP API, a GBK CSV drop in traditional characters, an XLSX export), each
feeding its own certificate type, every run reconciled and published."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TEST_PASSPHRASE, free_port, reachable

pytestmark = pytest.mark.e2e


def test_the_demo_runs_every_department_under_airflow(home, tmp_path):
    from demo.departments import MARIADB, PG
    missing = [u for u in (PG, MARIADB) if not reachable(u)]
    if missing:
        pytest.skip(f"database servers not reachable on this machine: {missing}")
    env = {**os.environ, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE, "EXCHANGE_DEMO_DB_PREFIX": "t_demo",
           "EXCHANGE_DEMO_API_PORT": str(free_port())}
    out = subprocess.run([sys.executable, "-m", "cli", "demo", "--rows", "2000", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["notes"] == []
    sources = summary["sources"]
    assert {s["silo"] for s in sources} == {"sqlite", "postgresql", "mariadb", "http", "gbk_csv", "xlsx"}
    assert len({s["department"] for s in sources}) == 6
    assert len({s["certificate_type"] for s in sources}) == 6
    for s in sources:
        assert s["state"] == "published" and s["version"] == 1, s
        assert s["extracted"] == s["accepted"] + s["quarantined"] and s["accepted"] > 0, s
    assert summary["sample_bundle_verified"] is True
