"""A delta run's settled rows (quality/validate.py `_settled`): quarantined unchanged, their
failures known and none dated, not reported again, no version-wide failure now. They are taken
in bulk, not row by row; the same silo history run with the row-by-row path publishes the same
log, counts, reasons, queue, quarantine files and row states. A row whose licence number a
changed row has or had, a duplicate and a row failing a dated rule are still checked one by one."""
from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from base import staging
from base.settings import get_settings
from exchange import row_state, stages
from quality import validate
from tests.conftest import TODAY, ledger, register_demo_source
from tests.integration.exchange.test_change_detection import _mode, _picks, _snapshot, _use_home

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"
NULL_NAME = "expect_column_values_to_not_be_null(holder_name)"
UNIQUE = "expect_column_values_to_be_unique(licence_number)"
FUTURE = "expect_column_values_to_not_be_in_the_future(issue_date)"


def _held_alone(silo) -> list[str]:
    """Licence numbers quarantined only for a missing holder name, one silo row each."""
    with sqlite3.connect(silo) as db:
        return [e["key"] for e in ledger().quarantine("business_licence.market_regulation")
                if e["reasons"] == [NULL_NAME] and
                db.execute("select count(*) from yyzz_djxx where ZCH = ?", (e["key"],)).fetchone()[0] == 1]


def _edit(silo, step: int, p: dict) -> None:
    with sqlite3.connect(silo) as db:
        run = db.execute
        if step == 2:      # a row issued in the future; an accepted row takes a held row's number
            p["taker_id"] = run("select ID from yyzz_djxx where ZCH = ?", (p["taker"],)).fetchone()[0]
            run("update yyzz_djxx set FZRQ = ? where ZCH = ?", ((TODAY + timedelta(days=10)).isoformat(), p["dated"]))
            run("update yyzz_djxx set ZCH = ? where ZCH = ?", (p["held_shared"], p["taker"]))
        if step == 3:      # the taker moves on (its old number touched); another takes a held number
            run("update yyzz_djxx set ZCH = ? where ID = ?", (p["taker"] + "X", p["taker_id"]))
            run("update yyzz_djxx set ZCH = ? where ZCH = ?", (p["held_dup"], p["dup"]))
            run("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (p["amended"],))


def _files(key: str) -> dict:
    """The run's reported quarantine rows (raw rows apart) and the row state it left."""
    store = get_settings().store
    with store.open_input(stages.handoff(SOURCE, key, "quarantine")) as f:
        q = pq.read_table(f, columns=["_row", "key", "row_hash", "reasons", "values"]).to_pylist()
    state = staging.read_table(store.local_file(row_state.state_key(SOURCE), get_settings().home / "scratch"))
    return {"quarantine": q, "state": state.to_pylist()}


def _history(monkeypatch, tmp_path, silo_2k, bulk: bool, picks: dict | None):
    home = tmp_path / ("bulk" if bulk else "rows")
    _use_home(monkeypatch, home / "home", True)
    settled: dict[str, list[str]] = {}
    key = "r1"
    if bulk:
        taken = validate._settled_rows

        def spy(batch, known, same, counts):
            settled.setdefault(key, []).extend(batch.column("licence_number").filter(same).to_pylist())
            return taken(batch, known, same, counts)
        monkeypatch.setattr(validate, "_settled_rows", spy)
    else:
        monkeypatch.setattr(validate, "_settled", lambda *a: None)
    silo = home / "silo.db"
    home.mkdir()
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home / "home", silo)
    results = [stages.run_all(SOURCE, key, TODAY)]
    files = [_files(key)]
    if picks is None:
        held, chosen = _held_alone(silo), _picks(silo)
        picks = {"held_shared": held[0], "held_dup": held[1], "taker": chosen["amended"], "dup": chosen["new_from"],
                 "dated": chosen["deleted"], "amended": chosen["later"]}
    for step, day in ((2, TODAY), (3, TODAY), (4, TODAY + timedelta(days=30))):
        _edit(silo, step, picks)
        key = f"r{step}"
        results.append(stages.run_all(SOURCE, key, day))
        files.append(_files(key))
    modes = [_mode(f"r{n}")["mode"] for n in (1, 2, 3, 4)]
    return _snapshot(results), files, modes, settled, picks


def test_settled_rows_are_counted_and_reported_as_row_by_row(home, monkeypatch, tmp_path, silo_2k):
    bulk, bulk_files, modes, settled, picks = _history(monkeypatch, tmp_path, silo_2k, True, None)
    rows, rows_files, _, none, _ = _history(monkeypatch, tmp_path, silo_2k, False, picks)
    assert modes == ["full", "delta", "delta", "delta"] and not none
    assert bulk == rows and bulk_files == rows_files
    runs = bulk["runs"]
    assert [r["reasons"][UNIQUE] - runs[0]["reasons"][UNIQUE] for r in runs] == [0, 2, 2, 2]
    # most rows quarantined in run 1 are settled in each delta run, counted whole all the same
    assert all(len(settled[k]) > runs[0]["quarantined"] // 2 for k in ("r2", "r3", "r4"))
    assert all(r["extracted"] == r["accepted"] + r["quarantined"] for r in runs)
    # not settled: the held row whose number a changed row took (run 2) or left (run 3), the
    # held row a changed row duplicates (run 3), the row failing a dated rule (runs 2 and 3)
    for k in ("r2", "r3"):
        assert picks["held_shared"] not in settled[k] and picks["dated"] not in settled[k]
    assert picks["held_dup"] not in settled["r3"] and picks["held_dup"] in settled["r2"]
    assert picks["held_shared"] in settled["r4"]
    reported = [{q["key"]: q["reasons"] for q in f["quarantine"]} for f in bulk_files]
    assert reported[1][picks["held_shared"]] == [NULL_NAME, UNIQUE]
    assert reported[2][picks["held_shared"]] == [NULL_NAME]
    assert reported[2][picks["held_dup"]] == [NULL_NAME, UNIQUE]
    assert reported[1][picks["dated"]] == [FUTURE] and reported[3] == {}
    future = [r["reasons"].get(FUTURE, 0) for r in runs]
    assert future[1] == future[2] == future[0] + 1
    assert {e["key"]: e["state"] for e in bulk["queue"]}[picks["dated"]] == "resolved"     # run 4: accepted
