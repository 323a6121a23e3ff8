"""A split source's DAG under real Airflow 3 (`airflow dags test`): plan, then extract, conform
and validate mapped over four partitions (a task instance per partition), publish merging them;
the version it publishes is the one an unsplit run of the same silo publishes. The DAG and its
tasks carry their Chinese display names; the dag_id is unchanged."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_PASSPHRASE, TODAY, home_env, register_demo_source
from tests.integration.exchange.test_partitioned_runs import SOURCE, register_split

pytestmark = pytest.mark.e2e


def _airflow(args, env):
    exe = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(exe), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_a_split_source_maps_its_partitions_and_publishes_the_unsplit_version(home, silo_2k, tmp_path):
    from exchange import stages

    silo, _ = silo_2k
    with home_env(tmp_path / "whole"):
        register_demo_source(tmp_path / "whole", silo)
        whole = stages.run_all(SOURCE, "r1", TODAY)
    reg = register_split(home, silo)
    env = {**os.environ, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE}
    _airflow(["db", "migrate"], env)
    _airflow(["dags", "test", reg.dag_id], env)

    db = sqlite3.connect(tmp_path / "airflow" / "airflow.db")
    [(state,)] = db.execute("select state from dag_run where dag_id = ?", (reg.dag_id,)).fetchall()
    assert state == "success"
    tis = db.execute("select task_id, map_index, state, rendered_map_index, task_display_name from "
                     "task_instance where dag_id = ? order by task_id, map_index", (reg.dag_id,)).fetchall()
    by_task: dict[str, list] = {}
    for task, index, st, named, shown in tis:
        by_task.setdefault(task, []).append((index, st, named, shown))
    for task, shown in (("extract", "抽取 extract"), ("conform", "规整 conform"), ("validate", "校验 validate")):
        assert [t[:3] for t in by_task[task]] == [(i, "success", f"分区 partition {i + 1}/4") for i in range(4)]
        # Airflow 3.3.2 stores the display name on the first mapped instance only (the ones it
        # expands later are made without it; its UI then shows the task id for them)
        assert by_task[task][0][3] == shown
    assert by_task["plan"] == [(-1, "success", None, "计划 plan")]
    assert by_task["publish"] == [(-1, "success", None, "发布 publish")]
    assert by_task["announce"] == [(-1, "success", None, "公告 announce")]
    assert by_task["notify"] == [(-1, "success", None, "通知 notify")]
    [(shown,)] = db.execute("select dag_display_name from dag where dag_id = ?", (reg.dag_id,)).fetchall()
    assert shown == f"市场监督管理局 · 营业执照 ({reg.dag_id})"

    [(extra,)] = db.execute("select e.extra from asset_event e").fetchall()
    published = json.loads(extra)
    assert published["version"] == 1 and published["state"] == "published"
    assert (published["root_hash"], published["tree_size"]) == (whole["root_hash"], whole["tree_size"])
