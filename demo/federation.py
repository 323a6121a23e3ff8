"""`exchange demo --federation`: two levels (issue #19). A district exchange (区县) publishes two
business-licence datasets (one conditional); a city exchange (市) pins the district's key,
mirrors both, and relies on them: a lookup, an offline verification against the district's
keys, a materials check, a revocation within one sync, the district's access report naming the
city's consumer, and the city's witness cosignatures. Each exchange is a whole one of its own
(home, catalogue, key, API port) under HOME/federation/, wiped and rebuilt each run, driven
by `exchange` subprocesses (demo/exchanges.py). Exit 0 only if every step held."""
from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from base.i18n import term_both
from demo.exchanges import CONDITIONAL, PURPOSE, UNCONDITIONAL, Exchange, district_sources
from trust.cosign import verify_cosignature

ITEM = PURPOSE                       # 特种设备使用登记(电梯): asks for the applicant's 营业执照
LICENCE = "营业执照"
STEPS = {1: "区县发布 (district publishes)", 2: "市级固定密钥并同步 (city pins the key and syncs)",
         3: "市级查询并离线验证 (city lookup, offline verification)",
         4: "材料核验 (materials check)", 5: "吊销在一次同步内到达 (revocation within one sync)",
         6: "区县访问报告 (district access report)", 7: "见证联署 (witness cosignatures)"}


SETUP = "准备两个平台 (setting up both exchanges)"


class StepFailed(Exception):
    """A check of the demo that did not hold."""


def expect(cond: object, what: str) -> None:
    if not cond:
        raise StepFailed(what)


@dataclass
class Demo:
    district: Exchange
    city: Exchange
    keys: dict[str, str] = field(default_factory=dict)
    holder: str = ""
    record_id: str = ""
    steps: list[dict] = field(default_factory=list)
    say: Callable[[str], None] = print


def _setup_district(ex: Exchange, d: Demo) -> None:
    district_sources(ex)
    for dept, name, role in (("city-ex", "市级共享平台", "exchange"), ("district-audit", "区审计局", "auditor")):
        ex.add_department(dept, name, role)
        d.keys[dept] = ex.issue_key(dept)
    ex.serve()


def _setup_city(ex: Exchange, d: Demo) -> None:
    ex.create_key()
    ex.add_department("city-market", "市市场监管局")
    d.keys["city-market"] = ex.issue_key("city-market")
    ex.serve()


def step1(d: Demo) -> dict:
    ex = d.district
    for source in ("district_smr", "district_smr_restricted"):
        ex.publish(source)
    agreement = ex.agree("city-ex", CONDITIONAL)
    listed = {x["dataset"]: x for x in ex.run("datasets", json=True)}
    datasets = {ds: {"version": listed[ds]["version"], "records": listed[ds]["records"],
                     "sharing": listed[ds]["sharing"]} for ds in (UNCONDITIONAL, CONDITIONAL)}
    depts = {x["id"]: x for x in ex.run("departments", "list", json=True)}
    kid = ex.kid()
    expect(all(v["version"] == 1 and v["records"] for v in datasets.values()), f"published: {datasets}")
    expect(depts.get("city-ex", {}).get("role") == "exchange", f"city-ex: {depts.get('city-ex')}")
    d.say("区县发布 (district published): " + "；".join(
        f"{ds} v{v['version']} {v['records']} 条 (records) {v['sharing']}" for ds, v in datasets.items()))
    d.say(f"对等平台部门 (peer exchange department) city-ex 市级共享平台 role exchange，密钥 (key) "
          f"{d.keys['city-ex'][:8]}…；共享协议 (agreement) #{agreement.get('agreement')} on {CONDITIONAL}；"
          f"区县签名密钥 (district kid) {kid}")
    return {"datasets": datasets, "peer_department": "city-ex", "peer_role": depts["city-ex"]["role"],
            "agreement": agreement.get("agreement"), "district_kid": kid}


def step2(d: Demo) -> dict:
    city = d.city
    added = city.peer_add("district", d.district, d.keys["city-ex"])
    pinned = [k["kid"] for k in added.get("keys") or []]
    expect(pinned == [d.district.kid()], f"pinned keys {pinned}")
    summary = city.sync("district")
    expect(summary["exit"] == 0 and summary["outcome"] == "ok", f"sync: {summary}")
    peers = city.run("peers", "list", json=True)
    mirrors = {m["dataset"]: {"version": m["version"], "state": m["state"]} for m in peers[0]["mirrors"]}
    expect(mirrors == {UNCONDITIONAL: {"version": 1, "state": "ok"}, CONDITIONAL: {"version": 1, "state": "ok"}},
           f"mirrors {mirrors}")
    d.say(f"市级固定区县密钥 (city pinned the district's key) {pinned[0]}（凭据 (credential) Airflow 连接 "
          f"AIRFLOW_CONN_PEER_DISTRICT）；同步 (sync): {summary['outcome']}，"
          + "；".join(f"{x['dataset']} v{x['from'] or 0}→v{x['to']} {x['records']} 条" for x in summary["datasets"]))
    return {"pinned": pinned, "outcome": summary["outcome"], "last_outcome": peers[0].get("last_outcome"),
            "mirrors": mirrors, "synced": summary["datasets"]}


def step3(d: Demo, scratch: Path) -> dict:
    city, district, key = d.city, d.district, d.keys["city-market"]
    for ds in (UNCONDITIONAL, CONDITIONAL):       # the city's own grants, on the mirrored datasets
        city.grant("city-market", ds)
    d.holder = district.holders("district_smr")[0]
    found = [r for r in city.lookup(key, d.holder)["records"] if r["dataset"] == UNCONDITIONAL]
    expect(len(found) == 1 and found[0]["status"] == "valid", f"lookup at the city: {found}")
    d.record_id = found[0]["record_id"]
    bundle = city.export(key, d.record_id, scratch / "bundle.json")
    ok = city.verify(bundle, *district.key_material(scratch))
    wrong = city.verify(bundle, *city.key_material(scratch))
    expect(ok.returncode == 0 and json.loads(ok.stdout).get("verified") is True,
           f"against the district's JWKS: exit {ok.returncode} {ok.stdout[-300:]}{ok.stderr[-300:]}")
    expect(wrong.returncode == 8, f"against the city's own JWKS: exit {wrong.returncode} (8 expected)")
    d.say(f"市级部门 city-market 查询 (looked up) {d.holder}：{LICENCE} {found[0]['record_id']} "
          f"{found[0].get('licence_number')} 有效 (valid)；证明包用区县 JWKS 验证 (verifies against the "
          f"district's JWKS)：是 (yes)；用市级自己的 JWKS (against the city's own)：否 (no, exit 8)")
    return {"holder": d.holder, "record_id": d.record_id, "status": found[0]["status"],
            "verified_with_district_jwks": True, "verified_with_city_jwks": False, "wrong_exit": wrong.returncode}


def step4(d: Demo) -> dict:
    r = requests.post(f"{d.city.url}/v1/items/{ITEM}/materials-check", params={"purpose": ITEM},
                      json={"holder_id": d.holder}, timeout=30,
                      headers={"Authorization": f"Bearer {d.keys['city-market']}"})
    expect(r.status_code == 200, f"materials-check: HTTP {r.status_code} {r.text[:300]}")
    answers = {m["material"]: m["answer"] for m in r.json()["materials"]}
    expect(answers.get(LICENCE) == "held", f"answers {answers}")
    d.say(f"材料核验 (materials check) {ITEM} at the city：" + "，".join(f"{k} → {v}" for k, v in answers.items()))
    return {"item": ITEM, "answers": answers}


def step5(d: Demo) -> dict:
    district, city = d.district, d.city
    district.revoke_licence("district_smr", d.holder)
    run = district.publish("district_smr")
    version = next(x["version"] for x in district.run("datasets", json=True) if x["dataset"] == UNCONDITIONAL)
    before = [r["status"] for r in city.lookup(d.keys["city-market"], d.holder)["records"]
              if r["record_id"] == d.record_id]
    summary = city.sync("district")
    expect(summary["exit"] == 0 and summary["outcome"] == "ok", f"sync: {summary}")
    after = [r["status"] for r in city.lookup(d.keys["city-market"], d.holder)["records"]
             if r["record_id"] == d.record_id]
    expect(before == ["valid"] and after == ["revoked"], f"status at the city before/after the sync: {before}/{after}")
    d.say(f"区县吊销并发布 (district revoked and published) v{version}（run {run.get('state')}）；"
          f"市级同步前 (before the sync) {term_both('record', before[0])}，"
          f"同步后 (after) {term_both('record', after[0])}；"
          f"送达访问报告 (access reports delivered) {summary.get('reports')}")
    return {"district_version": version, "before": before[0], "after": after[0],
            "reports_delivered": summary.get("reports")}


def step6(d: Demo) -> dict:
    r = requests.post(f"{d.district.url}/v1/holders/access-report", params={"purpose": ITEM},
                      json={"holder_id": d.holder}, timeout=30,
                      headers={"Authorization": f"Bearer {d.keys['district-audit']}"})
    expect(r.status_code == 200, f"access-report: HTTP {r.status_code} {r.text[:300]}")
    entries = r.json()["accesses"]
    via = [e for e in entries if e.get("department") == "city-ex"]
    seen = {(e.get("on_behalf_of"), e.get("purpose"), e.get("action")) for e in via}
    expect(any(who == "city-market" and why == ITEM for who, why, _ in seen),
           f"no city-ex entry on behalf of city-market for {ITEM}: {entries[:5]}")
    d.say("区县审计查看访问报告 (district auditor's access report)：" + "；".join(
        f"city-ex 代表 (on behalf of) {who} 用途 (purpose) {why} {action}" for who, why, action in sorted(seen)))
    return {"entries": len(entries), "peer_entries": [{"department": "city-ex", "on_behalf_of": who,
                                                       "purpose": why, "action": action}
                                                      for who, why, action in sorted(seen)]}


def step7(d: Demo) -> dict:
    r = d.city.get("/v1/federation/cosignatures")
    expect(r.status_code == 200, f"cosignatures: HTTP {r.status_code} {r.text[:300]}")
    doc = r.json()
    rows = [c for c in doc["cosignatures"] if c["peer"] == "district"]
    verified = []
    for c in rows:
        verify_cosignature(c["checkpoint"], c["cosignature"], doc["verifier_key"])
        expect(d.district.origin in c["checkpoint"].split("\n", 1)[0],
               f"checkpoint not the district's: {c['checkpoint'][:80]!r}")
        verified.append(f"{c['dataset']} v{c['version']}")
    want = {f"{UNCONDITIONAL} v1", f"{UNCONDITIONAL} v2", f"{CONDITIONAL} v1"}
    expect(want <= set(verified), f"cosigned {verified}, expected at least {sorted(want)}")
    d.say(f"市级见证联署 (city's witness cosignatures) {doc['witness']}：{len(verified)} 条均验证通过 "
          f"(all verify): {', '.join(sorted(verified))}")
    return {"witness": doc["witness"], "verifier_key": doc["verifier_key"], "verified": sorted(verified)}


def run(folder: Path, say: Callable[[str], None] = print) -> dict:
    """Both exchanges under folder (wiped first); the seven steps. The summary: "ok", "steps"
    ({"step","title","ok","facts"|"error"}), "failed" (the first failed step or None)."""
    t0 = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    d = Demo(Exchange("district", folder), Exchange("city", folder), say=say)
    summary: dict[str, Any] = {"folder": str(folder), "steps": [], "failed": None}
    try:
        try:
            with ThreadPoolExecutor(2) as pool:
                for f in [pool.submit(_setup_district, d.district, d), pool.submit(_setup_city, d.city, d)]:
                    f.result()
        except Exception as exc:     # noqa: BLE001 — named as step 0
            summary["steps"].append({"step": 0, "title": SETUP, "ok": False,
                                     "error": f"{type(exc).__name__}: {exc}"[:2000]})
            summary["failed"] = 0
            return _done(summary, t0)
        summary["exchanges"] = {ex.name: {"url": ex.url, "origin": ex.origin, "home": str(ex.home)}
                                for ex in (d.district, d.city)}
        scratch = folder / "scratch"
        scratch.mkdir()
        steps: list[Callable[[], dict]] = [lambda: step1(d), lambda: step2(d), lambda: step3(d, scratch),
                                           lambda: step4(d), lambda: step5(d), lambda: step6(d), lambda: step7(d)]
        for n, step in enumerate(steps, 1):
            say(f"第 {n} 步 (step {n})：{STEPS[n]}")
            try:
                summary["steps"].append({"step": n, "title": STEPS[n], "ok": True, "facts": step()})
            except Exception as exc:     # noqa: BLE001 — the demo names the step that failed
                summary["steps"].append({"step": n, "title": STEPS[n], "ok": False,
                                         "error": f"{type(exc).__name__}: {exc}"[:2000]})
                summary["failed"] = n
                break
    finally:
        d.district.close()
        d.city.close()
    return _done(summary, t0)


def _done(summary: dict, t0: float) -> dict:
    summary["ok"] = summary["failed"] is None and len(summary["steps"]) == len(STEPS)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    return summary


def run_federation_demo(as_json: bool = False, folder: Path | None = None) -> int:
    from base.settings import get_settings  # the home (.state, or EXCHANGE_HOME)

    console = Console(stderr=as_json, width=None if sys.stdout.isatty() else 120)
    folder = folder or get_settings().home / "federation"
    console.print(f"两级互认演示 (two-level federation demo)：区县 (district) → 市 (city)，位于 (under) {folder}",
                  markup=False)
    summary = run(folder, say=lambda text: console.print(text, markup=False, soft_wrap=True))
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=1))
    else:
        _table(console, summary)
    if not summary["ok"]:
        bad = summary["steps"][-1]
        console.print(f"第 {bad['step']} 步未通过 (step {bad['step']} failed)：{bad['title']}：{bad.get('error')}",
                      markup=False, soft_wrap=True)
        return 1
    return 0


def _table(console: Console, s: dict) -> None:
    t = Table(title=f"两级互认 (two levels)：区县 → 市，{s['seconds']} s")
    for c in ("步骤 (step)", "检查 (check)", "结果 (outcome)", "要点 (facts)"):
        t.add_column(c)
    for st in s["steps"]:
        facts = st.get("facts") or {}
        t.add_row(str(st["step"]), st["title"], "通过 (held)" if st["ok"] else "未通过 (FAILED)",
                  _brief(st["step"], facts) if st["ok"] else st.get("error", "")[:300])
    console.print(t)


def _brief(n: int, f: dict) -> str:
    if n == 1:
        return "；".join(f"{ds} v{v['version']} ({v['records']})" for ds, v in f["datasets"].items()) \
            + f"；agreement #{f['agreement']}；kid {f['district_kid'][:12]}…"
    if n == 2:
        return "；".join(f"{ds} v{m['version']} {m['state']}" for ds, m in f["mirrors"].items())
    if n == 3:
        return f"{f['holder']} → {f['record_id']}；区县 JWKS 验证通过，市级 JWKS 拒绝 (exit {f['wrong_exit']})"
    if n == 4:
        return f"{f['item']}：{LICENCE} → 平台持有 (held)" if f["answers"].get(LICENCE) == "held" else str(f)
    if n == 5:
        return (f"区县 (district) v{f['district_version']}；市级 (city) {term_both('record', f['before'])} → "
                f"{term_both('record', f['after'])}")
    if n == 6:
        return "；".join(f"city-ex / {e['on_behalf_of']} / {e['purpose']} / {e['action']}" for e in f["peer_entries"])
    return f"{len(f['verified'])} 条联署验证通过 (cosignatures verified)"
