"""Objections (数据异议) over HTTP and the CLI: filed by a consuming department, the record disputed
in lookups, status, bundles and the materials check until the source's steward corrects it at
the source (the next version closes it) or upholds it; one open objection per department and
record; refused (and audited) for a department that may not see the record; alerted once when
overdue; counted on the scorecard. (tests/e2e/test_objections_airflow.py: the same through real
DAG runs.)"""
from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from base import clock
from base.workdays import due_after
from catalog.ledger import monitoring
from demo.synth import TABLE
from tests.conftest import TODAY, catalog, dashboard_login, register_demo_source

pytestmark = [pytest.mark.notices, pytest.mark.integration]
SOURCE, DATASET, ITEM = "smr_business_licence", "business_licence.market_regulation", "DJ-SCJG-0003"


@pytest.fixture
def ex(home, shared_catalogue, silo_2k, tmp_path, monkeypatch):
    """A published dataset, two consuming departments and an auditor with keys, the API; the
    catalogue on SQLite and on PostgreSQL."""
    from api.app import create_app
    from base.settings import get_settings, reset_settings
    from exchange import stages
    from exchange.catalogue import open_access

    monkeypatch.setenv("EXCHANGE_CATALOG_URL", shared_catalogue)
    monkeypatch.setenv("EXCHANGE_ALERTS", "log")
    reset_settings()
    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1")
    access = open_access()
    keys = {}
    for dept, role in (("transport", "consumer"), ("tax", "consumer"), ("audit", "auditor")):
        access.add_department(dept, dept, role)
        keys[dept] = access.issue_credential(dept)["key"]
    app = create_app(get_settings(), rate=10_000, burst=10_000, cache_ttl=0)
    with catalog().engine.connect() as c:
        rid, holder, number = c.execute(sa.text(
            "select record_id, holder_key, licence_number from records where status = 'valid' and "
            "superseded_in is null and (valid_to is null or valid_to >= :d) order by leaf_index limit 1"),
            {"d": TODAY + timedelta(days=400)}).one()
    return {"client": TestClient(app), "keys": keys, "rid": rid, "holder": holder, "number": number,
            "silo": silo, "app": app}


def _h(ex, dept="transport") -> dict:
    return {"Authorization": f"Bearer {ex['keys'][dept]}"}


def _file(ex, dept="transport", rid=None, **body):
    return ex["client"].post(f"/v1/records/{rid or ex['rid']}/objections", params={"purpose": ITEM},
                             headers=_h(ex, dept), json={"reason": "持证人名称有误 (the name is wrong)", **body})


def _shown(ex) -> dict:
    """disputed as a lookup, record status, bundle and materials check show it."""
    c, h, rid = ex["client"], _h(ex), ex["rid"]
    found = c.post("/v1/holders/records", params={"purpose": ITEM}, headers=h, json={"holder_id": ex["holder"]})
    rec = next(r for r in found.json()["records"] if r["record_id"] == rid)
    status = c.get(f"/v1/records/{rid}/status", params={"purpose": ITEM}, headers=h).json()
    bundle = c.get(f"/v1/records/{rid}/bundle", params={"purpose": ITEM}, headers=h).json()
    check = c.post(f"/v1/items/{ITEM}/materials-check", params={"purpose": ITEM}, headers=h,
                   json={"holder_id": ex["holder"]}).json()
    held = next(m for m in check["materials"] if m.get("record_id") == rid)
    return {"lookup": rec["disputed"], "status": status["disputed"], "bundle": bundle["disputed"],
            "materials": held["disputed"], "disputes": status["disputes"]}


def _cli(*args) -> tuple[int, object]:
    import contextlib
    import io

    from cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"] if "--json" not in args else list(args))
    text = out.getvalue()
    return code, json.loads(text) if text.strip() else None


def _told(ex) -> dict[str, list[tuple[str, str]]]:
    """Each consuming department's notices (type, record), read by replay after a notify pass."""
    from exchange import notifying

    notifying.notify(DATASET)
    out = {}
    for dept in ("transport", "tax"):
        page = ex["client"].get("/v1/notices", params={"purpose": ITEM}, headers=_h(ex, dept)).json()
        out[dept] = [(n["type"], n["event"]["subject"]) for n in page["notices"]]
    return out


def _change_silo_row(ex) -> None:
    with sqlite3.connect(ex["silo"]) as db:
        n = db.execute(f'update {TABLE} set "QYMC" = "QYMC" || \'（更正）\' where "ZCH" = ?',
                       (ex["number"],)).rowcount
    assert n == 1


def test_objection_filed_disputed_corrected_at_the_source_and_closed_by_the_next_version(ex):
    from exchange import stages

    before = clock.now()
    r = _file(ex, evidence="登记档案 2019-0001 号")
    assert r.status_code == 201, r.text
    o = r.json()
    assert (o["state"], o["record_id"], o["dataset"], o["version"], o["department"]) == (
        "open", ex["rid"], DATASET, 1, "transport")
    assert o["due_at"].endswith("+08:00") and o["due_at"] == due_after(before, 5).isoformat()
    shown = _shown(ex)
    assert [shown[k] for k in ("lookup", "status", "bundle", "materials")] == [True] * 4
    assert shown["disputes"] == [{"kind": "objection", "objections": [o["id"]], "since": shown["disputes"][0]["since"]}]

    again = _file(ex)            # the same department, the same record, while the first is open
    assert again.status_code == 409 and f"#{o['id']}" in again.json()["detail"]
    assert _file(ex, "tax").status_code == 201          # another department may object too
    mine = ex["client"].get(f"/v1/objections/{o['id']}", params={"purpose": ITEM}, headers=_h(ex))
    assert mine.status_code == 200 and mine.json()["evidence"] == "登记档案 2019-0001 号"
    assert ex["client"].get(f"/v1/objections/{o['id']}", params={"purpose": ITEM},
                            headers=_h(ex, "tax")).status_code == 404

    code, listed = _cli("objections", "--department", "market_regulation")
    assert code == 0 and [x["id"] for x in listed] == [o["id"], o["id"] + 1]
    code, answered = _cli("objections", "resolve", str(o["id"]), "--corrected", "--by", "张管理员")
    assert code == 0 and answered["state"] == "correcting" and answered["resolved_at"] is None
    assert _shown(ex)["status"] is True                 # still disputed until the source changes
    code, upheld = _cli("objections", "resolve", str(o["id"] + 1), "--upheld", "--reason", "名称与登记档案一致")
    assert code == 0 and upheld["state"] == "upheld"

    sub = ex["client"].post("/v1/subscriptions", params={"purpose": ITEM}, headers=_h(ex, "tax"),
                            json={"dataset": DATASET})
    assert sub.status_code == 201, sub.text
    _change_silo_row(ex)
    result = stages.run_all(SOURCE, "r2")
    assert result["version"] == 2 and result["objections_closed"] == [o["id"]]
    told = _told(ex)     # the correction as a notice to the subscriber; each outcome to its objector
    assert ("cn.gov.exchange.record.corrected", ex["rid"]) in told["tax"]
    assert ("cn.gov.exchange.objection.upheld", ex["rid"]) in told["tax"]
    assert told["transport"] == [("cn.gov.exchange.objection.corrected", ex["rid"])]
    closed = ex["client"].get(f"/v1/objections/{o['id']}", params={"purpose": ITEM}, headers=_h(ex)).json()
    assert (closed["state"], closed["corrected_version"], closed["resolved_by"]) == ("corrected", 2, "张管理员")
    shown = _shown(ex)
    assert [shown[k] for k in ("lookup", "status", "bundle", "materials")] == [False] * 4

    [card] = [c for c in monitoring.scorecards(catalog(), "week") if c["department"] == "market_regulation"]
    assert (card["objections_received"], card["objections_resolved"], card["objections_on_time"],
            card["objections_open_overdue"]) == (2, 2, 2, 0)
    assert 0 <= card["objections_median_days"] < 1
    # a month ago nothing had been filed
    [old] = [c for c in monitoring.scorecards(catalog(), "week", clock.now() - timedelta(days=30))
             if c["department"] == "market_regulation"] or [None]
    assert old is None or old["objections_received"] == 0


def test_upheld_needs_a_reason_a_closed_objection_is_not_resolved_again_and_a_later_state_closes_at_once(ex):
    from exchange import stages

    o = _file(ex).json()
    code, _ = _cli("objections", "resolve", str(o["id"]), "--upheld")
    assert code == 4
    _cli("objections", "resolve", str(o["id"]), "--upheld", "--reason", "与档案一致")
    assert _shown(ex)["status"] is False
    code, err = _cli("objections", "resolve", str(o["id"]), "--corrected")
    assert code == 4 and "upheld" in err["message"] and err["error"] == "Conflict"
    # the source changed the record before the steward answered: corrected at once, by that version
    second = _file(ex).json()
    _change_silo_row(ex)
    stages.run_all(SOURCE, "r2")
    code, now_closed = _cli("objections", "resolve", str(second["id"]), "--corrected")
    assert (now_closed["state"], now_closed["corrected_version"]) == ("corrected", 2)


def test_a_department_that_may_not_see_the_record_cannot_object_and_is_audited(ex):
    with catalog().engine.begin() as c:
        c.execute(sa.text("update datasets set sharing = 'conditional'"))
    r = _file(ex)
    assert r.status_code == 403 and "conditional" in r.json()["detail"]
    with catalog().engine.connect() as c:
        row = c.execute(sa.text("select department, action, outcome, subject from audit_log "
                                "order by seq desc limit 1")).one()
        assert tuple(row) == ("transport", "objection", "refused:403", ex["rid"])
        assert c.scalar(sa.text("select count(*) from objections")) == 0
    bad = _file(ex, reason="")
    assert bad.status_code == 422
    big = _file(ex, evidence="证" * 6000)
    assert big.status_code == 413


def test_an_overdue_objection_alerts_once_and_counts_on_the_scorecard(ex, hook, monkeypatch):
    from exchange.objections import check_overdue

    monkeypatch.setenv("EXCHANGE_ALERTS", f"webhook:{hook.url}")
    from base.settings import reset_settings
    reset_settings()
    o = _file(ex).json()
    due = datetime.fromisoformat(o["due_at"])
    assert check_overdue() == [] and hook.received == []
    later = due + timedelta(minutes=1)
    [raised] = check_overdue(later)
    assert (raised["kind"], raised["objection"], raised["dataset"]) == ("objection_overdue", o["id"], DATASET)
    assert check_overdue(later + timedelta(days=3)) == []           # said once
    [alert] = hook.received
    assert alert["kind"] == "objection_overdue" and f"#{o['id']}" in alert["message"]
    code, listed = _cli("objections", "list", "--overdue")
    assert code == 0 and listed == []                               # not overdue by the real clock yet
    monkeypatch.setattr(clock, "now", lambda: later)                # the injected clock, moved on
    code, listed = _cli("objections", "list", "--overdue")
    assert [x["id"] for x in listed] == [o["id"]] and listed[0]["overdue"] is True
    [card] = [c for c in monitoring.scorecards(catalog(), "month", later) if c["department"] == "market_regulation"]
    assert (card["objections_received"], card["objections_open_overdue"], card["objections_resolved"]) == (1, 1, 0)

    c = ex["client"]
    dashboard_login(c, ex["keys"]["audit"], "/dashboard/objections")
    page = c.get("/dashboard/objections")
    assert page.status_code == 200 and f'data-objection="{o["id"]}" class="overdue"' in page.text
    assert "逾期" in page.text and "持证人名称有误" in page.text and ex["rid"] in page.text
    cards = c.get("/dashboard/scorecards")
    assert "收到异议" in cards.text and "处理天数中位数" in cards.text


def test_objection_days_of_the_source_department_set_the_deadline(ex):
    code, err = _cli("departments", "objection-days", "market_regulation", "3")
    assert code == 7 and err["error"] == "NotFound" and "exchange departments add" in err["message"]
    from exchange.catalogue import open_access
    open_access().add_department("market_regulation", "市场监督管理局")
    code, out = _cli("departments", "objection-days", "market_regulation", "3")
    assert code == 0 and out == {"department": "market_regulation", "objection_days": 3}
    before = clock.now()
    o = _file(ex).json()
    assert o["due_at"] == due_after(before, 3).isoformat()
