"""Freshness, source status, quality trend and scorecards, from real runs of the pipeline on a
SQLite silo and real consumer requests (lookups, materials checks) written to the audit log."""
from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from base import clock
from base.errors import SourceError, UnknownName
from catalog.ledger import monitoring
from catalog.serving.access import Access, Caller
from catalog.serving.consumer import Consumer
from exchange import stages
from exchange.listing import source_listing
from tests.conftest import catalog, ledger, register_demo_source, register_source

SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"
H = timedelta(hours=1)


@pytest.fixture
def published(home, silo_2k, tmp_path):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    result = stages.run_all(SOURCE, "r1")
    assert result["version"] == 1
    return catalog(), silo


def _by(rows, key, value):
    return next(r for r in rows if r[key] == value)


def test_freshness_follows_the_update_cycle(published):
    cat, _ = published
    now = clock.now()
    assert _by(monitoring.freshness(cat, now), "dataset", DATASET)["state"] == "fresh"
    late = _by(monitoring.freshness(cat, now + 30 * H), "dataset", DATASET)
    assert late["state"] == "late" and late["overdue_hours"] >= 5
    assert _by(monitoring.freshness(cat, now + 60 * H), "dataset", DATASET)["state"] == "stale"
    f = _by(monitoring.freshness(cat, now), "dataset", DATASET)
    assert f["sources"] == [SOURCE] and f["last_run_state"] == "published"
    assert f["backlog"] == len(ledger().quarantine(DATASET)) > 0


def test_a_source_never_run_is_never_fresh_and_a_failed_run_shows(published, home, tmp_path):
    cat, silo = published
    other = register_source(home, "tr_copy", {"kind": "sql", "url": f"sqlite:///{silo}",
                                              "table": "yyzz_djxx"}, department="transport")
    cat.register(source_listing(other))
    rows = monitoring.freshness(cat)
    assert _by(rows, "dataset", other.dataset)["state"] == "never"
    card = _by(monitoring.scorecards(cat, "day"), "department", "transport")
    assert card["not_yet_due"] == 1 and card["on_time_share"] is None   # registered just now
    later = clock.now() + 30 * H                           # its first day is over
    card = _by(monitoring.scorecards(cat, "day", later), "department", "transport")
    assert card["not_yet_due"] == 0 and card["on_time_share"] == 0
    silo.unlink()                                     # the silo is gone: the next run fails
    with pytest.raises(SourceError, match="does not exist"):
        stages.run_all(SOURCE, "r2")
    st = _by(monitoring.source_status(cat), "source", SOURCE)
    assert st["result"] == "failed" and st["last_run"] == "r2" and st["message"]
    assert st["freshness"] == "fresh"                 # the published version is still current
    assert _by(monitoring.freshness(cat), "dataset", DATASET)["last_run_state"] == "failed"


def test_quality_trend_is_the_share_that_passed(published):
    cat, _ = published
    trend = monitoring.quality_trend(cat, DATASET)
    run = ledger().runs(SOURCE)[0]
    assert [t["run_id"] for t in trend] == [run["id"]]
    assert trend[0]["pass_share"] == round(run["accepted"] / run["extracted"], 4) < 1


def test_scorecard_counts_consumption_materials_quality_and_backlog(published):
    cat, _ = published
    access = Access(cat.engine, ttl=0)
    access.add_department("transport", "交通运输局")
    access.add_department("market_regulation", "市场监督管理局")
    consumer = Consumer(cat, access)
    holder = cat.sample_holder(DATASET)
    got = consumer.lookup(Caller("transport", "consumer", "k1"), "XK-JT-0001", holder)["records"]
    consumer.lookup(Caller("market_regulation", "consumer", "k2"), "XK-JT-0001", holder)  # its own
    check = consumer.materials(Caller("transport", "consumer", "k1"), "DJ-SCJG-0003",
                               "DJ-SCJG-0003", holder, {})
    consumer.materials(Caller("market_regulation", "consumer", "k2"), "DJ-SCJG-0003",
                       "DJ-SCJG-0003", holder, {})
    held = sum(m["answer"] == "held" for m in check["materials"])
    assert got and held == 1

    card = _by(monitoring.scorecards(cat, "day"), "department", "market_regulation")
    run = ledger().runs(SOURCE)[0]
    assert card["datasets"] == 1 and card["on_time"] == 1 and card["on_time_share"] == 1
    assert card["records_consumed"] == len(got) + held    # its own requests do not count
    assert card["materials_saved"] == 2 * held
    assert card["quality_pass_share"] == round(run["accepted"] / run["extracted"], 4)
    assert card["backlog"] == len(ledger().quarantine(DATASET)) and card["backlog_oldest_days"] == 0
    assert card["department_name"] == "市场监督管理局"
    later = clock.now() + 60 * H       # no refresh since: not on time that day
    assert _by(monitoring.scorecards(cat, "day", later), "department", "market_regulation")["on_time"] == 0
    with pytest.raises(UnknownName, match="week"):
        monitoring.scorecards(cat, "fortnight")


def test_fresh_throughout_finds_gaps():
    day = timedelta(days=1)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    steady = [t0 + i * day for i in range(10)]
    assert monitoring._fresh_throughout(steady, "daily", t0 + 2 * day, t0 + 9 * day)
    gap = [t for t in steady if t != t0 + 5 * day and t != t0 + 6 * day]
    assert not monitoring._fresh_throughout(gap, "daily", t0 + 2 * day, t0 + 9 * day)
    assert not monitoring._fresh_throughout(steady, "daily", t0 + 2 * day, t0 + 12 * day)
    assert monitoring._fresh_throughout([t0 + 3 * H], "daily", t0, t0 + 20 * H, new=True)
    assert not monitoring._fresh_throughout([t0 + 30 * H], "daily", t0, t0 + 40 * H, new=True)


def test_status_and_scorecard_commands(published, capsys, monkeypatch):
    from cli import main as cli

    monkeypatch.setenv("COLUMNS", "220")

    assert cli(["status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    st = _by(rows, "source", SOURCE)
    assert st["freshness"] == "fresh" and st["result"] == "published" and st["backlog"] > 0
    assert cli(["status"]) == 0
    out = capsys.readouterr().out
    assert SOURCE in out and "fresh" in out and "published" in out
    assert cli(["status", "--source", "nope"]) == 7
    assert cli(["scorecard", "--period", "week", "--json"]) == 0
    card = _by(json.loads(capsys.readouterr().out), "department", "market_regulation")
    assert card["period"] == "week" and card["datasets"] == 1
    assert cli(["scorecard"]) == 0
    out = capsys.readouterr().out
    assert "Monthly bulletin" in out and "市场监督管理局" in out and "1/1 100.0%" in out
    assert cli(["status", "--at", "yesterday"]) == 2


def test_run_command_shows_progress_on_a_terminal(published, tmp_path):
    """`exchange run` under a real pseudo-terminal draws its stage bar; piped, it prints none."""
    import os
    import pty
    import subprocess
    import sys

    env = {**os.environ}
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cli", "run", SOURCE, "--local", "--key", "tty1"],
                            stdin=sub, stdout=sub, stderr=sub, env=env)
    os.close(sub)
    seen = b""
    while True:               # read as it draws, or the terminal's buffer fills and blocks it
        try:
            chunk = os.read(main, 65536)
        except OSError:       # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    proc.wait(timeout=60)
    text = seen.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "smr_business_licence: publish" in text and "4/4" in text
    piped = subprocess.run([sys.executable, "-m", "cli", "run", SOURCE, "--local", "--key", "tty1"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert piped.returncode == 0 and "4/4" not in piped.stderr
    assert "unchanged" in piped.stdout or "published" in piped.stdout
