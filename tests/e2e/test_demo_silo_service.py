"""After the demo, `./run serve` runs the demo's HTTP silo while its source is registered, on the
port and with the token of the source's Airflow connection, read from Airflow's metadata
database (no AIRFLOW_CONN_* anywhere): the connection the demo stored outlives it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import requests

from cli import main as cli
from tests.conftest import ROOT, free_port, stored

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
TODAY = date(2026, 11, 21)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def airflow_home(home, tmp_path, monkeypatch) -> Path:
    """A migrated Airflow metadata database of its own; no connection in the environment."""
    for k in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        monkeypatch.delenv(k)
    path = tmp_path / "airflow"
    monkeypatch.setenv("AIRFLOW_HOME", str(path))
    from base.airflow_env import airflow_env
    airflow = str(Path(sys.executable).with_name("airflow"))
    out = subprocess.run([airflow, "db", "migrate"], env=airflow_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return path


def test_serve_runs_the_demo_http_silo_from_its_stored_connection(home, airflow_home):
    from base.settings import get_settings
    from cli.run_service import DEMO_SILO, Service
    from demo import departments
    from exchange import airflow_connections

    port = free_port()
    silos = departments.make(home, rows=60, api_port=port, today=TODAY, kinds=("http",))
    assert list(silos.connections) == ["silo_hrss_api"]
    (source_id, text), = silos.registrations.items()
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{source_id}.toml").write_text(text, encoding="utf-8")
    stored(sources / f"{source_id}.toml")              # registered: in the catalogue
    airflow_connections.put(silos.connections)        # what the demo does

    # the connection is read from the metadata database by a process outside any task
    code = ("import json\nfrom connectors.credentials import airflow_connection\n"
            "c = airflow_connection('silo_hrss_api', 't')\nprint(json.dumps([c.host, bool(c.password)]))\n")
    from base.airflow_env import airflow_env
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=airflow_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [f"http://127.0.0.1:{port}", True]

    svc = Service("127.0.0.1", free_port(), free_port())
    svc.logs.mkdir(parents=True, exist_ok=True)
    try:
        assert svc.start_demo_silo() == source_id
        end = time.monotonic() + 90
        while not _listening(port):
            assert svc.procs[DEMO_SILO].poll() is None, (svc.logs / f"{DEMO_SILO}.log").read_text()
            assert time.monotonic() < end, "the demo silo API did not start"
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/licences"
        token = departments.api_token(home)
        assert requests.get(url, params={"limit": 5}, timeout=10).status_code == 401
        got = requests.get(url, params={"limit": 5}, timeout=10, headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 200 and got.json()["total"] == 60
        assert svc.dead() is None
    finally:
        svc.stop(grace=10)
    assert not _listening(port), "the demo silo API still answers after stop"

    # not registered (any more): nothing to serve
    assert cli(["sources", "remove", source_id]) == 0
    assert Service("127.0.0.1", free_port(), free_port()).start_demo_silo() is None
