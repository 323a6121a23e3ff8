"""A delta run reports only the quarantined rows that changed (exchange/unreported.py): the
entries of rows quarantined unchanged are not written at all (their raw rows stay readable from
the run that last reported them), those of rows changed, gone or fixed are settled, and the
counts stay whole."""
from __future__ import annotations

import shutil
import sqlite3

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base import staging
from base.settings import get_settings
from exchange import quarantine, row_state, stages
from tests.conftest import TODAY, ledger, register_demo_source
from tests.integration.exchange.test_change_tracking import _dashboard_dataset_page

pytestmark = pytest.mark.integration
SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"
NULL_NAME = "expect_column_values_to_not_be_null(holder_name)"


def _entries() -> list[tuple]:
    with ledger().engine.connect() as c:
        return c.execute(sa.text("select * from quarantine_entries order by id")).all()


def _reported(key: str) -> list[str]:
    """The keys in the run's quarantine file."""
    with get_settings().store.open_input(stages.handoff(SOURCE, key, "quarantine")) as f:
        return pq.read_table(f, columns=["key"]).column(0).to_pylist()


def _alone(silo, entries: list[dict]) -> list[str]:
    """Licence numbers quarantined only for a missing holder name, one silo row each."""
    with sqlite3.connect(silo) as db:
        return [e["key"] for e in entries if e["reasons"] == [NULL_NAME] and
                db.execute("select count(*) from yyzz_djxx where ZCH = ?", (e["key"],)).fetchone()[0] == 1]


@pytest.fixture
def silo(home, tmp_path, silo_2k):
    path = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], path)
    register_demo_source(home, path)
    stages.run_all(SOURCE, "r1", TODAY)
    return path


def test_only_the_quarantined_rows_that_changed_are_reported(silo):
    first = ledger().get_run(SOURCE, "r1")
    before = {e["key"]: e for e in ledger().quarantine(DATASET)}
    rows_before = {r.key: r for r in _entries()}
    changed, gone, fixed = _alone(silo, list(before.values()))[:3]
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附3号' where ZCH = ?", (changed,))
        db.execute("delete from yyzz_djxx where ZCH = ?", (gone,))
        db.execute("update yyzz_djxx set QYMC = '改正后的企业名称有限公司' where ZCH = ?", (fixed,))
    stages.run_all(SOURCE, "r2", TODAY)
    run = ledger().get_run(SOURCE, "r2")
    detected = ledger().run_quality(run.id)["change_detection"]
    assert detected["mode"] == "delta" and detected["kept"] > 0
    # the run's quarantine file holds only the changed row; the sync touched only the three
    assert _reported("r2") == [changed]
    after = {r.key: r for r in _entries()}
    assert {k for k in after if after[k] != rows_before[k]} == {changed, gone, fixed}
    assert after.keys() == rows_before.keys()
    # the changed row: the same entry (its review kept), the new content, its raw row from run 2
    listed = quarantine.queue(DATASET, True, 3)[0]
    entries = {e["key"]: e for e in listed}
    e = entries[changed]
    assert (e["id"], e["state"], e["last_run_key"]) == (before[changed]["id"], "open", "r2")
    assert e["row_hash"] != before[changed]["row_hash"] and e["raw"]["ZS"].endswith("附3号")
    # the gone and the fixed rows' entries are resolved by this run
    for k in (gone, fixed):
        assert (entries[k]["state"], entries[k]["resolved_run_id"]) == ("resolved", run.id)
    # the others: open as run 1 left them, raw rows read from run 1's file, seen as of run 2
    untouched = [e for e in listed if e["key"] not in (changed, gone, fixed)]
    assert untouched and all(e["state"] == "open" and e["last_run_key"] == "r1" and e["raw"] and
                             e["seen_as_of_run_key"] == "r2" for e in untouched)
    # the counts stay whole: the unreported rows counted; the row state holds them quarantined
    assert run.quarantined == first.quarantined - 2 and run.extracted == run.accepted + run.quarantined
    assert run.reasons[NULL_NAME] == first.reasons[NULL_NAME] - 2
    assert {k: n for k, n in run.reasons.items() if k != NULL_NAME} == \
        {k: n for k, n in first.reasons.items() if k != NULL_NAME}
    state = staging.read_table(get_settings().store.local_file(row_state.state_key(SOURCE), silo.parent))
    assert pc.sum(pc.invert(state.column("accepted"))).as_py() == run.quarantined
    summary = ledger().quarantine_summary(DATASET)
    assert summary["as_of"] == {SOURCE: "r2"} and summary["states"]["open"] == len(untouched) + 1
    # the dashboard says which run last reported each row, and that run 2 still saw them
    page = _dashboard_dataset_page(DATASET)
    assert "截至运行 r2 仍被隔离" in page and "最近报告的运行" in page


def test_a_run_that_failed_after_its_sync_does_not_leave_the_queue_wrong(silo, monkeypatch):
    """Run 2 fixes a row (its entry resolved) and fails before publishing; the row goes back as
    it was: run 3, matched against run 1's row state, reports it again and reopens its entry."""
    before = {e["key"]: e for e in ledger().quarantine(DATASET)}
    fixed = _alone(silo, list(before.values()))[0]
    with sqlite3.connect(silo) as db:
        name = db.execute("select QYMC from yyzz_djxx where ZCH = ?", (fixed,)).fetchone()[0]
        db.execute("update yyzz_djxx set QYMC = '改正后的企业名称有限公司' where ZCH = ?", (fixed,))

    def refuse(*args, **kwargs):
        raise OSError("the catalogue went away")
    with monkeypatch.context() as m:
        m.setattr(stages, "_size_gate", refuse)
        with pytest.raises(OSError):
            stages.run_all(SOURCE, "r2", TODAY)
    assert ledger().get_run(SOURCE, "r2").state == "failed"
    assert {e["key"]: e for e in ledger().quarantine(DATASET, True)}[fixed]["state"] == "resolved"
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set QYMC = ? where ZCH = ?", (name, fixed))
    stages.run_all(SOURCE, "r3", TODAY)
    assert ledger().run_quality(ledger().get_run(SOURCE, "r3").id)["change_detection"]["mode"] == "delta"
    assert _reported("r3") == [fixed]
    entry = {e["key"]: e for e in quarantine.queue(DATASET, True, 3)[0]}[fixed]
    assert (entry["id"], entry["state"], entry["last_run_key"]) == (before[fixed]["id"], "open", "r3")
    assert entry["raw"]["QYMC"] == name


def test_the_raw_rows_are_copied_only_when_a_quarantined_row_is_reported(silo, monkeypatch):
    """A delta run with nothing to report reads no raw row (the checked rows of the extracted
    file are not copied); one that reports a row copies them once, its raw row the new one."""
    made = []
    copy = stages._checked_raw

    def counted(*args):
        made.append(args)
        return copy(*args)
    monkeypatch.setattr(stages, "_checked_raw", counted)
    stages.run_all(SOURCE, "r2", TODAY)
    assert made == [] and _reported("r2") == []
    r1, r2 = ledger().get_run(SOURCE, "r1"), ledger().get_run(SOURCE, "r2")
    assert (r2.extracted, r2.accepted, r2.quarantined) == (r1.extracted, r1.accepted, r1.quarantined)
    changed = _alone(silo, ledger().quarantine(DATASET))[0]
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set ZS = ZS || '附3号' where ZCH = ?", (changed,))
    stages.run_all(SOURCE, "r3", TODAY)
    assert len(made) == 1 and _reported("r3") == [changed]
    entry = {e["key"]: e for e in quarantine.queue(DATASET, True, 3)[0]}[changed]
    assert entry["last_run_key"] == "r3" and entry["raw"]["ZS"].endswith("附3号")
