"""A delta run's rows equal to the mirror's at their position take the row state's hashes
unhashed (exchange/aligned.py): the same silo history run with it and without (every row
hashed) hands on the same rows, writes the same row states and publishes the same; a mirror
that is not the row state's pull is never used."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from base import staging
from base.settings import get_settings
from connectors.state import mirror_key
from exchange import aligned, row_state, stages
from tests.conftest import TODAY, ledger, register_demo_source
from tests.integration.exchange import test_change_detection as cd

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"
ROWS = stages._rows


def _edit(silo, step: int, p: dict) -> None:
    with sqlite3.connect(silo) as db:
        run = db.execute
        cols = [r[1] for r in run("pragma table_info(yyzz_djxx)") if r[1] != "ID"]
        if step == 2:        # changes, two rows deleted in the middle, one added at the end
            run("update yyzz_djxx set ZS = ZS || '附1号' where ZCH in (?, ?)", (p["amended"], p["later"]))
            run("delete from yyzz_djxx where ID in (700, 701)")
            run(f"insert into yyzz_djxx ({','.join(cols)}) select {','.join(cols)} from yyzz_djxx where ZCH = ?",
                (p["new_from"],))
            run("update yyzz_djxx set ZCH = ZCH || 'X' where ID = last_insert_rowid()")
        if step == 3:        # a row inserted in the middle, a value made null
            run(f"insert into yyzz_djxx (ID, {','.join(cols)}) select 700, {','.join(cols)} from yyzz_djxx "
                "where ZCH = ?", (p["dup_kept"],))
            run("update yyzz_djxx set ZCH = ZCH || 'M' where ID = 700")
            run("update yyzz_djxx set JYFW = NULL where ZCH = ?", (p["turned_bad"],))
        # step 4: nothing (a 0 % run)
        if step == 5:        # more changes: a null made a value again, a row revoked
            run("update yyzz_djxx set JYFW = '批发零售' where ZCH = ?", (p["turned_bad"],))
            run("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (p["revoked"],))


def _state() -> tuple[dict, list]:
    store = get_settings().store
    table = staging.read_table(store.local_file(row_state.state_key(SOURCE), get_settings().home / "scratch"))
    return row_state._meta(table.schema), table.to_pylist()


def _history(monkeypatch, tmp_path, silo_2k, align: bool, picks: dict | None):
    home = tmp_path / ("align" if align else "hash")
    cd._use_home(monkeypatch, home / "home", True)
    monkeypatch.setattr(stages, "ALIGN", align)
    handed: list = []

    def kept_rows(*args):
        table = ROWS(*args)
        handed.append((json.loads(table.schema.metadata[b"detect"]), table.replace_schema_metadata(None)))
        return table
    monkeypatch.setattr(stages, "_rows", kept_rows)
    silo, first, picks = cd._first_run(home, silo_2k, picks)
    results = [first]
    states, pulls = [_state()], [aligned.mirror_pull(get_settings().store, SOURCE)]
    for step in range(2, 7):
        _edit(silo, step, picks)
        results.append(stages.run_all(SOURCE, f"r{step}", TODAY))
        states.append(_state())
        pulls.append(aligned.mirror_pull(get_settings().store, SOURCE))
    return cd._snapshot(results), handed, states, pulls, picks


def test_rows_aligned_with_the_mirror_are_handed_on_as_if_hashed(home, monkeypatch, tmp_path, silo_2k):
    fast, handed, states, pulls, picks = _history(monkeypatch, tmp_path, silo_2k, True, None)
    slow, hashed, slow_states, _, _ = _history(monkeypatch, tmp_path, silo_2k, False, picks)
    assert fast == slow
    assert [p["state"] for p in fast["published"]] == ["published", "published", "published", "unchanged",
                                                       "published", "unchanged"]
    assert [m["mode"] for m, _ in handed] == ["full"] + ["delta"] * 5
    assert all(a.equals(b) for (_, a), (_, b) in zip(handed, hashed, strict=True))    # hashes byte for byte
    assert [s[1] for s in states] == [s[1] for s in slow_states]
    n = handed[0][1].num_rows
    unhashed = [m["unhashed"] for m, _ in handed]
    assert unhashed[0] == 0 and all(u == 0 for u in (m["unhashed"] for m, _ in hashed))
    # runs 2 and 3: the rows before the deleted (inserted) ones but those changed; the 0 % runs
    # 4 and 6: all; run 5: all but the two changed (run 4 kept the mirror it is aligned with)
    assert 690 < unhashed[1] < 700 and 690 < unhashed[2] < 700
    assert unhashed[3] == unhashed[5] == n and unhashed[4] == n - 2
    # each run leaves a row state and a mirror of one pull, the 0 % runs those they found
    assert all(m.get("pull") == p and p for (m, _), p in zip(states, pulls, strict=True))
    assert pulls[3] == pulls[2] and pulls[5] == pulls[4] and len(set(pulls)) == 4
    assert all((handed[k][0]["pull"] == pulls[k]) == (k not in (3, 5)) for k in range(6))


def test_a_mirror_of_another_pull_is_not_aligned(home, monkeypatch, tmp_path, silo_2k):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    store = get_settings().store
    amended = cd._picks(silo)["amended"]
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (amended,))
    stages.extract(SOURCE, "r2")
    extracted = store.local_file(stages.handoff(SOURCE, "r2", "extracted"), tmp_path)
    # the mirror swapped for this run's rows under another stamp: aligned by position it would
    # give the changed row the state's old hash (and carry it)
    table = staging.read_table(extracted)
    at = table.column("ZCH").to_pylist().index(amended)
    mirror = store.local_path(mirror_key(store, SOURCE))
    for stamp, ok in ((b"another pull", False), (row_state.read_meta(store, row_state.state_key(SOURCE))["pull"]
                                                 .encode(), True)):
        tmp = tmp_path / "mirror.arrow"
        with staging.transient_writer(tmp, table.schema.with_metadata({aligned.PULL: stamp})) as w:
            w.write_table(table)
        shutil.copy(tmp, mirror)
        state = store.local_file(row_state.state_key(SOURCE), tmp_path)
        pull = row_state.read_meta(store, row_state.state_key(SOURCE))["pull"]
        assert (aligned.Aligned.open(store, SOURCE, state, pull, table.schema) is not None) == ok
    stamped = table.replace_schema_metadata({aligned.PULL: pull.encode()})
    with monkeypatch.context() as m:      # stamped alike, but of another length or other columns
        for other in (stamped, stamped.slice(1), stamped.drop_columns(["ZS"])):
            m.setattr(staging, "map_table", lambda p, other=other: (other, lambda: None))
            assert (aligned.Aligned.open(store, SOURCE, state, pull, table.schema) is None) == (other is not stamped)
    with staging.transient_writer(tmp, table.schema.with_metadata({aligned.PULL: b"another pull"})) as w:
        w.write_table(table)
    shutil.copy(tmp, mirror)
    stages.conform(SOURCE, "r2")
    rows = staging.read_table(store.local_file(stages.handoff(SOURCE, "r2", "rows"), tmp_path))
    meta = json.loads(rows.schema.metadata[b"detect"])
    assert meta["mode"] == "delta" and meta["unhashed"] == 0
    assert rows.column("carried")[at].as_py() is False
    assert rows.column("row_hash")[at].as_py() == bytes(row_state.row_hashes(table.slice(at, 1))[0])
    run = stages.run_all(SOURCE, "r2", TODAY)
    assert run["changes"]["changed"] == 1
    assert ledger().run_quality(ledger().get_run(SOURCE, "r2").id)["change_detection"]["checked"] >= 1
