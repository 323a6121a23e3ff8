"""`./run serve` (cli.run_service) really comes up here: Airflow's API server, scheduler,
DAG processor and triggerer, and `exchange serve`, on free ports of 127.0.0.1. The registered
source's DAG runs on its schedule and publishes; its deadline (EXCHANGE_RUN_DEADLINE=3 s, so the
run overruns it) raises a late_run alert through the triggerer to a real webhook; SIGTERM stops
everything and frees the ports."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.alertsinks import WebhookReceiver
from tests.conftest import ROOT, TEST_PASSPHRASE, free_port, ledger, register_demo_source

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
SOURCE = "smr_business_licence"


def _until(predicate, timeout: float, what: str, proc, out: list[str]):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (got := predicate()):
            return got
        assert proc.poll() is None, f"serve exited while waiting for {what}:\n" + "".join(out[-40:])
        time.sleep(1)
    raise AssertionError(f"no {what} after {timeout:.0f} s:\n" + "".join(out[-40:]))


def _airflow_healthy(port: int) -> bool:
    try:
        health = requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=10).json()
    except (requests.RequestException, ValueError):
        return False
    return all((health.get(k) or {}).get("status") == "healthy" for k in ("metadatabase", "scheduler", "triggerer"))


def test_serve_starts_airflow_and_the_exchange_runs_the_source_and_stops(home, silo_2k, tmp_path):
    port, airflow_port = free_port(), free_port()
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    hook = WebhookReceiver()
    env = {**os.environ, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
           "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE, "EXCHANGE_RUN_DEADLINE": "3",
           "EXCHANGE_ALERTS": f"log,webhook:{hook.url}"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.run_service", "--port", str(port),
                             "--airflow-port", str(airflow_port), "--ready-timeout", "400"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        _until(lambda: any("The exchange is running" in line for line in out), 420, "banner", proc, out)
        banner = "".join(out)
        assert f"http://127.0.0.1:{airflow_port}" in banner and f"http://127.0.0.1:{port}/dashboard/" in banner
        pw = home / "airflow" / "simple_auth_manager_passwords.json.generated"
        assert str(pw) in banner and "admin" in pw.read_text()
        # a loaded 2-core CI machine can keep the API server busy for seconds while the scheduler starts
        _until(lambda: _airflow_healthy(airflow_port), 120, "healthy Airflow", proc, out)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=60).json() == {"ok": True}

        # the source runs on its own schedule (unpaused at creation) and publishes
        runs = _until(lambda: [r for r in ledger().runs(SOURCE) if r["state"] == "published"],
                      400, "published run", proc, out)
        assert runs[0]["version"] == 1 and runs[0]["dag_run_id"].startswith("scheduled__")
        late = _until(lambda: hook.received and [h for h in hook.received if h["kind"] == "late_run"],
                      120, "late_run alert", proc, out)
        assert late[0]["source"] == SOURCE and late[0]["run_id"] == runs[0]["dag_run_id"]
        assert late[0]["links"]["airflow"].startswith(f"http://127.0.0.1:{airflow_port}/dags/source__{SOURCE}/runs/")
        assert not [h for h in hook.received if h["kind"] == "failed"], hook.received
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
        hook.close()
    assert code == 0 and time.monotonic() - started < 60
    for p in (port, airflow_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0, f"port {p} still answers after stop"
