"""A source department's stewards on the dashboard: a department that is the `department` of a
dataset logs in with its own (consumer) key and sees only the objections to its own datasets
(another's is a 404, the auditor's pages a 403), and answers them through a CSRF-bound form
(upheld needs a reason; a closed one is not answered again), audited; an auditor still sees and
may answer every one; a consumer department that is no source cannot log in."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from base import clock
from tests.conftest import dashboard_login, home_env, register_demo_source, register_source

pytestmark = [pytest.mark.notices, pytest.mark.integration]
ITEM = "DJ-SCJG-0003"
MINE, OTHERS = "business_licence.market_regulation", "business_licence.transport"


@pytest.fixture(scope="module")
def site(tmp_path_factory, silo_2k):
    """Two published datasets of two source departments (market_regulation, transport), a
    consuming department (tax) that files objections, an auditor, keys for all four; the app."""
    from api.app import create_app
    from base.settings import Settings
    from catalog.db.engine import engine_for
    from catalog.serving.access import Access
    from exchange import stages

    home = tmp_path_factory.mktemp("stewards") / "home"
    with home_env(home):
        register_demo_source(home, silo_2k[0])
        stages.run_all("smr_business_licence", "r1")
        register_source(home, "tr_business_licence", {"kind": "sql", "url": f"sqlite:///{silo_2k[0]}",
                                                      "table": "yyzz_djxx"}, department="transport")
        stages.run_all("tr_business_licence", "r1")
    settings = Settings(home=home, catalog_url=f"sqlite:///{home / 'catalog.db'}", sources_dir=home / "sources")
    engine = engine_for(settings.catalog_url)
    access = Access(engine, 0)
    keys = {}
    for dept, name, role in (("market_regulation", "市场监督管理局", "consumer"),
                             ("transport", "交通运输局", "consumer"),
                             ("tax", "税务局", "consumer"), ("audit", "审计局", "auditor")):
        access.add_department(dept, name, role)
        keys[dept] = access.issue_credential(dept)["key"]
    with engine.connect() as c:
        records = {d: c.execute(sa.text("select record_id from records where dataset_id = :d "
                                        "order by leaf_index limit 20"), {"d": d}).scalars().all()
                   for d in (MINE, OTHERS)}
    app = create_app(settings, rate=10_000, burst=10_000, cache_ttl=0)
    return {"app": app, "keys": keys, "engine": engine, "records": records, "used": set()}


def _client(site) -> TestClient:
    return TestClient(site["app"])


def _file(site, dataset: str) -> dict:
    """tax's objection to a record of `dataset` not objected to before in this module."""
    rid = next(r for r in site["records"][dataset] if r not in site["used"])
    site["used"].add(rid)
    with _client(site) as c:
        r = c.post(f"/v1/records/{rid}/objections", params={"purpose": ITEM},
                   headers={"Authorization": f"Bearer {site['keys']['tax']}"},
                   json={"reason": f"持证人名称有误 {rid[-6:]}"})
    assert r.status_code == 201, r.text
    return r.json()


def _state(site, oid: int) -> tuple:
    with site["engine"].connect() as c:
        return tuple(c.execute(sa.text("select state, resolution, resolved_by from objections where id = :i"),
                               {"i": oid}).one())


def _csrf(html: str) -> str:
    """The token of the first answer form on a page."""
    return re.search(r'action="/dashboard/objections/\d+/resolve">\s*<input type="hidden" name="csrf" '
                     r'value="([^"]+)"', html).group(1)


def _answer(c: TestClient, oid: int, token: str | None, origin: str = "http://testserver", **form):
    data = dict(form) | ({"csrf": token} if token is not None else {})
    return c.post(f"/dashboard/objections/{oid}/resolve", data=data, headers={"Origin": origin},
                  follow_redirects=False)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _audit(site, action: str) -> list[tuple]:
    with site["engine"].connect() as c:
        return [tuple(r) for r in c.execute(sa.text(
            "select department, outcome, subject, detail from audit_log where action = :a order by seq"),
            {"a": action})]


def test_a_steward_sees_only_the_objections_to_its_own_datasets(site):
    mine, others = _file(site, MINE), _file(site, OTHERS)
    with _client(site) as c:
        login = dashboard_login(c, site["keys"]["market_regulation"])          # asked for the overview
        assert login.status_code == 303 and login.headers["location"] == "/dashboard/objections"
        page = c.get("/dashboard/objections")
        assert page.status_code == 200
        assert f'data-objection="{mine["id"]}"' in page.text and mine["record_id"] in page.text
        assert f'data-objection="{others["id"]}"' not in page.text and others["record_id"] not in page.text
        assert 'id="nav-objections"' in page.text
        assert not any(f'id="nav-{n}"' in page.text for n in ("catalogue", "freshness", "audit", "scorecards"))
        assert 'href="/dashboard/datasets/' not in page.text          # a page it may not open
        assert "市场监督管理局" in page.text and 'id="steward-scope"' in page.text

        english = c.get("/dashboard/objections?lang=en")
        assert english.status_code == 200 and "Only the objections to the datasets of" in english.text
        assert ">Submit<" in english.text and 'lang="en"' in english.text
        one = c.get(f"/dashboard/objections/{mine['id']}?lang=zh")
        assert one.status_code == 200 and mine["reason"] in one.text
        due = clock.beijing(datetime.fromisoformat(mine["due_at"])).strftime("%Y-%m-%d %H:%M")
        assert due.endswith("23:59") and due in one.text                 # the deadline in Beijing time
        hidden = c.get(f"/dashboard/objections/{others['id']}")
        assert hidden.status_code == 404 and others["record_id"] not in hidden.text
        assert "未找到异议" in hidden.text
        assert c.get("/dashboard/objections/999999").status_code == 404

        for path in ("/dashboard/", "/dashboard/audit", "/dashboard/freshness", "/dashboard/scorecards",
                     f"/dashboard/datasets/{MINE}"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 403, path
            assert "仅限审计部门" in r.text and "(auditor departments only)" in r.text, path
            assert 'href="/dashboard/objections"' in r.text
    [*_, allowed] = [a for a in _audit(site, "dashboard.login") if a[0] == "market_regulation"]
    assert allowed[1] == "allowed" and _json(allowed[3]) == {"as": "steward"}


def test_a_steward_upholds_an_objection_through_the_form(site):
    o, others = _file(site, MINE), _file(site, OTHERS)
    with _client(site) as c:
        dashboard_login(c, site["keys"]["market_regulation"], "/dashboard/objections")
        token = _csrf(c.get(f"/dashboard/objections/{o['id']}").text)

        refused = {"no token": _answer(c, o["id"], None, outcome="upheld", reason="与档案一致"),
                   "a made-up token": _answer(c, o["id"], "x" * 64, outcome="upheld", reason="与档案一致"),
                   "another origin": _answer(c, o["id"], token, "https://evil.example", outcome="upheld",
                                             reason="与档案一致")}
        assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 403)
        assert "表单并非来自本看板" in refused["no token"].text
        assert _state(site, o["id"]) == ("open", None, None)

        no_reason = _answer(c, o["id"], token, outcome="upheld", reason="  ")
        assert no_reason.status_code == 400 and "维持需说明理由 (upheld needs a reason)" in no_reason.text
        assert 'id="resolve-error"' in no_reason.text and _state(site, o["id"])[0] == "open"
        bad = _answer(c, o["id"], token, outcome="withdrawn", reason="x")
        assert bad.status_code == 400 and "处理结果应为" in bad.text
        not_mine = _answer(c, others["id"], token, outcome="upheld", reason="与档案一致")
        assert not_mine.status_code == 404 and _state(site, others["id"]) == ("open", None, None)

        done = _answer(c, o["id"], token, outcome="upheld", reason="名称与登记档案一致")
        assert done.status_code == 303 and done.headers["location"] == f"/dashboard/objections/{o['id']}"
        key_id = re.match(r"exk_([0-9a-f]{16})\.", site["keys"]["market_regulation"]).group(1)
        by = f"market_regulation (dashboard, key {key_id})"
        assert _state(site, o["id"]) == ("upheld", "名称与登记档案一致", by)
        shown = c.get(done.headers["location"])
        assert 'data-state="upheld"' in shown.text and "名称与登记档案一致" in shown.text
        assert "/resolve" not in shown.text                               # no form on a closed one
        assert f'data-objection="{o["id"]}"' not in c.get("/dashboard/objections").text

        again = _answer(c, o["id"], token, outcome="corrected")
        assert again.status_code == 409 and "异议已结 (objection closed)" in again.text
        assert _state(site, o["id"])[0] == "upheld"
    [resolved] = [a for a in _audit(site, "objection.resolve") if a[2] == str(o["id"])]
    assert resolved[0] == by and resolved[1] == "done"
    answers = [a for a in _audit(site, "dashboard.objection_resolve") if _json(a[3])["objection"] == str(o["id"])]
    assert [a[1] for a in answers] == ["refused:403"] * 3 + ["refused:400", "refused:400", "done", "refused:409"]
    assert {a[0] for a in answers} == {"market_regulation"} and {a[2] for a in answers} == {key_id}


def test_an_auditor_still_sees_every_objection_and_may_answer(site):
    mine, others = _file(site, MINE), _file(site, OTHERS)
    with _client(site) as c:
        assert dashboard_login(c, site["keys"]["audit"], "/dashboard/objections").headers["location"] == \
            "/dashboard/objections"
        page = c.get("/dashboard/objections").text
        assert f'data-objection="{mine["id"]}"' in page and f'data-objection="{others["id"]}"' in page
        assert all(f'id="nav-{n}"' in page for n in ("catalogue", "freshness", "audit", "scorecards", "objections"))
        assert c.get("/dashboard/audit").status_code == 200
        token = _csrf(c.get(f"/dashboard/objections/{others['id']}").text)
        assert _answer(c, others["id"], token, outcome="corrected").status_code == 303
    assert _state(site, others["id"])[0] == "correcting"
    with _client(site) as c:                          # transport's steward answers its own, later
        dashboard_login(c, site["keys"]["transport"], "/dashboard/objections")
        page = c.get("/dashboard/objections").text
        assert f'data-objection="{others["id"]}"' in page and f'data-objection="{mine["id"]}"' not in page
        assert c.get(f"/dashboard/objections/{mine['id']}").status_code == 404


def test_an_overdue_objection_is_marked_on_the_stewards_pages(site, monkeypatch):
    o = _file(site, MINE)
    later = datetime.fromisoformat(o["due_at"]) + timedelta(minutes=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    with _client(site) as c:
        dashboard_login(c, site["keys"]["market_regulation"], "/dashboard/objections")
        listed = c.get("/dashboard/objections").text
        assert f'data-objection="{o["id"]}" class="overdue"' in listed
        one = c.get(f"/dashboard/objections/{o['id']}").text
        assert 'class="overdue-mark">逾期' in one


def test_a_consumer_department_that_is_no_source_cannot_log_in_and_a_steward_logs_out(site):
    with _client(site) as c:
        refused = dashboard_login(c, site["keys"]["tax"])
        assert refused.status_code == 403
        assert "看板只对审计部门和数据源部门开放 (neither an auditor nor a source department)" in refused.text
        assert "exchange_dashboard" not in c.cookies
        assert c.get("/dashboard/objections", follow_redirects=False).status_code == 303
    with _client(site) as c:
        dashboard_login(c, site["keys"]["market_regulation"], "/dashboard/objections")
        cookie = c.cookies.get("exchange_dashboard")
        page = c.get("/dashboard/objections").text
        token = re.search(r'action="/dashboard/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"',
                          page).group(1)
        out = c.post("/dashboard/logout", data={"csrf": token}, headers={"Origin": "http://testserver"},
                     follow_redirects=False)
        assert out.status_code == 303
    with TestClient(site["app"], cookies={"exchange_dashboard": cookie}) as c:
        assert c.get("/dashboard/objections", follow_redirects=False).status_code == 303
        # an answer posted after the session ended: to the login, then back to the objection's page
        late = c.post("/dashboard/objections/7/resolve", data={"csrf": token, "outcome": "upheld"},
                      headers={"Origin": "http://testserver"}, follow_redirects=False)
        assert late.status_code == 303
        assert late.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fobjections%2F7"
