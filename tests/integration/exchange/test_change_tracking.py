"""Change, not just copies: incremental pulls by watermark (advanced only after publish),
snapshot diffs that withdraw records gone from their source, silo status codes mapped."""
from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import timedelta

import pytest
import sqlalchemy as sa

from base.errors import SourceError
from base.settings import get_settings
from demo.synth import TABLE
from exchange import stages
from tests.conftest import TODAY, catalog, dashboard_login, ledger, register_source
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.integration
STATUS = {"存续": "valid", "在业": "valid", "吊销": "revoked", "注销": "cancelled", "迁出": "cancelled",
          "停业": "suspended"}


def _record(holder_code: str) -> dict:
    import pyarrow as pa

    from schemas.normalize import code_key

    key = code_key(pa.array([holder_code])).to_pylist()[0]
    found = catalog().lookup(key, today=TODAY)
    assert len(found) == 1, found
    return found[0]


def _pulled(source_id: str, key: str) -> dict:
    """What the run pulled (kept in its pending state until publish commits it)."""
    return json.loads(get_settings().store.read_text(stages.handoff(source_id, key, "pending")))


def test_incremental_pulls_take_only_changes_and_advance_only_after_publish(home, pg_silo, silo_rows):
    proxy = FaultProxy(pg_silo.port)
    via = pg_silo.set(port=proxy.port).render_as_string(hide_password=False)
    register_source(home, "pg_inc", {"kind": "sql", "url": via, "table": TABLE, "watermark": "GXSJ",
                                     "key": "ID", "batch_rows": 500}, status_map=STATUS)
    engine = sa.create_engine(pg_silo, poolclass=sa.NullPool)
    try:
        first = stages.run_all("pg_inc", "r1", TODAY)
        wm1 = ledger().watermark("pg_inc")
        with engine.begin() as c:
            wanted = c.scalar(sa.text(f'select max("GXSJ")::text from {TABLE}'))
            holder, qymc = c.execute(sa.text(f'select "TYSHXYDM", "QYMC" from {TABLE} where "ID" = 7')).one()
            c.execute(sa.text(f'update {TABLE} set "DJZT" = \'停业\', "GXSJ" = :t where "ID" = 7'),
                      {"t": f"{TODAY + timedelta(days=1)} 10:00:00"})
            c.execute(sa.text(f'update {TABLE} set "GXSJ" = :t where "ID" between 10 and 14'),
                      {"t": f"{TODAY + timedelta(days=1)} 11:00:00"})
        assert wm1 == ("GXSJ", wanted)
        # a run that fails (the database is down) leaves the watermark where it was
        proxy.refuse = True
        with pytest.raises(SourceError, match="source pg_inc"):
            stages.run_all("pg_inc", "r2", TODAY)
        assert ledger().watermark("pg_inc") == wm1
        proxy.refuse = False
        second = stages.run_all("pg_inc", "r2", TODAY)
    finally:
        proxy.close()
        with engine.begin() as c:   # leave the module's silo as it was
            c.execute(sa.text(f'update {TABLE} set "DJZT" = \'存续\' where "ID" = 7'))
        engine.dispose()
    assert first["state"] == "published" and second["version"] == 2
    assert ledger().watermark("pg_inc") == ("GXSJ", f"{TODAY + timedelta(days=1)} 11:00:00")
    runs = ledger().runs("pg_inc")
    assert runs[0]["extracted"] == silo_rows[0].num_rows, "changes merged onto the last pull"
    assert second["changes"]["changed"] == 1 and second["changes"]["new"] == 0
    rec = _record(holder)
    # issue 6's status model: suspended counts as revoked, the silo's own word is the reason
    assert rec["status"] == "revoked" and rec["holder_name"] == qymc.strip()
    assert catalog().record_status(rec["record_id"])["reason"] == "suspended"


def test_incremental_pull_counts_only_the_changed_rows(home, tmp_path, silo_2k):
    silo, _ = silo_2k
    copy = tmp_path / "silo.db"
    shutil.copy(silo, copy)
    register_source(home, "inc", {"kind": "sql", "url": f"sqlite:///{copy}", "table": TABLE,
                                  "watermark": "GXSJ", "key": "ID"})
    stages.extract("inc", "r1")
    assert _pulled("inc", "r1")["counts"] == {"pulled": 2_000, "kept": 0}
    stages.run_all("inc", "r1", TODAY)
    with sqlite3.connect(copy) as c:
        c.execute(f'update {TABLE} set "GXSJ" = \'2099-01-01T00:00:00\' where "ID" in (3, 4, 5)')
    stages.extract("inc", "r2")
    assert _pulled("inc", "r2")["counts"] == {"pulled": 3, "kept": 1_997}
    assert stages.run_all("inc", "r2", TODAY)["state"] == "unchanged", "only timestamps changed"
    assert ledger().watermark("inc")[1] == "2099-01-01T00:00:00"


def test_records_gone_from_a_snapshot_silo_are_withdrawn_not_kept_valid(home, tmp_path, silo_2k):
    silo, manifest = silo_2k
    copy = tmp_path / "silo.db"
    shutil.copy(silo, copy)
    register_source(home, "snap", {"kind": "sql", "url": f"sqlite:///{copy}", "table": TABLE})
    v1 = stages.run_all("snap", "r1", TODAY)
    bad = {i for k, ids in manifest.items() if k != "cosmetic" for i in ids}
    gone = [i for i in range(1, 60) if i not in bad][:3]
    with sqlite3.connect(copy) as c:
        holders = [c.execute(f'select "TYSHXYDM" from {TABLE} where "ID" = ?', (i,)).fetchone()[0]
                   for i in gone]
        c.execute(f'delete from {TABLE} where "ID" in ({",".join("?" * len(gone))})', gone)
        c.execute(f'update {TABLE} set "DJZT" = \'吊销\' where "ID" = 100')
    v2 = stages.run_all("snap", "r2", TODAY)
    assert v2["version"] == 2 and v2["records"] == v1["records"]          # the withdrawn stay, withdrawn
    assert v2["tree_size"] == v1["tree_size"] + 4 == v1["tree_size"] + v2["appended"]   # the log: 4 new states
    assert v2["changes"] == {"new": 0, "changed": 1, "unchanged": v1["records"] - 4,
                             "withdrawn": 3, "still_withdrawn": 0, "held": 0}
    for h in holders:
        assert _record(h)["status"] == "withdrawn"
    v3 = stages.run_all("snap", "r3", TODAY)
    assert v3["state"] == "unchanged", "still gone: still withdrawn, nothing new to publish"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalogue_on(request, home, monkeypatch):
    """The catalogue on SQLite (the home's default) or on a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield request.param
        return
    import uuid

    from base.settings import reset_settings
    from catalog.db.engine import engine_for
    from demo.sql_silos import create_database, drop_database
    from tests.integration.conftest import server_url

    server, name = server_url("postgresql"), f"t_cat_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", create_database(server, name).render_as_string(hide_password=False))
    reset_settings()
    yield request.param
    engine_for.cache_clear()
    drop_database(server, name)


def test_a_published_record_whose_rows_are_all_quarantined_is_held_disputed_not_withdrawn(
        home, catalogue_on, tmp_path, silo_2k, capsys):
    from cli import main as cli

    silo, manifest = silo_2k
    copy = tmp_path / "silo.db"
    shutil.copy(silo, copy)
    register_source(home, "snap", {"kind": "sql", "url": f"sqlite:///{copy}", "table": TABLE})
    v1 = stages.run_all("snap", "r1", TODAY)
    bad = {i for k, ids in manifest.items() if k != "cosmetic" for i in ids}
    x, other, bad_code = [i for i in range(1, 80) if i not in bad][:3]
    with sqlite3.connect(copy) as c:
        cols = [r[1] for r in c.execute(f"PRAGMA table_info({TABLE})")]
        number, holder = c.execute(f'select "ZCH", "TYSHXYDM" from {TABLE} where "ID" = ?', (x,)).fetchone()
        code_holder = c.execute(f'select "TYSHXYDM" from {TABLE} where "ID" = ?', (bad_code,)).fetchone()[0]
        # a second row with x's licence number and other content: both rows are quarantined
        picked = ", ".join(chr(39) + "900001" + chr(39) if k == "ID" else k for k in cols)
        c.execute(f'insert into {TABLE} select {picked} from {TABLE} where "ID" = ?', (x,))
        c.execute(f'update {TABLE} set "ZS" = \'另一个地址\' where "ID" = \'900001\'')
        # another published record's only row now fails a check (a wrong USCC check character)
        wrong = code_holder[:17] + ("0" if code_holder[17] != "0" else "1")
        c.execute(f'update {TABLE} set "TYSHXYDM" = ? where "ID" = ?', (wrong, bad_code))
        c.execute(f'update {TABLE} set "DJZT" = \'吊销\' where "ID" = ?', (other,))   # a real change
    before = {h: _record(h) for h in (holder, code_holder)}
    assert {r["status"] for r in before.values()} <= {"valid", "expired"}
    v2 = stages.run_all("snap", "r2", TODAY)
    assert v2["version"] == 2
    assert v2["changes"]["withdrawn"] == 0 and v2["changes"]["changed"] == 1
    for h in (holder, code_holder):
        rec = _record(h)     # still looked up, as published, flagged
        assert (rec["record_id"], rec["status"]) == (before[h]["record_id"], before[h]["status"])
        assert rec["version"] == 2 and rec["disputed"] is True
        st = catalog().record_status(rec["record_id"], today=TODAY)
        assert (st["status"], st["current_version"], st["disputed"]) == (before[h]["status"], 2, True)
        assert "quarantine" in st["dispute"]
    assert v2["changes"]["held"] == 2 and v2["records"] == v1["records"]
    capsys.readouterr()
    rec = _record(holder)
    assert cli(["record", rec["record_id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["current_version"] == 2 and shown["disputed"] is True and shown["status"] != "withdrawn"
    assert cli(["record", rec["record_id"]]) == 0 and cli(["quarantine", "business_licence.market_regulation"]) == 0
    said = capsys.readouterr().out
    assert "当前版本 (current version) 2" in said and "有争议 (disputed)：held as published: 2 row(s)" in said
    assert "3 条待处理行使已发布记录被暂扣" in said and "(open rows hold a published record back" in said
    # the dashboard's queue says which entries hold a published record back
    summary = ledger().quarantine_summary("business_licence.market_regulation", sample=500)
    held = [e for e in summary["open"] if e["key"] == number]
    assert len(held) == 2 and all(e["holds_record"] == rec["record_id"] for e in held)
    assert summary["holding"] == 3
    page = _dashboard_dataset_page("business_licence.market_regulation")
    assert "3 条待处理行使一条已发布记录被暂扣" in page and rec["record_id"] in page

    # a steward reviews the entry: the record is no longer flagged, and still valid
    assert cli(["quarantine", "review", "business_licence.market_regulation", number,
                "--by", "steward", "--note", "asked the registry which row is right", "--json"]) == 0
    assert _record(holder)["disputed"] is False
    assert catalog().record_status(rec["record_id"], today=TODAY)["disputed"] is False
    # the silo is put right: the row is accepted again, nothing is disputed, nothing withdrawn
    with sqlite3.connect(copy) as c:
        c.execute(f'delete from {TABLE} where "ID" = \'900001\'')
        c.execute(f'update {TABLE} set "TYSHXYDM" = ? where "ID" = ?', (code_holder, bad_code))
    v3 = stages.run_all("snap", "r3", TODAY)
    assert v3["state"] == "unchanged"
    assert _record(code_holder)["disputed"] is False
    assert _record(code_holder)["status"] == before[code_holder]["status"]


def _dashboard_dataset_page(dataset: str) -> str:
    """The dataset's dashboard page, as an auditor sees it (FastAPI's test client)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from catalog.serving.access import Access

    access = Access(catalog().engine, ttl=0)
    access.add_department("audit-office", "审计局", role="auditor")
    key = access.issue_credential("audit-office")["key"]
    client = TestClient(create_app())
    assert dashboard_login(client, key).status_code == 303
    r = client.get(f"/dashboard/datasets/{dataset}")
    assert r.status_code == 200
    return r.text
