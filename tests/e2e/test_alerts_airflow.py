"""Alerts under real Airflow 3 (`airflow dags test`): the exchange_watch DAG reports a late
dataset, and a source DAG whose silo is broken fails and its failure callback posts the source,
dataset, failed task and the catalogue's error to a real webhook on 127.0.0.1."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.alertsinks import WebhookReceiver
from tests.conftest import ROOT, TEST_PASSPHRASE, catalog, ledger, register_demo_source
from tests.integration.exchange.test_alerts import DATASET, SOURCE, _backdate

pytestmark = pytest.mark.e2e


def _airflow(args, env) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("airflow")
    return subprocess.run([str(exe), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_watch_dag_and_failure_callback_alert_through_airflow(home, silo_2k, tmp_path):
    from exchange import stages

    hook = WebhookReceiver()
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1")
    _backdate(30)
    env = {**os.environ, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE, "EXCHANGE_ALERTS": f"log,webhook:{hook.url}"}
    try:
        assert _airflow(["db", "migrate"], env).returncode == 0
        watch = _airflow(["dags", "test", "exchange_watch"], env)
        assert watch.returncode == 0, watch.stdout[-3000:] + watch.stderr[-3000:]
        [late] = hook.received
        assert (late["kind"], late["dataset"], late["freshness"]) == ("late", DATASET, "late")
        from catalog.serving.audit import verify_chain
        from catalog.serving.audit_checkpoints import published  # and it signed an audit checkpoint
        [checkpoint] = published(catalog().engine)["checkpoints"]
        assert checkpoint["size"] == verify_chain(catalog().engine).size and checkpoint["signed"].count(".") == 2

        silo.rename(silo.with_suffix(".moved"))           # break the silo on purpose
        run = _airflow(["dags", "test", f"source__{SOURCE}"], env)
        failed = [h for h in hook.received if h["kind"] == "failed"]
        assert len(failed) == 1, run.stdout[-3000:] + run.stderr[-3000:]
        alert = failed[0]
        assert (alert["source"], alert["dataset"], alert["task"], alert["state"]) == (
            SOURCE, DATASET, "extract", "failed")
        recorded = ledger().runs(SOURCE)[0]
        assert recorded["state"] == "failed" and alert["message"] == recorded["message"]
        assert alert["message"].startswith("extract: ") and alert["run_id"] == recorded["dag_run_id"]
        assert alert["links"]["airflow"].endswith(alert["run_id"].replace(":", "%3A").replace("+", "%2B"))
        db = sqlite3.connect(tmp_path / "airflow" / "airflow.db")
        states = dict(db.execute("select dag_id, state from dag_run").fetchall())
        assert states == {"exchange_watch": "success", f"source__{SOURCE}": "failed"}
        assert [a["kind"] for a in ledger().alerts()] == ["failed", "late"]
    finally:
        hook.close()
