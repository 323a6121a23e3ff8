"""Change detection (exchange/row_state.py): rows unchanged since the published version are
carried over; only the rest are conformed, validated and published. The same silo history run
with it and forced full (EXCHANGE_CHANGE_DETECTION=0) publishes the same log, the same record
states, the same counts and the same quarantine queue."""
from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base import staging
from base.settings import get_settings, reset_settings
from exchange import quarantine, row_state, stages
from tests.conftest import TODAY, catalog, ledger, register_demo_source, stored

pytestmark = pytest.mark.integration
SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"
NULL_NAME = "expect_column_values_to_not_be_null(holder_name)"
FUTURE = "expect_column_values_to_not_be_in_the_future"


def _use_home(monkeypatch, home, detect: bool) -> None:
    monkeypatch.setenv("EXCHANGE_HOME", str(home))
    monkeypatch.setenv(row_state.ENV, "1" if detect else "0")
    reset_settings()


def _first_run(home, silo_2k, picks: dict | None = None) -> tuple:
    """A history's start: the 2k silo copied into `home` (created), registered with `home`/home,
    and run once (r1). Returns (the silo, r1's result, `picks` or those chosen after r1)."""
    silo = home / "silo.db"
    home.mkdir()
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home / "home", silo)
    result = stages.run_all(SOURCE, "r1", TODAY)
    return silo, result, picks or _picks(silo)


def _picks(silo) -> dict:
    """Licence numbers of rows to edit: accepted rows with a number of their own, and a row
    quarantined only for its missing holder name (chosen after the first run)."""
    with catalog().engine.connect() as c:
        valid = [n for (n,) in c.execute(sa.text(
            "select licence_number from records where status = 'valid' and superseded_in is null "
            "order by leaf_index limit 60"))]
    bad = [e["key"] for e in ledger().quarantine(DATASET) if e["reasons"] == [NULL_NAME]]
    with sqlite3.connect(silo) as db:
        def alone(n):
            return db.execute("select count(*) from yyzz_djxx where ZCH = ?", (n,)).fetchone()[0] == 1
        valid, bad = [n for n in valid if alone(n)], [n for n in bad if alone(n)]
    names = ["amended", "new_from", "deleted", "turned_bad", "dup_changed", "dup_kept", "revoked", "later"]
    return {**dict(zip(names, valid)), "fixed": bad[0]}


def _edit(silo, step: int, p: dict) -> None:
    with sqlite3.connect(silo) as db:
        run = db.execute
        if step == 2:
            run("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (p["amended"],))
            cols = [r[1] for r in run("pragma table_info(yyzz_djxx)") if r[1] != "ID"]
            run(f"insert into yyzz_djxx ({','.join(cols)}) select {','.join(cols)} from yyzz_djxx where ZCH = ?",
                (p["new_from"],))
            run("update yyzz_djxx set ZCH = ZCH || 'X' where ID = last_insert_rowid()")
            run("delete from yyzz_djxx where ZCH = ?", (p["deleted"],))
            run("update yyzz_djxx set QYMC = NULL where ZCH = ?", (p["turned_bad"],))
            run("update yyzz_djxx set QYMC = '改正后的企业名称有限公司' where ZCH = ?", (p["fixed"],))
            run("update yyzz_djxx set ZCH = ? where ZCH = ?", (p["dup_kept"], p["dup_changed"]))
            run("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (p["revoked"],))
        if step == 3:      # the duplicate resolved, another row amended
            run("update yyzz_djxx set ZCH = ? where ID = (select max(ID) from yyzz_djxx where ZCH = ?)",
                (p["dup_changed"], p["dup_kept"]))
            run("update yyzz_djxx set ZS = ZS || '附2号' where ZCH = ?", (p["later"],))


def _snapshot(results: list[dict]) -> dict:
    with catalog().engine.connect() as c:
        versions = c.execute(sa.text(
            "select version, tree_size, root_hash, map_root, record_count from dataset_versions "
            "order by version")).all()
        records = c.execute(sa.text(
            "select record_id, version, leaf_index, leaf_hash, status, licence_number, superseded_in "
            "from records order by version, leaf_index")).all()
    runs = [{k: r[k] for k in ("run_key", "state", "version", "extracted", "accepted", "quarantined", "reasons")}
            for r in reversed(ledger().runs(SOURCE))]
    # a delta run leaves the entries of rows quarantined unchanged as they are (their last run
    # names the run whose quarantine file holds the raw row): the raw rows found are the same
    entries = ledger().quarantine(DATASET, True)
    quarantine.with_raw_rows(entries)
    queue = [{k: e[k] for k in ("id", "key", "row_hash", "state", "reasons", "values", "held_record_id",
                                "first_run_id", "resolved_run_id")} | {"raw": _content(e["raw"])} for e in entries]
    assert all(e["raw"] for e in queue if e["state"] != "resolved")
    published = [{k: r.get(k) for k in ("version", "state", "tree_size", "root_hash")} for r in results]
    return {"versions": versions, "records": records, "runs": runs, "queue": queue, "published": published}


def _history(monkeypatch, tmp_path, silo_2k, detect: bool, picks: dict | None):
    home = tmp_path / ("detect" if detect else "full")
    _use_home(monkeypatch, home / "home", detect)
    silo = home / "silo.db"
    home.mkdir()
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home / "home", silo)
    results = [stages.run_all(SOURCE, "r1", TODAY)]
    picks = picks or _picks(silo)
    for step in (2, 3, 4):
        _edit(silo, step, picks)
        results.append(stages.run_all(SOURCE, f"r{step}", TODAY))
    detected = [ledger().run_quality(r["id"])["change_detection"] for r in reversed(ledger().runs(SOURCE))]
    return _snapshot(results), detected, picks, [_timeless(f"r{n}") for n in (1, 2, 3, 4)]


def _content(raw: dict | None) -> dict | None:
    """A raw silo row without its row number in the run that holds it."""
    return raw and {k: v for k, v in raw.items() if k != "_row"}


def _timeless(key: str) -> int:
    """Rows the run quarantined none of whose failures is dated (not in the future, as of today)."""
    store = get_settings().store
    with store.open_input(stages.handoff(SOURCE, key, "quarantine")) as f:
        reasons = pq.read_table(f, columns=["reasons"]).column(0).to_pylist()
    return sum(not any(r.startswith(FUTURE) for r in rs) for rs in reasons)


@pytest.mark.parametrize("batch", [None, 173])     # conform's batches: as written, or many uneven ones
def test_a_delta_run_publishes_what_a_full_run_publishes(home, monkeypatch, tmp_path, silo_2k, batch):
    monkeypatch.setattr(stages, "DETECT_BATCH", batch)
    fast, detected, picks, _ = _history(monkeypatch, tmp_path, silo_2k, True, None)
    full, forced, _, timeless = _history(monkeypatch, tmp_path, silo_2k, False, picks)
    assert [d["mode"] for d in detected] == ["full", "delta", "delta", "delta"]
    assert detected[0]["reason"] == "no row state"
    assert {d["mode"] for d in forced} == {"full"} and forced[1]["reason"] == f"{row_state.ENV}=0"
    assert fast == full
    runs = fast["runs"]
    # run 2 checks the rows quarantined in run 1 for a date (those quarantined for anything else
    # and unchanged keep their failures: "kept") and the six accepted rows changed, gone or
    # pulled back (the unchanged row whose licence number a changed row took); the rest is carried
    # kept: the last run's rows quarantined for no date but those edited since (run 2: the fixed
    # row; run 3: the duplicate's changed row; its other row, quarantined as a duplicate only,
    # is kept and accepted once the duplicate is resolved)
    assert [d["kept"] for d in detected[1:]] == [timeless[0] - 1, timeless[1] - 1, timeless[2]]
    assert min(timeless) > 0
    assert detected[1]["carried"] == runs[0]["accepted"] - 6 + detected[1]["kept"]
    assert detected[1]["checked"] == runs[1]["extracted"] - detected[1]["carried"]
    assert detected[1]["checked"] < 60 and detected[3]["checked"] + detected[3]["kept"] == runs[2]["quarantined"]
    # the rows quarantined before and unchanged: their conformed form reused (checked or kept)
    assert detected[0]["reused"] == 0 and detected[3]["reused"] == runs[2]["quarantined"]
    assert 0 < detected[1]["reused"] < runs[0]["quarantined"]
    assert [r["state"] for r in runs] == ["published", "published", "published", "unchanged"]
    assert [p["version"] for p in fast["published"]] == [1, 2, 3, 3]
    # the duplicate held both rows back in run 2 and was resolved in run 3
    by_key = {e["key"]: e for e in fast["queue"]}
    assert by_key[picks["dup_kept"]]["state"] == "resolved"
    assert by_key[picks["turned_bad"]]["state"] == "open" and by_key[picks["fixed"]]["state"] == "resolved"


def test_an_unchanged_quarantined_row_is_not_reported_again(home, tmp_path, silo_2k):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    before = _entry_rows()
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (_picks(silo)["amended"],))
    stages.run_all(SOURCE, "r2", TODAY)
    # the entries are not written at all: byte for byte as run 1 left them, its file holding the raw rows
    assert before and _entry_rows() == before
    assert {e["last_run_key"] for e in ledger().quarantine(DATASET)} == {"r1"}
    assert _reported("r2") == 0 and _reported("r1") == len(before)
    entries, _ = quarantine.queue(DATASET, False, 3)
    assert len(entries) == len(before) and all(e["raw"] and e["raw"]["ZCH"] == e["key"] for e in entries
                                               if not e["key"].startswith("sha256:"))
    run, first = ledger().runs(SOURCE)[:2]
    kept = _mode("r2")["kept"]
    assert kept == _timeless("r1") and run["checked"] + run["carried"] == run["extracted"]
    assert run["checked"] + kept == first["quarantined"] + 1
    # the counts stay whole: every quarantined row counted, reported or not
    assert (run["quarantined"], run["reasons"]) == (first["quarantined"], first["reasons"])
    assert run["extracted"] == run["accepted"] + run["quarantined"]


def _entry_rows() -> list[tuple]:
    with ledger().engine.connect() as c:
        return c.execute(sa.text("select * from quarantine_entries order by id")).all()


def _reported(key: str) -> int:
    """Rows in the run's quarantine file."""
    with get_settings().store.open_input(stages.handoff(SOURCE, key, "quarantine")) as f:
        return pq.ParquetFile(f).metadata.num_rows


def _mode(key: str) -> dict:
    return ledger().run_quality(ledger().get_run(SOURCE, key).id)["change_detection"]


def test_full_runs_when_the_row_state_cannot_be_trusted(home, tmp_path, silo_2k):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    reg = register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    assert _mode("r1")["reason"] == "no row state"
    stages.run_all(SOURCE, "r2", TODAY)
    assert _mode("r2")["mode"] == "delta" and _mode("r2")["checked"] + _mode("r2")["kept"] == _mode(
        "r1")["checked"] - ledger().runs(SOURCE)[1]["accepted"]
    # a check added to the registration: every row is checked against it
    text = reg.path.read_text("utf-8").replace("[connector]", '[[checks]]\ntype = "expect_column_value_lengths_'
                                               'to_be_between"\ncolumn = "address"\nmax_value = 60\n\n[connector]')
    reg.path.write_text(text, "utf-8")
    stored(reg.path)
    stages.run_all(SOURCE, "r3", TODAY)
    assert _mode("r3")["mode"] == "full" and "checks" in _mode("r3")["reason"]
    stages.run_all(SOURCE, "r4", TODAY)
    assert _mode("r4")["mode"] == "delta"
    # another source feeds the dataset: both run in full (they take turns moving its version)
    other = tmp_path / "other.db"
    shutil.copy(silo, other)
    with sqlite3.connect(other) as db:
        db.execute("delete from yyzz_djxx where ID % 10 = 0")
    register_demo_source(home, other, "smr_business_licence_b")
    assert stages.run_all("smr_business_licence_b", "b1", TODAY)["state"] == "published"
    stages.run_all(SOURCE, "r5", TODAY)
    assert _mode("r5")["mode"] == "full" and "2 sources" in _mode("r5")["reason"]
    # a row state that is not readable (or absent) is no row state
    get_settings().store.write_text(row_state.state_key(SOURCE), "not arrow")
    stages.run_all(SOURCE, "r6", TODAY)
    assert _mode("r6")["mode"] == "full"


def test_held_rows_are_reused_only_beside_their_own_row_state(home, tmp_path, silo_2k):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    store, held = get_settings().store, row_state.held_key(SOURCE)
    assert row_state.read_meta(store, held) == row_state.read_meta(store, row_state.state_key(SOURCE))
    table = staging.read_table(store.local_file(held, tmp_path))
    assert table.num_rows == ledger().get_run(SOURCE, "r1").quarantined
    # a held file stamped with another version (a crash between the two writes) is not used
    meta = {**row_state.read_meta(store, held), "version": 99}
    stale = tmp_path / "stale.arrow"
    with staging.transient_writer(stale, table.schema.with_metadata({b"row_state": json.dumps(meta).encode()})) as w:
        w.write_table(table)
    del table
    store.put_file(stale, held, move=True)
    stages.run_all(SOURCE, "r2", TODAY)
    assert _mode("r2")["mode"] == "delta" and _mode("r2")["reused"] == 0 and _mode("r2")["checked"] > 0
    stages.run_all(SOURCE, "r3", TODAY)
    # every quarantined row's conformed form reused: the ones validated again and the ones kept
    r3 = _mode("r3")
    assert r3["reused"] == r3["checked"] + r3["kept"] == ledger().get_run(SOURCE, "r1").quarantined
    assert r3["checked"] == _mode("r2")["checked"] and r3["kept"] > 0
    store.delete(held)              # none at all: the rows are conformed again
    stages.run_all(SOURCE, "r4", TODAY)
    assert _mode("r4")["reused"] == 0 and _mode("r4")["checked"] == _mode("r3")["checked"]
    assert ledger().get_run(SOURCE, "r4").state == "unchanged"


def _statuses(licence: str) -> list[str]:
    with catalog().engine.connect() as c:
        return list(c.scalars(sa.text("select status from records where licence_number = :n "
                                      "and superseded_in is null"), {"n": licence}))


def test_a_crash_between_publish_and_commit_costs_only_work(home, tmp_path, silo_2k, monkeypatch):
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    picks = _picks(silo)
    first, second = picks["amended"], picks["later"]
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (first,))

    def crash(*args, **kwargs):
        raise OSError("the machine went away")
    with monkeypatch.context() as m:
        m.setattr(stages, "_commit_pull", crash)
        with pytest.raises(OSError):
            stages.run_all(SOURCE, "r2", TODAY)
    assert ledger().get_run(SOURCE, "r2").state == "published"      # published, not committed
    assert row_state.read_meta(get_settings().store, row_state.state_key(SOURCE))["version"] == 1
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (second,))
    r3 = stages.run_all(SOURCE, "r3", TODAY)
    assert _mode("r3")["mode"] == "full" and r3["version"] == 3
    assert r3["changes"]["changed"] == 1          # the second revocation; the first was version 2's
    assert _statuses(first) == ["revoked"] and _statuses(second) == ["revoked"]
    # the crashed run, run again, commits its (older) pull: stamped version 2, so not trusted
    stages.publish(SOURCE, "r2")
    assert row_state.read_meta(get_settings().store, row_state.state_key(SOURCE))["version"] == 2
    stages.run_all(SOURCE, "r4", TODAY)
    assert _mode("r4")["mode"] == "full"
    stages.run_all(SOURCE, "r5", TODAY)
    assert _mode("r5")["mode"] == "delta" and ledger().get_run(SOURCE, "r5").state == "unchanged"


def test_a_watermark_source_carries_the_mirror_s_rest(home, tmp_path, silo_2k):
    from tests.conftest import register_source

    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_source(home, "inc", {"kind": "sql", "url": f"sqlite:///{silo}", "table": "yyzz_djxx",
                                  "watermark": "GXSJ", "key": "ID"})
    first = stages.run_all("inc", "r1", TODAY)
    amended = _picks(silo)["amended"]
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附1号', GXSJ = '2099-01-01T00:00:00' where ZCH = ?", (amended,))
    second = stages.run_all("inc", "r2", TODAY)
    run, before = ledger().runs("inc")[:2]
    detected = ledger().run_quality(run["id"])["change_detection"]
    assert detected["mode"] == "delta" and detected["carried"] == before["accepted"] - 1 + detected["kept"]
    assert run["checked"] + detected["kept"] == before["quarantined"] + 1 and detected["kept"] > 0
    assert (run["extracted"], run["accepted"], run["quarantined"]) == (before["extracted"], before["accepted"],
                                                                      before["quarantined"])
    assert second["changes"]["changed"] == 1 and second["tree_size"] == first["tree_size"] + 1


def test_a_delta_run_does_not_publish_on_a_version_it_was_not_matched_against(home, tmp_path, silo_2k):
    from base.errors import DataError

    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (_picks(silo)["amended"],))
    for stage in (stages.extract, stages.conform):
        stage(SOURCE, "r2")
    stages.validate(SOURCE, "r2", TODAY)
    assert _mode("r2")["mode"] == "delta"
    other = tmp_path / "other.db"              # meanwhile another source of the dataset publishes
    shutil.copy(silo, other)
    with sqlite3.connect(other) as db:
        db.execute("delete from yyzz_djxx where ID % 10 = 0")
    register_demo_source(home, other, "smr_business_licence_b")
    stages.run_all("smr_business_licence_b", "b1", TODAY)
    with pytest.raises(DataError, match="moved since change detection"):
        stages.publish(SOURCE, "r2")
    assert ledger().get_run(SOURCE, "r2").state == "failed"
    again = stages.run_all(SOURCE, "r2", TODAY)       # the whole run again: every row checked
    assert _mode("r2")["mode"] == "full" and again["version"] == 3


def _dated_history(monkeypatch, tmp_path, silo_2k, detect: bool, row_id: int):
    """Runs on one day, again the same day, and a month later, of a silo whose row `row_id` was
    issued ten days after that day; nothing else changes."""
    home = tmp_path / ("detect" if detect else "full")
    _use_home(monkeypatch, home / "home", detect)
    silo = home / "silo.db"
    home.mkdir()
    shutil.copy(silo_2k[0], silo)
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set FZRQ = ? where ID = ?", ((TODAY + timedelta(days=10)).isoformat(), row_id))
        licence = db.execute("select ZCH from yyzz_djxx where ID = ?", (row_id,)).fetchone()[0]
    register_demo_source(home / "home", silo)
    days = {"r1": TODAY, "r2": TODAY, "r3": TODAY + timedelta(days=30)}
    results, timeless, queues = [], [], []
    for key, day in days.items():
        results.append(stages.run_all(SOURCE, key, day))
        timeless.append(_timeless(key))
        queues.append({e["key"]: e for e in ledger().quarantine(DATASET, True)}[licence])
    return _snapshot(results), [_mode(k) for k in days], timeless, queues


def test_a_quarantined_row_is_checked_again_only_if_a_dated_rule_failed(home, monkeypatch, tmp_path, silo_2k):
    """Unchanged rows quarantined for anything but a date are not checked again (their failures
    are the row state's) and end as a full run ends them; one issued in the future is checked
    every run, and accepted once the day passes its issue date."""
    manifest = silo_2k[1]
    flawed = {i for ids in manifest.values() for i in ids}
    row_id = next(i for i in range(1, 2_001) if i not in flawed)
    fast, modes, _, queues = _dated_history(monkeypatch, tmp_path, silo_2k, True, row_id)
    full, forced, timeless, _ = _dated_history(monkeypatch, tmp_path, silo_2k, False, row_id)
    assert fast == full
    assert [m["mode"] for m in modes] == ["full", "delta", "delta"] and {m["mode"] for m in forced} == {"full"}
    runs = fast["runs"]
    # run 2 (same day, nothing changed) checks only the rows quarantined for a date, the planted
    # one among them; all the others keep their failures
    assert modes[1]["kept"] == timeless[0] > 0 and modes[1]["checked"] == runs[0]["quarantined"] - timeless[0] > 0
    assert (runs[1]["accepted"], runs[1]["quarantined"], runs[1]["reasons"]) == \
        (runs[0]["accepted"], runs[0]["quarantined"], runs[0]["reasons"])
    assert queues[0]["reasons"] == [f"{FUTURE}(issue_date)"] and queues[1]["state"] == "open"
    assert (queues[1]["id"], queues[1]["first_seen"]) == (queues[0]["id"], queues[0]["first_seen"])
    # a month later the planted row is checked again and accepted; its entry is resolved
    assert modes[2]["kept"] == timeless[1] and queues[2]["state"] == "resolved"
    assert runs[2]["accepted"] > runs[1]["accepted"] and runs[2]["state"] == "published"
    with catalog().engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from records where licence_number = :n and superseded_in is null"),
                        {"n": queues[0]["key"]}) == 1
