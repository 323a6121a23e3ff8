"""A delta publish reads the current records of only part of its scope (catalog/publish/
log_delta.py `_narrowed`): a licence number some conformed row has and no accepted row has
holds its records, which are counted, not read. The same silo history published with the
whole scope read gives the same log, record states, counts, queue and changes (held, still
withdrawn, unchanged): a record held by an unchanged quarantined row, a withdrawn record held
again by a quarantined row with its number, withdrawals, a duplicate, a fixed row."""
from __future__ import annotations

import sqlite3
from functools import partial

import pytest

from catalog.publish import log_delta
from exchange import stages
from tests.conftest import TODAY
from tests.integration.exchange import test_change_detection as cd

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"
_STAGE = log_delta.stage_delta_version      # narrow=False: the whole scope read


def _edit(silo, step: int, p: dict) -> None:
    if step in (2, 3):
        cd._edit(silo, step, p)
    with sqlite3.connect(silo) as db:
        run = db.execute
        if step == 4:      # the deleted row back with its number, quarantined: its withdrawn record held
            cols = [r[1] for r in run("pragma table_info(yyzz_djxx)") if r[1] != "ID"]
            run(f"insert into yyzz_djxx ({','.join(cols)}) select {','.join(cols)} from yyzz_djxx where ZCH = ?",
                (p["later"],))
            run("update yyzz_djxx set ZCH = ?, QYMC = NULL where ID = last_insert_rowid()", (p["deleted"],))
        if step == 6:      # the row quarantined since run 2 fixed: nothing held but the withdrawn record
            run("update yyzz_djxx set QYMC = '改正后的企业名称有限公司' where ZCH = ?", (p["turned_bad"],))


def _history(monkeypatch, tmp_path, silo_2k, narrow: bool, picks: dict | None):
    home = tmp_path / ("narrow" if narrow else "whole")
    cd._use_home(monkeypatch, home / "home", True)
    monkeypatch.setattr(log_delta, "stage_delta_version", partial(_STAGE, narrow=narrow))
    counted = []
    real = log_delta.held_outside

    def spy(*args):
        counted.append(real(*args))
        return counted[-1]
    monkeypatch.setattr(log_delta, "held_outside", spy)
    silo, first, picks = cd._first_run(home, silo_2k, picks)
    results = [first]
    for step in range(2, 8):
        _edit(silo, step, picks)
        results.append(stages.run_all(SOURCE, f"r{step}", TODAY))
    modes = [cd._mode(f"r{n}")["mode"] for n in range(1, 8)]
    return cd._snapshot(results), [r.get("changes") for r in results], modes, counted, picks


def test_narrowed_scope_publishes_as_the_whole_scope(home, monkeypatch, tmp_path, silo_2k):
    narrow, narrow_changes, modes, counted, picks = _history(monkeypatch, tmp_path, silo_2k, True, None)
    whole, whole_changes, _, none, _ = _history(monkeypatch, tmp_path, silo_2k, False, picks)
    assert modes == ["full"] + ["delta"] * 6 and not none
    assert narrow == whole
    assert narrow_changes == whole_changes
    # the history holds records outside the narrowed scope: held valid ones, a held withdrawn one
    held = [c["held"] for c in narrow_changes[1:]]
    assert all(h >= 1 for h in held[:5]) and held[5] >= 1
    assert any(n > w for n, w in counted) and any(n == w > 0 for n, w in counted)
    assert narrow_changes[1]["withdrawn"] >= 2 and narrow_changes[3]["still_withdrawn"] >= 1
