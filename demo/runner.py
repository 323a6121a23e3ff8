"""The demo: six department silos of five kinds, registered, each DAG run under real Airflow,
summarised, with one verified sample lookup."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

import registration
from base import clock
from base.airflow_env import airflow_env
from base.errors import ExchangeError
from base.i18n import term, term_both
from base.settings import ROOT, get_settings
from catalog import registrations
from catalog.ledger import monitoring
from catalog.serving.access import Caller
from catalog.serving.consumer import Consumer
from demo import http_silo
from demo.departments import api_token, make
from demo.objection_notice import exercise
from demo.synth import make_business_licence_silo
from exchange import airflow_connections, sources
from exchange.catalogue import open_access, open_catalog, open_ledger
from exchange.signing_keys import create_signing_key
from quality.reasons import explain
from trust.verify import verify_bundle

SOURCE = "smr_business_licence"
TEMPLATE = ROOT / "demo" / "registrations" / f"{SOURCE}.toml"
CONSUMER, ITEM = "transport", "DJ-SCJG-0003"     # a consuming department and a service item it serves


def airflow(args: list[str], log: Path, extra_env: dict | None = None) -> None:
    env = {**airflow_env(), **(extra_env or {})}
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("airflow")
    with log.open("a", encoding="utf-8") as out:
        proc = subprocess.run([str(exe), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise ExchangeError(f"`airflow {' '.join(args)}` failed (exit {proc.returncode}); see {log}")


def prepare(rows: int, seed: int = 7, today: date | None = None) -> registration.Registration:
    """The market-regulation SQLite silo and its registration (the first department)."""
    s = get_settings()
    silo = s.home / "silos" / "market_regulation.db"
    silo.parent.mkdir(parents=True, exist_ok=True)
    make_business_licence_silo(silo, rows, seed=seed, today=today)
    s.sources_dir.mkdir(parents=True, exist_ok=True)
    path = s.sources_dir / f"{SOURCE}.toml"
    path.write_text(TEMPLATE.read_text(encoding="utf-8").replace("{silo}", str(silo)), encoding="utf-8")
    sources.store_file(path)             # in the catalogue, which every DAG parse and task reads
    return registration.load(path)


def prepare_departments(rows: int, today: date | None = None):
    """The other departments' silos (PostgreSQL, MariaDB, HTTP API, GBK CSV, XLSX). A drop
    export the exchange already took is not delivered again (made again, it is the same)."""
    s = get_settings()
    silos = make(s.home, rows, taken=open_ledger().taken_files, today=today)
    for source_id, text in silos.registrations.items():
        path = s.sources_dir / f"{source_id}.toml"
        path.write_text(text, encoding="utf-8")
        sources.store_file(path)
    return silos


def store_connections(silos) -> None:
    """The silos' connections in Airflow's metadata database, not only in this process's
    environment: they outlive the demo, and `./run serve`'s scheduled runs find them."""
    airflow_connections.put(silos.connections)


@contextmanager
def silo_api(silos, log: Path):
    """The human-resources silo's HTTP API, as its own process, for the length of the runs;
    started as `./run serve` starts it (port and token from its Airflow connection). One
    already answering there with the demo's token (`./run serve`'s) is used as it is."""
    s = get_settings()
    made = http_silo.command(s.home) if silos.api else None
    if not made:
        yield
        return
    port = silos.api["port"]
    if _listening(port):
        if not _answers_as_demo_silo(port, api_token(s.home)):
            raise ExchangeError(f"port {port} on 127.0.0.1 is taken by something other than the demo's "
                                "silo API: stop it or set EXCHANGE_DEMO_API_PORT")
        yield
        return
    with log.open("a", encoding="utf-8") as out:
        proc = subprocess.Popen(made[1], env=airflow_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, log)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _answers_as_demo_silo(port: int, token: str) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/licences", params={"limit": 1}, timeout=5,
                            headers={"Authorization": f"Bearer {token}"}).status_code == 200
    except requests.RequestException:
        return False


def _wait_for_port(port: int, proc, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if _listening(port):
            return
        time.sleep(0.2)
    raise ExchangeError(f"the demo silo API did not start on 127.0.0.1:{port}; see {log}")


def run_sources(source_ids: list[str], regs: dict, silos, console, log: Path) -> None:
    """Each source's DAG under Airflow, one after the other; a line as each finishes (flushed,
    so a log or a pipe sees progress, not three silent minutes)."""
    ledger = open_ledger()
    for source_id in source_ids:
        kind = (silos.kinds.get(source_id) if silos else None) or "sqlite"
        with console.status(f"正在 Airflow 中运行 DAG (running) {regs[source_id].dag_id} (log: {log})"):
            try:
                airflow(["dags", "test", regs[source_id].dag_id], log)
            except ExchangeError:
                console.print(f"{source_id} ({kind}): failed 失败 — 日志 (log) {log}", markup=False, soft_wrap=True)
                raise
        run = ledger.runs(source_id, limit=1)[0]
        console.print(f"{source_id} ({kind}): {run['state']} {term('run', run['state'])} 版本 v{run['version']} — "
                      f"抽取 (extracted) {run['extracted'] or 0:,} = 通过 (accepted) {run['accepted'] or 0:,} + "
                      f"隔离 (quarantined) {run['quarantined'] or 0:,}" + _carried(run), markup=False, soft_wrap=True)


def _carried(run: dict) -> str:
    """A run that carried unchanged rows over (exchange/row_state.py): how many it checked."""
    if not run.get("carried"):
        return ""
    return f"；复查 (checked) {run['checked'] or 0:,}，沿用未变 (carried unchanged) {run['carried']:,}"


def run_demo(rows: int = 10_000, as_json: bool = False, departments: bool = True,
             today: date | None = None) -> int:
    """today: the date the silos' data are made as of and checked as of (default: the clock's)."""
    today = today or clock.today()              # read once: the silos and their DAG runs share it
    os.environ[clock.TODAY_ENV] = today.isoformat()   # inherited by `airflow dags test`

    console = Console(stderr=as_json, width=None if sys.stdout.isatty() else 120)
    s = get_settings()
    s.key_passphrase()   # fail early, before any work, if the passphrase is missing
    log = s.home / "demo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    if (kid := create_signing_key(exist_ok=True)) is not None:   # as `exchange keys create` does
        console.print(f"已生成签名密钥 (made the signing key) {kid} (exchange keys create)", markup=False)
    with console.status("正在生成市场监管局的数据源 (making the market-regulation silo)"):
        reg = prepare(rows, today=today)
    silos = None
    if departments:
        with console.status("正在生成其他部门的数据源 (making the other departments' silos)"):
            silos = prepare_departments(max(1_000, rows // 5), today)
        for note in silos.notes:
            console.print(f"提示 (note): {note}", markup=False)
    with console.status("正在准备 Airflow 元数据库 (preparing Airflow's metadata database)"):
        airflow(["db", "migrate"], log)
        if silos:
            store_connections(silos)
    regs = registrations.load_all(s.catalog_url)
    ours = [SOURCE, *(silos.registrations if silos else [])]
    console.print(f"已生成数据源 (silos made): {len(ours)} 个；依次在 Airflow 中运行它们的 DAG "
                  f"(running their DAGs under Airflow one after another; log: {log})", markup=False, soft_wrap=True)
    with silo_api(silos, log) if silos else _nothing():
        run_sources(ours, regs, silos, console, log)
    catalog, ledger = open_catalog(), open_ledger()
    datasets = {d["dataset"]: d for d in catalog.datasets()}
    sources = []
    for source_id in ours:
        run = ledger.runs(source_id, limit=1)[0]
        r = regs[source_id]
        sources.append({"source": source_id, "department": r.department_name or r.department,
                        "silo": (silos.kinds.get(source_id) if silos else None) or "sqlite",
                        "certificate_type": r.certificate_type, "state": run["state"],
                        "extracted": run["extracted"], "accepted": run["accepted"],
                        "quarantined": run["quarantined"], "dataset": r.dataset,
                        "version": datasets[r.dataset]["version"]})
    main_run = ledger.runs(SOURCE, limit=1)[0]
    ds = datasets[reg.dataset]
    sample = catalog.sample_holder(reg.dataset)
    records = catalog.lookup(sample) if sample else []
    bundle = catalog.bundle(records[0]["record_id"]) if records else None
    jwks = json.loads(s.jwks_path.read_text(encoding="utf-8"))
    verified = verify_bundle(bundle, jwks) if bundle else None
    check = _consume(catalog, sample) if sample else None
    objected = exercise(catalog, CONSUMER, ITEM, sample, records[0]["record_id"], jwks) if records else None
    summary = {
        "source": SOURCE, "dag_id": reg.dag_id, "airflow_run": main_run["run_key"],
        "state": main_run["state"], "extracted": main_run["extracted"],
        "accepted": main_run["accepted"], "quarantined": main_run["quarantined"],
        "top_reasons": dict(list((main_run["reasons"] or {}).items())[:5]),
        "dataset": reg.dataset, "version": ds["version"], "records": ds["records"],
        "root_hash": ds["root_hash"], "sample_holder": sample, "sample_records": records,
        "sample_bundle_verified": verified is not None, "sources": sources,
        "notes": silos.notes if silos else [],
        "materials_check": check, "objection_and_notice": objected,
        "freshness": {f["dataset"]: f["state"] for f in monitoring.freshness(catalog)},
        "scorecards": monitoring.scorecards(catalog, "month"),
    }
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return 0
    _print_summary(console, summary)
    return 0


def _consume(catalog, holder: str) -> dict:
    """The transport bureau serves the sample holder: a materials check for registering a lift
    (item DJ-SCJG-0003 needs the business licence) — a real, audited consumer request."""
    access = open_access(catalog)
    access.add_department(CONSUMER, "交通运输局", actor="demo")
    check = Consumer(catalog, access).materials(Caller(CONSUMER, "consumer", "demo"), ITEM, ITEM,
                                                holder, {})
    return {"item": ITEM, "department": CONSUMER, "answers": {m["material"]: m["answer"]
                                                              for m in check["materials"]}}


def _print_objection(console, x: dict) -> None:
    o, n = x["objection"], x["notice"]
    console.print(f"数据异议 (objection) #{o['id']}：交通运输局对记录 {o['record_id']} 提出异议，"
                  f"提出于 (filed) {o['filed_at']}，期限 (due) {o['due_at']}"
                  + ("，期间查询显示 有异议 (disputed)" if x["disputed_while_open"] else "")
                  + f"；处理结果 (outcome)：{term_both('objection', o['state'])}：{o['resolution']}", markup=False)
    if n:
        console.print(f"变更通知 (change notice) seq {n['seq']} {n['type']}（{term_both('notice', n['state'])}，"
                      f"经回放读取 (read by replay)）：签名离线验证 (signature verified offline)："
                      + ("是 (yes)" if n["verified"] else "否 (NO)"), markup=False)


@contextmanager
def _nothing():
    yield


def _print_summary(console, s: dict) -> None:
    t = Table(title="在 Airflow 中运行的数据源 (sources run under Airflow)：抽取 = 通过 + 隔离")
    for c in ("部门 (department)", "数据源 (silo)", "证照类型 (certificate type)", "运行 (run)",
              "抽取 (extracted)", "通过 (accepted)", "隔离 (quarantined)", "版本 (version)"):
        t.add_column(c, justify="right" if c[0] in "抽通隔版" else "left")
    for r in s["sources"]:
        t.add_row(r["department"], r["silo"], r["certificate_type"], term_both("run", r["state"]),
                  f"{r['extracted']:,}", f"{r['accepted']:,}", f"{r['quarantined']:,}", str(r["version"]))
    console.print(t)
    if s["sources"] and all(r["state"] == "unchanged" for r in s["sources"]):
        console.print("自上次运行以来没有新数据 (nothing new since the last run)：各数据源未变，"
                      "没有发布新版本，上表的版本仍然有效。")
    t = Table(title=f"主要隔离原因 (top quarantine reasons)，{s['source']}")
    t.add_column("原因 (reason)")
    t.add_column("行数 (rows)", justify="right")
    for reason, n in s["top_reasons"].items():
        t.add_row(explain(reason), f"{n:,}")
    console.print(t)
    console.print(f"数据集 (dataset) [bold]{s['dataset']}[/] 版本 (version) {s['version']}：{s['records']:,} "
                  f"条已签名记录 (signed records)，根哈希 (root) {s['root_hash'][:16]}…")
    console.print(f"查询示例 (sample lookup)：持证主体 (holder) {s['sample_holder']}")
    for r in s["sample_records"]:
        console.print(f"  {r['record_id']}  {r['title']}  {r['licence_number']}  "
                      f"{r['holder_name']}  状态 (status): {term_both('record', r['status'])}", markup=False)
    console.print("导出的证明包可用 JWKS 离线验证 (its exported bundle verifies offline against the JWKS)："
                  + ("是 (yes)" if s["sample_bundle_verified"] else "否 (NO)"))
    if s["materials_check"]:
        m = s["materials_check"]
        console.print(f"材料核验 (materials check)：{m['department']} 办理事项 (item) {m['item']}："
                      + "，".join(f"{k} → {v}" for k, v in m["answers"].items()), markup=False)
    if s["objection_and_notice"]:
        _print_objection(console, s["objection_and_notice"])
    t = Table(title="月度通报 (monthly bulletin, exchange scorecard --period month)")
    for c in ("部门 (department)", "按时更新的数据集 (datasets on time)", "通过率 (rows passing)",
              "待处理隔离 (backlog)", "被其他部门使用 (consumed by others)", "免交材料 (materials saved)"):
        t.add_column(c, justify="left" if c.startswith("部门") else "right")
    for c in s["scorecards"]:
        t.add_row(c["department_name"], f"{c['on_time']}/{c['datasets']}",
                  "—" if c["quality_pass_share"] is None else f"{c['quality_pass_share']:.1%}",
                  f"{c['backlog']:,}", f"{c['records_consumed']:,}", f"{c['materials_saved']:,}")
    console.print(t)
    console.print("接下来可以试试 (try; lookup/export 以部门身份查询，EXCHANGE_API_KEY=<`exchange credentials issue` "
                  "签发的密钥>)：./run exchange lookup HOLDER_ID --purpose DJ-SCJG-0003 | "
                  "export RECORD_ID --purpose DJ-SCJG-0003 -o b.json | "
                  "verify b.json | datasets | status | scorecard | items | audit-chain DATASET")
