"""Airflow is the one run history: `exchange run SOURCE` and `exchange approve` drive real DAG
runs of a real Airflow 3 (API server, scheduler, DAG processor and triggerer started by
cli.run_service on free ports of 127.0.0.1; SimpleAuthManager with a steward user) through its
REST API. A run shows in GET /api/v2/dags/{dag_id}/dagRuns and in the exchange's ledger under
the same key; a run the size gate held is approved, and the SAME DAG run ends in success with
its publish task run a second time."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from cli.run_service import Service
from exchange.airflow_api import AirflowClient
from tests.conftest import ROOT, free_port, home_env, ledger, register_demo_source, stored

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
SOURCE = "smr_business_licence"
DAG = f"source__{SOURCE}"
TABLE = "yyzz_djxx"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, silo_2k):
    """One Airflow for the module, the demo source registered without a schedule (runs only
    when asked), its DAG parsed."""
    home = tmp_path_factory.mktemp("airflow-runs") / "home"
    silo = home.parent / "silo.db"
    shutil.copy(silo_2k[0], silo)
    password = secrets.token_urlsafe(16)
    with home_env(home), pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home / "airflow"))
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "steward:admin")
        mp.setenv("EXCHANGE_RUN_DEADLINE", "0")
        reg = register_demo_source(home, silo)
        reg.path.write_text(reg.path.read_text("utf-8").replace('schedule = "@daily"\n', ""), "utf-8")
        stored(reg.path)                     # the catalogue's copy is what the DAG is parsed from
        (home / "airflow").mkdir(parents=True)
        (home / "airflow" / "simple_auth_manager_passwords.json.generated").write_text(
            json.dumps({"steward": password}))
        svc = Service("127.0.0.1", free_port(), free_port())
        try:
            svc.start()
            end = time.monotonic() + 400
            while not svc.step():
                assert svc.dead() is None and time.monotonic() < end, f"Airflow did not come up: {svc.logs}"
                time.sleep(1)
            url = f"http://127.0.0.1:{svc.airflow_port}"
            api = AirflowClient(url, username="steward", password=password)
            while not _has_dag(api):
                assert time.monotonic() < end, "the source's DAG was not parsed"
                time.sleep(2)
            env = {**svc.env, "EXCHANGE_AIRFLOW_URL": url, "EXCHANGE_AIRFLOW_USERNAME": "steward",
                   "EXCHANGE_AIRFLOW_PASSWORD": password}
            yield {"home": home, "silo": silo, "api": api, "env": env, "url": url}
        finally:
            svc.stop(grace=15)


def _has_dag(api) -> bool:
    try:
        return api.dag(DAG)["dag_id"] == DAG
    except Exception:
        return False


def _exchange(stack, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=stack["env"],
                          capture_output=True, text=True, timeout=600)


def _runs(stack) -> dict[str, dict]:
    return {r["dag_run_id"]: r for r in stack["api"].request("GET", f"/dags/{DAG}/dagRuns")["dag_runs"]}


def test_exchange_run_is_an_airflow_dag_run_with_the_same_key_in_the_ledger(stack):
    api = stack["api"]
    api.request("PATCH", f"/dags/{DAG}", dag_id=DAG, json={"is_paused": True})
    paused = _exchange(stack, "run", SOURCE)
    assert paused.returncode == 2 and f"DAG {DAG} 在 Airflow 中已暂停 (paused)" in paused.stderr
    assert _runs(stack) == {}                                  # nothing triggered

    done = _exchange(stack, "run", SOURCE, "--unpause")
    assert done.returncode == 0, done.stderr[-3000:]
    assert api.dag(DAG)["is_paused"] is False
    [(run_id, dag_run)] = _runs(stack).items()
    assert run_id.startswith("manual__") and dag_run["state"] == "success"
    assert f"{SOURCE} 运行 (run) {run_id}：已发布 (published)，版本 (version) 1" in done.stdout
    assert f"{stack['url']}/dags/{DAG}/runs/{run_id}" in done.stdout + done.stderr
    # piped (no terminal): each change of the tasks' states on stderr, ending with all done
    assert "publish success, announce success, notify success — 运行 (run) success" in done.stderr
    with home_env(stack["home"]):
        [run] = ledger().runs(SOURCE)
    assert run["run_key"] == run_id == run["dag_run_id"] and run["state"] == "published"


def test_a_held_run_approved_publishes_in_the_same_airflow_run(stack):
    con = sqlite3.connect(stack["silo"])
    con.execute(f"DELETE FROM {TABLE} WHERE rowid % 2 = 0")
    con.commit()
    con.close()
    held = _exchange(stack, "run", SOURCE, "--key", "manual__shrunk", "--json")
    assert held.returncode == 4, held.stderr[-3000:]
    assert "size gate" in held.stderr and f"/dags/{DAG}/runs/manual__shrunk" in held.stderr
    assert _runs(stack)["manual__shrunk"]["state"] == "failed"
    with home_env(stack["home"]):
        assert ledger().get_run(SOURCE, "manual__shrunk").state == "held"

    out = _exchange(stack, "approve", SOURCE, "manual__shrunk", "--by", "steward", "--note", "half were merged",
                    "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["airflow_state"] == "success" and result["state"] == "published" and result["version"] == 2
    assert result["dag_run_id"] == "manual__shrunk" and result["approved_by"] == "steward"
    runs = _runs(stack)
    assert len(runs) == 2 and runs["manual__shrunk"]["state"] == "success"     # no new DAG run
    tis = {t["task_id"]: t for t in stack["api"].task_instances(DAG, "manual__shrunk")}
    assert (tis["publish"]["state"], tis["publish"]["try_number"]) == ("success", 2)
    assert tis["extract"]["try_number"] == 1                    # only publish and after were run again
    with home_env(stack["home"]):
        run = ledger().get_run(SOURCE, "manual__shrunk")
        assert run.state == "published" and run.version == 2 and run.dag_run_id == "manual__shrunk"
        assert ledger().run_quality(run.id)["approved_by"] == "steward"


def test_approving_a_run_that_is_not_held_changes_nothing_in_airflow(stack):
    before = _runs(stack)
    out = _exchange(stack, "approve", SOURCE, "manual__shrunk", "--by", "steward", "--note", "again")
    assert out.returncode == 7 and "not held" in out.stderr
    assert _runs(stack) == before
    assert os.environ.get("EXCHANGE_AIRFLOW_URL") != stack["url"]       # the module's Airflow stayed its own
