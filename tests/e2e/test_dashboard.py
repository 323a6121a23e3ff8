"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright) against
`exchange serve` on 127.0.0.1, over a catalogue made by really running the pipeline stages on
small synthetic silos: one source published twice and then broken on purpose, one published
long ago (stale), one registered and never run. The pages are in Chinese first (English by
?lang=en, kept in a cookie), with times in Beijing time and tables that fit their boxes from
1280 to 1920 px. Set DASHBOARD_SCREENSHOTS=DIR to keep a screenshot of every page (the ones in
docs/screens/ are the 1440 px shots of test_pages_fit_1280_to_1920_px)."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa

from exchange.listing import source_listing
from tests.conftest import ROOT, TEST_PASSPHRASE, free_port, ledger

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AIRFLOW = "http://127.0.0.1:18080"
SMR, EDU, CA = ("business_licence.market_regulation", "diploma.education",
                "marriage_certificate.civil_affairs")
DAG_RUN = "manual__2026-11-20T08:00:00+00:00"
ITEM = "DJ-SCJG-0003"


def seed(home: Path, silo_src: Path, work: Path) -> dict:
    """Run the stages for real; return what the pages should show (read from the catalogue
    and the stages' own results, not from the dashboard's queries)."""
    from catalog.db.models import DatasetVersion, Run
    from catalog.serving.access import Access
    from demo.synth_types import make_silo
    from exchange import stages
    from tests.conftest import catalog, register_demo_source, register_sample

    silo = work / "market_regulation.db"
    shutil.copy(silo_src, silo)
    register_demo_source(home, silo)
    sid = "smr_business_licence"
    stages.extract(sid, "r1", dag_run_id=DAG_RUN)            # as an Airflow task would
    stages.conform(sid, "r1")
    stages.validate(sid, "r1")
    stages.publish(sid, "r1")
    with sqlite3.connect(silo) as c:      # a silo fault: bad check characters in every 12th row
        c.execute("UPDATE yyzz_djxx SET TYSHXYDM = substr(TYSHXYDM, 1, 17) || CASE WHEN "
                  "substr(TYSHXYDM, 18, 1) = '0' THEN '1' ELSE '0' END WHERE rowid % 12 = 0")
        c.execute("UPDATE yyzz_djxx SET QYMC = QYMC || '分公司' WHERE rowid % 12 = 5")   # and a change
    stages.run_all(sid, "r2")        # version 2: the renamed; the quarantined held as published
    with sqlite3.connect(silo) as c:      # broken on purpose: a mapped column is gone
        c.execute("ALTER TABLE yyzz_djxx RENAME COLUMN QYMC TO QYMC_OLD")
    with pytest.raises(Exception, match="QYMC"):
        stages.run_all(sid, "r3")

    make_silo("diploma", work / "diploma.db", 300, seed=3)
    register_sample(home, "diploma", work / "diploma.db")
    stages.run_all("edu_diploma", "d1")
    cat = catalog()
    with cat.session() as s, s.begin():  # as if published 70 days ago: past two monthly cycles
        for run in s.scalars(sa.select(Run).where(Run.source_id == "edu_diploma")):
            run.started_at -= timedelta(days=70)
            run.finished_at -= timedelta(days=70)
        for v in s.scalars(sa.select(DatasetVersion).where(DatasetVersion.dataset_id == EDU)):
            v.published_at -= timedelta(days=70)
    cat.register(source_listing(register_sample(home, "marriage_certificate", work / "none.csv")))   # never run

    access = Access(cat.engine, ttl=0)
    access.add_department("audit-office", "审计局", role="auditor")
    access.add_department("tax-bureau", "税务局")
    runs = {r["run_key"]: r for r in ledger().runs(limit=50)}
    with cat.engine.connect() as c:
        holder = c.execute(sa.text("select holder_key from records where dataset_id = :d and status = 'valid' "
                                   "order by leaf_index limit 1"), {"d": SMR}).scalar_one()
    return {"auditor_key": access.issue_credential("audit-office")["key"],
            "second_auditor_key": access.issue_credential("audit-office")["key"],
            "consumer_key": access.issue_credential("tax-bureau")["key"],
            "runs": runs, "holder": holder, "versions": cat.versions(SMR),
            "quarantine": ledger().quarantine(SMR)}


@pytest.fixture(scope="module")
def site(tmp_path_factory, silo_2k):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from tests.conftest import home_env

    work = tmp_path_factory.mktemp("dash")
    home = work / "home"
    with home_env(home):
        facts = seed(home, silo_2k[0], work)
    port = free_port()
    env = {**os.environ, "EXCHANGE_HOME": str(home), "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE,
           "EXCHANGE_AIRFLOW_URL": AIRFLOW, "EXCHANGE_API_CACHE_TTL": "0",
           "EXCHANGE_DASHBOARD_SECRET": secrets.token_urlsafe(32)}
    env.pop("EXCHANGE_CATALOG_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if requests.get(f"{base}/dashboard/login", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
            if server.poll() is not None:
                pytest.fail(f"exchange serve exited: {server.stdout.read().decode()[-2000:]}")
        else:
            pytest.fail("exchange serve did not answer within 30 s")
        yield {"base": base, "home": home, **facts}
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(page, site, key: str, path: str = "/dashboard/"):
    page.goto(site["base"] + path)
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("button[type=submit]")


@pytest.fixture(scope="module")
def page(browser, site):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    _login(pg, site, site["auditor_key"])
    assert pg.url == site["base"] + "/dashboard/"
    yield pg
    ctx.close()


def shot(page, name: str, full_page: bool = True) -> None:
    target = os.environ.get("DASHBOARD_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=full_page)


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    import http.client

    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{selector} tbody tr", "rows => rows.map(r => "
                                     "Array.from(r.cells).map(c => c.innerText.trim()))")


def test_login_is_required_and_only_auditors_get_in(browser, site):
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(site["base"] + "/dashboard/freshness")
    assert pg.url.startswith(site["base"] + "/dashboard/login?next=")      # redirected, nothing shown
    assert pg.locator("#freshness").count() == 0
    shot(pg, "login")
    pg.fill("#key", "exk_0123456789abcdef." + "A" * 43)
    pg.click("button[type=submit]")
    assert "unknown exchange key" in pg.inner_text("#login-error")
    pg.fill("#key", site["consumer_key"])
    pg.click("button[type=submit]")
    assert ("看板只对审计部门和数据源部门开放 (neither an auditor nor a source department)"
            in pg.inner_text("#login-error"))
    pg.fill("#key", site["auditor_key"])
    pg.click("button[type=submit]")
    pg.wait_for_load_state()
    assert pg.url == site["base"] + "/dashboard/freshness"                  # back where it was going
    assert pg.inner_text("#who") == "审计局 audit-office"                    # the name, its id beside
    cookie = next(c for c in ctx.cookies() if c["name"] == "exchange_dashboard")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    forged = {**cookie, "value": cookie["value"][:-4] + "0000"}
    ctx.add_cookies([forged])                                              # a tampered signature
    pg.goto(site["base"] + "/dashboard/audit")
    assert "/dashboard/login" in pg.url
    ctx.close()
    r = requests.get(site["base"] + "/dashboard/audit", params={"action": "dashboard.login"},
                     allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")


def test_overview_and_catalogue_search(page, site):
    page.goto(site["base"] + "/dashboard/")
    shot(page, "overview")
    rows = cells(page, "#datasets")
    assert [r[0].splitlines()[-1] for r in rows] == sorted([SMR, EDU, CA])
    smr = next(r for r in rows if SMR in r[0])
    assert smr[5] == "2" and smr[6] == f"{site['versions'][0]['records']:,}"
    assert page.inner_text("#tile-datasets") == "3"
    assert page.inner_text("#tile-failed") == "1"                          # the broken run
    assert smr[2].splitlines()[0] == "市场监督管理局 market_regulation"          # a name, not only the id
    assert smr[3] == "无条件共享 unconditional"
    assert page.get_attribute(f"#datasets tr[data-dataset='{SMR}'] td.sharing", "data-sharing") == "unconditional"
    page.fill("input[name=q]", "毕业证书")                                     # the diploma type's title
    with page.expect_navigation():
        page.click("form.search button")
    rows = cells(page, "#datasets")
    assert len(rows) == 1 and EDU in rows[0][0]
    assert "3 个数据集中有 1 个匹配" in page.inner_text("#result-count")
    with page.expect_navigation():
        page.click(f"#datasets a[href='/dashboard/datasets/{EDU}']")
    assert page.url.endswith(f"/dashboard/datasets/{EDU}")
    page.goto(site["base"] + "/dashboard/?q=education")
    assert [EDU in r[0] for r in cells(page, "#datasets")] == [True]


def test_dataset_page(page, site):
    from schemas.types import get_type

    page.goto(f"{site['base']}/dashboard/datasets/{SMR}")
    shot(page, "dataset")
    assert "营业执照" in page.inner_text("#dataset-title")
    meta = page.inner_text("#metadata")
    for text in ("部门", "市场监督管理局", "steward@smr.example.gov.cn", "无条件共享 unconditional", "每日 daily"):
        assert text in meta
    assert "Business licences of every registered" in page.inner_text("#description")
    history = {r.get_attribute("data-field"): r.locator("td").all_inner_texts()
               for r in page.locator("#history tbody tr").all()}             # the initial values
    assert "steward@smr.example.gov.cn" in history["steward"][3] and history["steward"][1] == "数据管理员"
    assert history["sharing"][3] == "无条件共享 unconditional"
    fields = get_type("business_licence").fields
    assert [(r[0], r[1], r[3] == "是") for r in cells(page, "#schema")] == [
        (f.name, f.type, f.required) for f in fields]
    versions = cells(page, "#versions")
    assert [(int(r[0]), r[2]) for r in versions] == [(v["version"], v["root_hash"]) for v in site["versions"]]
    assert versions[0][1] == f"{site['versions'][0]['records']:,}"
    # the trend: one point per run that counted rows, at accepted / extracted
    runs = site["runs"]
    counted = [runs[k] for k in ("r1", "r2")]
    points = page.eval_on_selector_all("#trend svg circle", "cs => cs.map(c => [c.dataset.run, +c.dataset.share])")
    assert points == [[str(r["id"]), round(r["accepted"] / r["extracted"], 4)] for r in counted]
    assert points[1][1] < points[0][1]                                    # the planted fault shows
    assert page.locator("#trend svg polyline").count() == 1
    # recent runs: states, counts, the broken run's message, links
    table = {r.get_attribute("data-run"): r for r in page.locator("#runs tbody tr").all()}
    broken = table[str(runs["r3"]["id"])]
    assert broken.locator(".state").get_attribute("data-state") == "failed"
    assert "失败" in broken.inner_text() and "QYMC" in broken.inner_text()
    r2 = table[str(runs["r2"]["id"])].inner_text()
    assert f"{runs['r2']['quarantined']:,}" in r2 and "已发布" in r2
    uscc = "expect_column_values_to_be_valid_uscc(holder_code)"                 # the planted fault, in words
    assert table[str(runs["r2"]["id"])].locator(f".reason[data-reason='{uscc}']").inner_text().startswith(
        "持证主体代码不是有效的统一社会信用代码（校验位或字符错误），请源部门核对并更正该代码 "
        "(expect_column_values_to_be_valid_uscc: holder_code)")
    r1_airflow = table[str(runs["r1"]["id"])].locator("a.airflow").get_attribute("href")
    assert r1_airflow == f"{AIRFLOW}/dags/source__smr_business_licence/runs/manual__2026-11-20T08%3A00%3A00%2B00%3A00"
    assert table[str(runs["r2"]["id"])].locator("a.airflow").get_attribute("href") == \
        f"{AIRFLOW}/dags/source__smr_business_licence"
    assert broken.locator("a.docs").count() == 0                           # failed before validation
    # the quarantine queue: counts by reason as in the catalogue
    open_rows = [e for e in site["quarantine"] if e["state"] != "resolved"]
    expected = {}
    for e in open_rows:
        for reason in e["reasons"]:
            expected[reason] = expected.get(reason, 0) + 1
    shown = {r.get_attribute("data-reason"): int(r.locator("td").nth(1).inner_text().replace(",", ""))
             for r in page.locator("#quarantine-reasons tbody tr").all()}
    assert shown == expected and shown
    assert "请源部门" in page.locator(f"#quarantine-reasons tr[data-reason='{uscc}'] td").first.inner_text()
    assert f"待处理 {sum(e['state'] == 'open' for e in open_rows):,}" in page.inner_text("#quarantine-states")
    # Data Docs of r2 open from the link: our list of its pages, then GX's own pages
    with page.expect_navigation():
        table[str(runs["r2"]["id"])].locator("a.docs").click()
    assert page.url == f"{site['base']}/dashboard/runs/{runs['r2']['id']}/docs/"
    shot(page, "docs_list")
    assert page.locator("#docs a.validation").count() == 1                 # one suite result per run
    with page.expect_navigation():
        page.click("#gx-index")
    assert page.title() == "Data Docs created by Great Expectations"
    page.go_back()
    with page.expect_navigation():
        page.locator("#docs a.validation").first.click()
    text = page.inner_text("body")
    r2 = runs["r2"]           # a delta run: its Data Docs describe the rows it checked, not those carried
    assert 0 < r2["checked"] < r2["extracted"] and r2["checked"] + r2["carried"] == r2["extracted"]
    assert "Expectation Validation Result" in text and f"of {r2['checked']} total rows" in text
    shot(page, "data_docs")


def test_data_docs_are_served_from_their_folder_only(page, site):
    runs = site["runs"]
    page.goto(f"{site['base']}/dashboard/runs/{runs['r2']['id']}/docs/")
    index = page.get_attribute("#gx-index", "href")
    token = index.split("/")[5]
    # a sandboxed GX page sends no SameSite=Strict cookie: the token alone opens the run's pages
    ok = requests.get(site["base"] + index, timeout=10, allow_redirects=False)
    assert ok.status_code == 200 and "sandbox" in ok.headers["content-security-policy"]
    assert ok.headers["referrer-policy"] == "no-referrer"
    base = f"/dashboard/runs/{runs['r2']['id']}/docs/{token}/"
    for bad in ("..%2F..%2F..%2Fcatalog.db", "%2E%2E/extracted.parquet", "..%2Fr1%2Fextracted.parquet",
                "%2Fetc%2Fpasswd", "static/../../quarantine.parquet", "../../../../../../etc/passwd"):
        status, body = _raw_get(site["base"], base + bad)     # sent as written: no client clean-up
        assert status == 404, bad
        assert b"SQLite" not in body and b"PAR1" not in body and b"root:" not in body
    elsewhere = f"{site['base']}/dashboard/runs/{runs['r1']['id']}/docs/{token}/index.html"   # another run
    forged = index.replace(token, token[:-4] + "0000")
    for url in (elsewhere, site["base"] + forged):
        r = requests.get(url, timeout=10, allow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("/docs/"), url
    assert requests.get(f"{site['base']}/dashboard/runs/{runs['r2']['id']}/docs/", timeout=10,
                        allow_redirects=False).status_code == 303               # the list needs the login
    page.goto(f"{site['base']}/dashboard/runs/{runs['r3']['id']}/docs/")
    assert "(no Data Docs)" in page.inner_text("#error") and "没有质量报告" in page.inner_text("#error")
    page.goto(f"{site['base']}/dashboard/datasets/no.such")
    assert "no dataset" in page.inner_text("#error")


def test_freshness_board(page, site):
    page.goto(site["base"] + "/dashboard/freshness")
    shot(page, "freshness")
    states = {r.get_attribute("data-dataset"): (r.locator(".state").first.get_attribute("data-state"),
                                                r.locator(".state").first.inner_text())
              for r in page.locator("#freshness tbody tr").all()}
    assert states == {SMR: ("fresh", "按时更新"), EDU: ("stale", "严重逾期"), CA: ("never", "从未发布")}
    smr = page.locator(f"#freshness tr[data-dataset='{SMR}']").inner_text()
    assert "失败" in smr and "QYMC" in smr                                  # its last run broke, and why
    assert "市场监督管理局" in smr
    backlog = sum(e["state"] != "resolved" for e in site["quarantine"])
    assert smr.rstrip().endswith(f"{backlog:,}")
    assert "按时更新 1" in page.inner_text("#freshness-counts")


def test_audit_search_shows_a_lookup_and_is_itself_audited(page, site):
    r = requests.post(f"{site['base']}/v1/holders/records", params={"purpose": ITEM},
                      json={"holder_id": site["holder"]},
                      headers={"Authorization": f"Bearer {site['consumer_key']}"}, timeout=10)
    assert r.status_code == 200 and r.json()["records"]
    page.goto(site["base"] + "/dashboard/audit")
    page.fill("input[name=holder]", site["holder"].lower())                # any spelling
    page.select_option("select[name=department]", "tax-bureau")
    with page.expect_navigation():
        page.click("form.filters button")
    shot(page, "audit")
    rows = cells(page, "#audit")
    assert len(rows) == 1
    seq, _, dept, purpose, action, holder, datasets, outcome, _ = rows[0]
    assert (dept, purpose, action, holder, outcome) == ("税务局 tax-bureau", ITEM, "lookup", site["holder"], "允许")
    assert SMR in datasets
    assert "哈希链校验通过" in page.inner_text("#chain")
    # the search above is in the log too, under the auditor and the holder searched for
    page.goto(site["base"] + "/dashboard/audit?action=dashboard.audit_search&department=audit-office")
    rows = cells(page, "#audit")
    assert any(r[5] == site["holder"] and r[4] == "dashboard.audit_search" for r in rows)
    page.goto(site["base"] + "/dashboard/audit?action=dashboard.login")
    outcomes = [r.get_attribute("data-outcome") for r in page.locator("#audit tbody tr").all()]
    assert {"refused:401", "refused:403", "allowed"} <= set(outcomes)
    page.goto(site["base"] + "/dashboard/audit?since=yesterday")
    assert "YYYY-MM-DD" in page.inner_text("#audit-error")


def test_audit_pages(page, site):
    with requests.Session() as http:                                       # 55 more entries
        for _ in range(55):
            assert http.post(f"{site['base']}/v1/holders/records", params={"purpose": ITEM},
                             json={"holder_id": site["holder"]}, timeout=10,
                             headers={"Authorization": f"Bearer {site['consumer_key']}"}).ok
    page.goto(site["base"] + "/dashboard/audit")
    total = int(page.get_attribute("#audit-count", "data-total"))
    assert re.match(r"共 [\d,]+ 条记录匹配", page.inner_text("#audit-count"))
    assert total > 55
    first = cells(page, "#audit")
    assert len(first) == 50
    page.click("a[rel=next]")
    second = cells(page, "#audit")
    assert second and int(second[0][0]) == int(first[-1][0]) - 1          # no gap, no overlap
    assert [int(r[0]) for r in second] == sorted((int(r[0]) for r in second), reverse=True)
    page.goto(site["base"] + f"/dashboard/audit?department=tax-bureau&before={first[0][0]}")
    assert {r.get_attribute("data-department") for r in page.locator("#audit tbody tr").all()} == {"tax-bureau"}


def test_scorecards(page, site):
    page.goto(site["base"] + "/dashboard/scorecards?period=week")
    shot(page, "scorecards")
    runs = [r for r in site["runs"].values() if r["source_id"] == "smr_business_licence" and r["extracted"]]
    share = sum(r["accepted"] for r in runs) / sum(r["extracted"] for r in runs)
    row = page.locator("#scorecards tr[data-department='market_regulation']")
    c = row.locator("td").all_inner_texts()
    assert "市场监督管理局" in c[0] and c[1] == "1"
    assert c[2] == "0.0%" and c[3] == f"{share:.1%}"      # its latest run failed: not on time
    week_runs = [r for r in site["runs"].values() if r["source_id"] == "smr_business_licence"]
    assert c[4] == str(len(week_runs))                                     # runs this week
    assert c[5] == str(sum(r["state"] == "failed" for r in week_runs)) == "1"    # runs_failed: r3
    assert c[6] == "1"                                                     # datasets_failing: its latest failed
    assert c[7] == f"{sum(e['state'] != 'resolved' for e in site['quarantine']):,}"
    assert int(c[9].replace(",", "")) >= 1                                 # tax-bureau's lookup
    edu = page.locator("#scorecards tr[data-department='education']").locator("td").all_inner_texts()
    assert edu[2] == "0.0%" and edu[3] == "–"                              # stale; no run this week
    assert edu[5] == "0" and edu[6] == "0"
    heads = page.locator("#scorecards thead th").all_inner_texts()
    assert heads[5:7] == ["失败运行", "最近运行失败的数据集"]
    bar = page.locator("#scorecard-chart rect[data-department='market_regulation'][data-series='quality_pass_share']")
    assert float(bar.get_attribute("data-value")) == pytest.approx(share, abs=1e-4)
    assert page.locator("#scorecard-chart rect[data-series='on_time_share']").count() == 3
    page.click(".periods a[data-period='month']")
    assert page.url.endswith("period=month")
    page.goto(site["base"] + "/dashboard/scorecards?period=year")
    assert "周期为 day, week, month 之一" in page.inner_text("#error")


def test_logout_ends_the_session(browser, site):
    ctx = browser.new_context()
    pg = ctx.new_page()
    _login(pg, site, site["auditor_key"], "/dashboard/scorecards")
    assert pg.url.endswith("/dashboard/scorecards")
    pg.click("form.who button")
    pg.wait_for_load_state()
    assert "/dashboard/login" in pg.url
    pg.goto(site["base"] + "/dashboard/")
    assert "/dashboard/login" in pg.url
    ctx.close()


def test_a_revoked_key_ends_its_session(browser, site):
    from catalog.service import Catalog
    from catalog.serving.access import Access

    ctx = browser.new_context()
    pg = ctx.new_page()
    _login(pg, site, site["second_auditor_key"], "/dashboard/freshness")
    assert pg.url.endswith("/dashboard/freshness")
    key_id = site["second_auditor_key"][4:20]
    from base.storage import Store

    cat = Catalog(f"sqlite:///{site['home'] / 'catalog.db'}", Store.local(site["home"]))
    Access(cat.engine, ttl=0).revoke_credential(key_id, actor="test")
    pg.goto(site["base"] + "/dashboard/freshness")
    assert "/dashboard/login" in pg.url
    ctx.close()


def test_pages_and_api_docs_run_under_their_csp(browser, site):
    """Nothing a page of its own needs is refused by its Content-Security-Policy (Chromium logs
    every refusal): the dashboard's pages, and /docs with its inline scripts admitted by hash
    (it loads Swagger UI from the exchange itself)."""
    ctx = browser.new_context()
    pg = ctx.new_page()
    refused = []
    pg.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    pg.goto(site["base"] + "/docs")
    pg.wait_for_load_state("load")
    _login(pg, site, site["auditor_key"], "/dashboard/audit")
    for path in ("/dashboard/", "/dashboard/freshness", "/dashboard/scorecards"):
        pg.goto(site["base"] + path)
    ctx.close()
    assert refused == []


# --- the users' language and clock, and pages that fit ----------------------------------------
MAIN_PAGES = {"overview": "/dashboard/", "dataset": f"/dashboard/datasets/{SMR}",
              "freshness": "/dashboard/freshness", "audit": "/dashboard/audit",
              "scorecards": "/dashboard/scorecards?period=week"}
CHINESE = {"overview": ("目录", "数据集", "证照类型", "共享属性", "最近运行"),
           "dataset": ("部门", "质量趋势", "隔离队列", "元数据变更记录", "根哈希"),
           "freshness": ("更新情况", "更新周期", "应更新时间", "隔离积压"),
           "audit": ("访问审计", "持证主体编号", "用途", "结果"),
           "scorecards": ("部门考核", "按时率", "质量通过率", "失败运行")}


def test_pages_are_chinese_first_and_english_on_request(browser, site):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")   # an English browser
    pg = ctx.new_page()
    _login(pg, site, site["auditor_key"])
    for name, path in MAIN_PAGES.items():
        pg.goto(site["base"] + path)
        assert pg.get_attribute("html", "lang") == "zh-CN", name
        body = pg.inner_text("main")
        for label in CHINESE[name]:
            assert label in body, (name, label)
        assert [pg.inner_text(f"#nav-{n}") for n in ("catalogue", "freshness", "audit", "scorecards")] == \
            ["目录", "更新情况", "访问审计", "考核"]
        assert pg.inner_text("form.who button") == "退出登录"
    pg.goto(site["base"] + "/dashboard/freshness")
    with pg.expect_navigation():
        pg.click("#lang-toggle")                                            # to English, and it sticks
    assert pg.url.endswith("/dashboard/freshness?lang=en")
    assert pg.get_attribute("html", "lang") == "en" and pg.inner_text("h1") == "Freshness"
    assert pg.locator(f"#freshness tr[data-dataset='{EDU}'] .state").first.inner_text() == "stale"
    pg.goto(f"{site['base']}/dashboard/datasets/{SMR}")
    assert pg.get_attribute("html", "lang") == "en"
    assert pg.inner_text("#sharing") == "unconditional" and pg.inner_text("#nav-catalogue") == "Catalogue"
    assert "is not a valid unified social credit code" in pg.inner_text("#quarantine-reasons")
    pg.goto(site["base"] + "/dashboard/?lang=zh")                           # and back
    assert pg.get_attribute("html", "lang") == "zh-CN" and pg.inner_text("h1") == "目录"
    pg.goto(site["base"] + "/dashboard/scorecards")
    assert pg.inner_text("h1") == "部门考核"
    ctx.close()


def test_times_are_shown_in_beijing_time(page, site):
    beijing = ZoneInfo("Asia/Shanghai")
    page.goto(site["base"] + "/dashboard/")
    assert "北京时间（UTC+08:00）" in page.inner_text("#zone")
    for key in ("r1", "r3"):
        run = site["runs"][key]
        started = run["started_at"].replace(tzinfo=UTC) if run["started_at"].tzinfo is None else run["started_at"]
        cell = page.locator(f"#latest-runs tr[data-run='{run['id']}'] td.started time")
        assert cell.inner_text() == started.astimezone(beijing).strftime("%Y-%m-%d %H:%M")
        stamp = cell.get_attribute("datetime")                               # the instant, with its offset
        assert stamp.endswith("+00:00") and stamp.startswith(started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"))
    published = site["versions"][0]["published_at"].replace(tzinfo=UTC)
    page.goto(f"{site['base']}/dashboard/datasets/{SMR}")
    assert page.locator("#versions tbody tr").first.locator("time").inner_text() == \
        published.astimezone(beijing).strftime("%Y-%m-%d %H:%M")


def test_pages_fit_1280_to_1920_px(browser, site):
    """No table is wider than its box, nor the page than the window; the 1440 px shots are the
    ones in docs/screens/ (DASHBOARD_SCREENSHOTS=docs/screens)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    _login(pg, site, site["auditor_key"])
    for width in (1280, 1440, 1920):
        pg.set_viewport_size({"width": width, "height": 900})
        for name, path in MAIN_PAGES.items():
            pg.goto(site["base"] + path)
            over = pg.eval_on_selector_all("table", "ts => ts.map(t => [t.id, t.scrollWidth, "
                                           "t.parentElement.clientWidth]).filter(([, w, box]) => w > box)")
            assert over == [], (width, name, over)
            page_width = pg.evaluate("document.documentElement.scrollWidth")
            assert page_width <= width, (width, name, page_width)
            if width == 1440:
                shot(pg, name, full_page=False)
    ctx.close()
