"""The scorecard counts failed runs, from real runs on a SQLite silo: a department whose latest
runs failed is not 100 % on time, however fresh its published version still is."""
from __future__ import annotations

import json
import shutil

import pytest

from base.errors import SourceError
from catalog.ledger import monitoring
from cli import main as cli
from exchange import stages
from tests.conftest import catalog, register_demo_source

SOURCE, DATASET, DEPT = "smr_business_licence", "business_licence.market_regulation", "market_regulation"


def _card(period="day", at=None):
    return next(c for c in monitoring.scorecards(catalog(), period, at) if c["department"] == DEPT)


def test_failed_runs_are_counted_and_a_failing_department_is_not_on_time(home, silo_2k, tmp_path,
                                                                           capsys, monkeypatch):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1")
    card = _card()
    assert (card["runs"], card["runs_failed"], card["datasets_failing"]) == (1, 0, 0)
    assert card["on_time_share"] == 1

    kept = silo.with_name("kept.db")
    shutil.move(silo, kept)                         # the silo is gone: its runs fail
    for key in ("r2", "r3"):
        with pytest.raises(SourceError):
            stages.run_all(SOURCE, key)
    assert monitoring.freshness(catalog())[0]["state"] == "fresh"   # the version is still current
    card = _card()
    assert (card["runs"], card["runs_failed"], card["datasets_failing"]) == (3, 2, 1)
    assert card["on_time"] == 0 and card["on_time_share"] == 0      # not 100 %: its runs fail
    month = _card("month")
    assert month["runs_failed"] == 2 and month["on_time_share"] == 0

    monkeypatch.setenv("COLUMNS", "220")
    assert cli(["scorecard"]) == 0
    out = capsys.readouterr().out
    assert "100.0%" not in out and "0/1 0.0%" in out and "2/3" in out
    assert "最近一次运行失败 (latest run failed)：市场监督管理局" in out
    assert cli(["scorecard", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["runs_failed"] == 2

    shutil.move(kept, silo)                         # mended: the next run succeeds
    stages.run_all(SOURCE, "r4")
    card = _card()
    assert (card["runs"], card["runs_failed"], card["datasets_failing"]) == (4, 2, 0)
    assert card["on_time_share"] == 1               # the latest run refreshed it
