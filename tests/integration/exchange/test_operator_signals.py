"""What an operator's monitor and alert channel see, from real runs on a SQLite silo: the exit
codes of `exchange status --check` (fresh 0, held or late 1, failed or stale 2), an alert for a
run held by the size gate whose approve command works as written and is sent once, and a
"recovered" alert once when a run succeeds after a failed one; alerts reach a real webhook."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest

from base import clock
from base.errors import GateHeld, SourceError
from base.settings import get_settings, reset_settings
from cli import main as cli
from exchange import stages
from tests.conftest import ledger, register_demo_source

SOURCE, DATASET, TABLE = "smr_business_licence", "business_licence.market_regulation", "yyzz_djxx"
H = timedelta(hours=1)


@pytest.fixture
def silo(home, silo_2k, tmp_path, hook, monkeypatch):
    monkeypatch.setenv("EXCHANGE_ALERTS", f"webhook:{hook.url}")
    reset_settings()
    path = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], path)
    register_demo_source(home, path)
    return path


def _check(capsys, *extra) -> tuple[int, str, dict]:
    code = cli(["status", "--check", *extra])
    line = capsys.readouterr().out.strip()
    assert cli(["status", "--check", "--json", *extra]) == code
    return code, line, json.loads(capsys.readouterr().out)


def _kinds(hook, kind):
    return [a for a in hook.received if a["kind"] == kind]


def test_check_exit_codes_and_alerts_follow_real_runs(silo, hook, capsys):
    stages.run_all(SOURCE, "r1")
    code, line, verdict = _check(capsys)
    assert code == 0 and line.startswith("EXCHANGE OK 正常 (ok)") and "\n" not in line
    assert verdict["status"] == "ok" and verdict["counts"] == {"ok": 1, "warning": 0, "critical": 0}
    assert verdict["worst"] == [] and clock.now().isoformat()[:10] in verdict["at"]
    assert verdict["at"].endswith("+00:00")                       # ISO 8601 with its offset

    later = clock.now() + 30 * H                                  # one cycle overdue: late
    code, line, verdict = _check(capsys, "--at", later.isoformat())
    assert code == 1 and verdict["worst"] == [{"source": SOURCE, "level": "warning", "reasons": ["late"]}]
    assert f"{SOURCE}: 数据更新逾期 (late)" in line
    code, _, verdict = _check(capsys, "--at", (clock.now() + 60 * H).isoformat())
    assert code == 2 and verdict["worst"][0]["reasons"] == ["stale"]

    # a shrunken export: held by the size gate, a warning, and one alert with the command
    con = sqlite3.connect(silo)
    con.execute(f"DELETE FROM {TABLE} WHERE rowid % 2 = 0")
    con.commit()
    con.close()
    with pytest.raises(GateHeld):
        stages.run_all(SOURCE, "r2")
    code, line, verdict = _check(capsys)
    assert code == 1 and "EXCHANGE WARNING 警告 (warning)" in line
    assert f"{SOURCE}: 运行被闸门暂停，待批准 (held)" in line
    assert verdict["counts"] == {"ok": 0, "warning": 1, "critical": 0}
    [held] = _kinds(hook, "held")
    assert (held["source"], held["dataset"], held["state"]) == (SOURCE, DATASET, "held")
    assert held["title"] == "运行待批准 (run held by a gate)" and "规模闸门" in held["message"]
    command = re.search(r"exchange approve \S+ \S+ --by NAME --note TEXT", held["message"]).group(0)
    assert command == f"exchange approve {SOURCE} r2 --by NAME --note TEXT"
    with pytest.raises(GateHeld):                 # the same held run again: no second alert
        stages.publish(SOURCE, "r2")
    assert len(_kinds(hook, "held")) == 1
    assert [a["kind"] for a in ledger().alerts()].count("held") == 1

    # the command from the alert, run as written, lets the run publish
    argv = shlex.split(command)
    done = subprocess.run([sys.executable, "-m", "cli", *argv[1:], "--json"], capture_output=True,
                          text=True, env={**os.environ}, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["state"] == "published" and out["version"] == 2
    assert ledger().run_quality(ledger().get_run(SOURCE, "r2").id)["approved_by"] == "NAME"
    assert _check(capsys)[0] == 0
    assert _kinds(hook, "recovered") == []          # held is not failed: nothing recovered

    # the silo goes away: the run fails, critical
    kept = silo.with_name("kept.db")
    shutil.move(silo, kept)
    with pytest.raises(SourceError):
        stages.run_all(SOURCE, "r3")
    code, line, verdict = _check(capsys)
    assert code == 2 and line.startswith("EXCHANGE CRITICAL 严重 (critical)")
    assert verdict["worst"] == [{"source": SOURCE, "level": "critical", "reasons": ["failed"]}]
    assert f"{SOURCE}: 最近一次运行失败 (failed)" in line
    assert cli(["status"]) == 0                     # without --check: the table, exit 0
    capsys.readouterr()

    with pytest.raises(SourceError):                # fail twice: still one recovery after
        stages.run_all(SOURCE, "r4")

    # back: the next run succeeds and says "recovered", once
    shutil.move(kept, silo)
    result = stages.run_all(SOURCE, "r5")
    assert result["state"] in ("published", "unchanged")
    [rec] = _kinds(hook, "recovered")
    assert rec["source"] == SOURCE and "运行恢复 (recovered)" in rec["message"]
    assert "r5" in rec["message"] and "r4" in rec["message"]
    stages.publish(SOURCE, "r5")                    # the same run re-entered: nothing new
    stages.run_all(SOURCE, "r6")                    # a success after a success: nothing new
    assert len(_kinds(hook, "recovered")) == 1
    assert _check(capsys)[0] == 0


def test_check_with_no_sources_is_ok_and_a_broken_check_is_unknown(home, capsys, monkeypatch):
    assert cli(["status", "--check"]) == 0
    assert "EXCHANGE OK" in capsys.readouterr().out
    assert cli(["status", "--check", "--at", "yesterday"]) == 3
    assert "EXCHANGE UNKNOWN 未知 (unknown)" in capsys.readouterr().out
    assert cli(["status", "--check", "--json", "--source", "nope"]) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "unknown"
    assert get_settings().home == home


def test_a_held_airflow_run_alerts_held_with_links_and_not_failed(silo, hook):
    """Under Airflow the held publish task fails: its failure callback says nothing more, the
    stage's "held" alert (with the Airflow link) is the one alert."""
    from types import SimpleNamespace

    from exchange.alerts.notifier import ExchangeNotifier

    stages.run_all(SOURCE, "r1")
    con = sqlite3.connect(silo)
    con.execute(f"DELETE FROM {TABLE} WHERE rowid % 2 = 0")
    con.commit()
    con.close()
    dag_run = "scheduled__2026-12-05T01:00:00+00:00"
    key = stages.run_key(dag_run)
    stages.extract(SOURCE, key, dag_run)
    stages.conform(SOURCE, key)
    stages.validate(SOURCE, key)
    for _ in range(2):                               # the task retried: still one alert
        with pytest.raises(GateHeld):
            stages.publish(SOURCE, key)
    ExchangeNotifier(source=SOURCE, dataset=DATASET).notify(
        {"dag": SimpleNamespace(dag_id=f"source__{SOURCE}"), "ti": SimpleNamespace(task_id="publish"),
         "run_id": dag_run, "reason": "GateHeld"})
    assert [a["kind"] for a in hook.received] == ["held"]
    [held] = hook.received
    assert held["run_id"] == dag_run and held["dag_id"] == f"source__{SOURCE}"
    assert held["links"]["airflow"].endswith(
        f"/dags/source__{SOURCE}/runs/scheduled__2026-12-05T01%3A00%3A00%2B00%3A00")
    assert f"exchange approve {SOURCE} {key} --by NAME --note TEXT" in held["message"]
