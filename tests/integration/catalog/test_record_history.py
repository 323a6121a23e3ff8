"""A record's history read from its states (catalog/publish/status.py): a version on the log
writes no record_events rows, yet a record added, amended, revoked, reinstated and withdrawn
across six versions has its whole history, status, `since` and reason; a catalogue holding
the rows an earlier publish wrote for log versions gives the same history, once."""
from __future__ import annotations

import shutil
import sqlite3
import time

import pytest
import sqlalchemy as sa

from exchange import stages
from tests.conftest import TODAY, catalog, register_demo_source
from tests.integration.catalog import test_log_migration as prelog
from tests.integration.catalog.test_append_only_log import _catalog, single_row_records
from tests.integration.catalog.test_log_migration import IDS, PICKS

SOURCE, DATASET, TABLE = "smr_business_licence", "business_licence.market_regulation", "yyzz_djxx"
NEW = "990000000000001"          # a licence number the silo does not have
prelog_upgraded = prelog.upgraded      # a fixture: the prelog catalogue, upgraded


def _row(db, number: str) -> dict:
    db.row_factory = sqlite3.Row
    return dict(db.execute(f"select * from {TABLE} where ZCH = ?", (number,)).fetchone())


@pytest.fixture
def six_versions(home, silo_2k, tmp_path):
    """v1 from the silo; v2 adds a record (NEW); v3 amends it, v4 revokes it, v5 reinstates it,
    v6 withdraws it (its row deleted). Another record is untouched throughout."""
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    assert stages.run_all(SOURCE, "r1", TODAY)["version"] == 1
    cat = _catalog()
    single = single_row_records(cat, silo)
    with sqlite3.connect(silo) as db:
        like, untouched = single[0][1], single[1][0]
        row = {k: v for k, v in _row(db, like).items() if k != "ID"}
        valid_word = row["DJZT"]
    steps = [
        ("r2", f"insert into {TABLE} ({', '.join(chr(34) + c + chr(34) for c in row)}) "
               f"values ({', '.join('?' * len(row))})", list({**row, 'ZCH': NEW}.values())),
        ("r3", f"update {TABLE} set ZS = ZS || '附1号' where ZCH = ?", [NEW]),
        ("r4", f"update {TABLE} set DJZT = '吊销' where ZCH = ?", [NEW]),
        ("r5", f"update {TABLE} set DJZT = ? where ZCH = ?", [valid_word, NEW]),
        ("r6", f"delete from {TABLE} where ZCH = ?", [NEW]),
    ]
    statuses = {}
    for run, sql, args in steps:
        with sqlite3.connect(silo) as db:
            db.execute(sql, args)
        time.sleep(1.05)               # published_at has second resolution: keep the versions apart
        version = stages.run_all(SOURCE, run, TODAY)["version"]
        if run == "r2":
            with cat.engine.connect() as c:
                rid = c.execute(sa.text("select record_id from records where licence_number = :n"),
                                {"n": NEW}).scalar_one()
        statuses[version] = cat.record_status(rid, today=TODAY)
        if version in (3, 5):         # earlier copies, as they stood then
            for copy in (version - 2, version - 1):
                if copy > 1:
                    statuses[(version, copy)] = cat.record_status(rid, copy, today=TODAY)
    return {"cat": cat, "rid": rid, "untouched": untouched, "statuses": statuses}


def test_a_log_version_writes_no_events_and_the_history_is_whole(six_versions):
    cat, rid, seen = six_versions["cat"], six_versions["rid"], six_versions["statuses"]
    assert sorted(k for k in seen if isinstance(k, int)) == [2, 3, 4, 5, 6]
    with cat.engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from record_events")) == 0
        assert c.scalar(sa.text("select log_from from datasets")) == 1
    st = cat.record_status(rid, today=TODAY)
    history = [(h["version"], h["change"], h["status"], h.get("reason")) for h in st["history"]]
    assert history == [(2, "added", "valid", None), (3, "amended", "valid", None),
                       (4, "revoked", "revoked", "revoked"), (5, "reinstated", "valid", None),
                       (6, "withdrawn", "withdrawn", "gone from the source")]
    at = {h["version"]: h["at"] for h in st["history"]}
    assert len(set(at.values())) == 5                     # each change at its own version's time
    assert (st["status"], st["since"], st["reason"], st["current_version"]) == \
        ("withdrawn", at[6], "gone from the source", 6)
    # as it stood after each version: status, since, reason
    assert [(v, seen[v]["status"], seen[v]["since"], seen[v]["reason"]) for v in range(2, 7)] == [
        (2, "valid", at[2], None), (3, "valid", at[2], None), (4, "revoked", at[4], "revoked"),
        (5, "valid", at[5], None), (6, "withdrawn", at[6], "gone from the source")]
    assert cat.record_status(rid, 3, today=TODAY)["status"] == "withdrawn"      # any copy: gone now
    untouched = cat.record_status(six_versions["untouched"], today=TODAY)
    assert [(h["version"], h["change"]) for h in untouched["history"]] == [(1, "added")]
    assert untouched["status"] == "valid"



def test_the_status_look_up_searches_by_key_and_never_scans(six_versions):
    """At 1M records the look-up must stay a few key searches: every read is a SEARCH (SQLite's
    plan), none a SCAN; a dataset on the log from its first version reads no record_events."""
    cat, rid = six_versions["cat"], six_versions["rid"]
    statements = []

    def seen(conn, cursor, statement, parameters, *_):
        statements.append((statement, parameters))

    sa.event.listen(cat.engine, "before_cursor_execute", seen)
    try:
        cat.record_status(rid, today=TODAY)
    finally:
        sa.event.remove(cat.engine, "before_cursor_execute", seen)
    with cat.engine.connect() as c:
        plans = [c.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}", p).all() for q, p in statements
                 if q.lstrip().upper().startswith("SELECT")]
    details = [row[-1] for plan in plans for row in plan]
    assert any(d.startswith("SEARCH records USING PRIMARY KEY (record_id=?)") for d in details), details
    assert not [d for d in details if "record_events" in d], details     # on the log from version 1
    assert not [d for d in details if d.startswith("SCAN")], details


def test_a_superseded_copy_is_so_since_the_next_change(six_versions):
    seen = six_versions["statuses"]
    at = {h["version"]: h["at"] for h in seen[6]["history"]}
    copy = seen[(3, 2)]               # v2's copy, after v3 amended it
    assert (copy["status"], copy["since"], copy["reason"]) == \
        ("superseded", at[3], "version 3 holds a newer copy of this record")
    copy = seen[(5, 4)]               # v4's (revoked) copy, after v5 reinstated it
    assert (copy["status"], copy["since"], copy["reason"]) == \
        ("superseded", at[5], "version 5 holds a newer copy of this record")
    # reinstated with the very content v3 had: v3's copy is the current one again
    assert (seen[(5, 3)]["status"], seen[(5, 3)]["since"]) == ("valid", at[5])


def test_event_rows_an_earlier_publish_wrote_for_log_versions_are_not_counted_twice(six_versions):
    """The code before this one wrote a record_events row for every change of a log version:
    a catalogue that kept them gives the same status and history."""
    cat, rid = six_versions["cat"], six_versions["rid"]
    before = {r: cat.record_status(r, today=TODAY) for r in (rid, six_versions["untouched"])}
    rows = [{"dataset_id": DATASET, "record_id": rid, "version": h["version"], "change": h["change"],
             "status": h["status"], "reason": h.get("reason")} for h in before[rid]["history"] if h["version"] > 1]
    assert len(rows) == 5
    with cat.engine.begin() as c:
        c.execute(sa.text("insert into record_events (dataset_id, record_id, version, change, status, reason) "
                          "values (:dataset_id, :record_id, :version, :change, :status, :reason)"), rows)
    after = {r: cat.record_status(r, today=TODAY) for r in before}
    assert after == before
    assert [h["change"] for h in after[rid]["history"]] == ["added", "amended", "revoked", "reinstated",
                                                           "withdrawn"]


def test_a_catalogue_from_before_the_log_keeps_its_events_and_adds_the_states(prelog_upgraded, home):
    """The prelog catalogue (tests/fixtures/prelog: versions 1-2 with their record_events rows),
    upgraded, then two log versions: the history runs from the stored events into the states."""
    cat, silo = catalog(), prelog_upgraded
    number = {name: r["licence_number"] for name, r in PICKS["records"].items()}
    register_demo_source(home, silo)
    with sqlite3.connect(silo) as db:
        valid_word = _row(db, number["untouched"])["DJZT"]
        db.execute(f"update {TABLE} set DJZT = ? where ZCH = ?", (valid_word, number["revoked"]))
        db.execute(f"update {TABLE} set ZS = ZS || '附3号' where ZCH = ?", (number["amended"],))
    time.sleep(1.05)
    assert stages.run_all(SOURCE, "r3")["version"] == 3
    with sqlite3.connect(silo) as db:
        db.execute(f"delete from {TABLE} where ZCH = ?", (number["amended"],))
    time.sleep(1.05)
    assert stages.run_all(SOURCE, "r4")["version"] == 4
    with cat.engine.connect() as c:
        assert c.scalar(sa.text("select log_from from datasets")) == 2
        assert c.execute(sa.text("select distinct version from record_events")).scalars().all() == [2]
    history = {name: [(h["version"], h["change"], h["status"], h.get("reason"))
                      for h in cat.record_status(rid)["history"]] for name, rid in IDS.items()}
    # (the first entry of a withdrawn record says "withdrawn": status.py's _first_status, as before)
    assert history == {
        "revoked": [(1, "added", "valid", None), (2, "revoked", "revoked", "revoked"),
                    (3, "reinstated", "valid", None)],
        "withdrawn": [(1, "added", "withdrawn", None), (2, "withdrawn", "withdrawn", "gone from the source")],
        "amended": [(1, "added", "withdrawn", None), (2, "amended", "valid", None), (3, "amended", "valid", None),
                    (4, "withdrawn", "withdrawn", "gone from the source")],
        "untouched": [(1, "added", "valid", None)]}
    amended = cat.record_status(IDS["amended"])
    assert (amended["status"], amended["since"], amended["current_version"]) == \
        ("withdrawn", amended["history"][-1]["at"], 4)
    before = {name: cat.record_status(rid) for name, rid in IDS.items()}
    rows = [{"dataset_id": DATASET, "record_id": IDS[name], "version": h["version"], "change": h["change"],
             "status": h["status"], "reason": h.get("reason")}
            for name, st in before.items() for h in st["history"] if h["version"] > 2]
    assert len(rows) == 3
    with cat.engine.begin() as c:          # as the code before this one wrote them
        c.execute(sa.text("insert into record_events (dataset_id, record_id, version, change, status, reason) "
                          "values (:dataset_id, :record_id, :version, :change, :status, :reason)"), rows)
    assert {name: cat.record_status(rid) for name, rid in IDS.items()} == before
