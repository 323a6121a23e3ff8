"""A run that changes no row's state (its version the current one) leaves the source's row
state and Held as they are (exchange/row_state.py `_as_before`): the same history with them
written again each run publishes the same, and the files hold the same rows."""
from __future__ import annotations

import sqlite3

import pytest

from base import staging
from base.settings import get_settings
from exchange import row_state, stages
from tests.conftest import TODAY
from tests.integration.exchange import test_change_detection as cd

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"


def _files() -> dict:
    store, scratch = get_settings().store, get_settings().home / "scratch"
    out = {}
    for key in (row_state.state_key(SOURCE), row_state.held_key(SOURCE)):
        path = store.local_file(key, scratch)
        table = staging.read_table(path)
        meta = row_state._meta(table.schema)      # the pull its rows are: each run's own (exchange/aligned.py)
        out[key] = (path.stat().st_ino, path.stat().st_mtime_ns, {k: v for k, v in meta.items() if k != "pull"},
                    table.to_pylist())
    return out


def _history(monkeypatch, tmp_path, silo_2k, skip: bool, picks: dict | None):
    home = tmp_path / ("skip" if skip else "write")
    cd._use_home(monkeypatch, home / "home", True)
    if not skip:
        monkeypatch.setattr(row_state, "_as_before", lambda *a: False)
    silo, first, picks = cd._first_run(home, silo_2k, picks)
    results, files = [first], [_files()]
    for step in range(2, 6):
        if step in (3, 5):
            with sqlite3.connect(silo) as db:
                db.execute("update yyzz_djxx set ZS = ZS || ? where ZCH = ?", (f"附{step}号", picks["amended"]))
        results.append(stages.run_all(SOURCE, f"r{step}", TODAY))
        files.append(_files())
    modes = [cd._mode(f"r{n}")["mode"] for n in range(1, 6)]
    return cd._snapshot(results), files, modes, picks


def test_unchanged_runs_leave_the_row_state_as_it_is(home, monkeypatch, tmp_path, silo_2k):
    skip, skip_files, modes, picks = _history(monkeypatch, tmp_path, silo_2k, True, None)
    write, write_files, _, _ = _history(monkeypatch, tmp_path, silo_2k, False, picks)
    assert modes == ["full"] + ["delta"] * 4
    assert skip == write
    assert [r["state"] for r in skip["published"]] == ["published", "unchanged", "published", "unchanged",
                                                       "published"]
    content = [{k: v[2:] for k, v in f.items()} for f in skip_files]
    assert content == [{k: v[2:] for k, v in f.items()} for f in write_files]
    for n in (1, 3):         # r2, r4 changed nothing: neither file written again
        assert skip_files[n] == skip_files[n - 1]
        assert all(write_files[n][k][:2] != write_files[n - 1][k][:2] for k in write_files[n])
    assert all(skip_files[n][k][:2] != skip_files[n - 1][k][:2] for n in (2, 4) for k in skip_files[n])
