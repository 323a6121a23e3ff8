"""The demo's consumer after the runs: the transport bureau subscribes to the sample holder's
records for a case, objects to the sample record (数据异议), which shows it disputed; market
regulation's steward upholds it; the objection's outcome reaches the bureau as a signed change
notice, read back by replay and verified offline. Run again, it shows what it did the first time."""
from __future__ import annotations

from catalog.serving import objections
from catalog.serving.access import Caller
from catalog.serving.consumer import Consumer
from catalog.serving.subscriptions import Subscriptions
from exchange import notifying
from exchange.catalogue import open_access
from trust.notices import verify_notice

CASE = "case:DEMO-2026-0001"
REASON = "申请人出示的营业执照住所与共享记录不一致 (the address on the licence the applicant showed differs)"
ANSWER = "经核对源系统，登记住所以共享记录为准 (checked at the source: the shared record is current)"
STEWARD = "市场监督管理局 数据管理员 (market regulation's steward, demo)"


def exercise(catalog, consumer_dept: str, item: str, holder: str, record_id: str, jwks: dict) -> dict:
    access = open_access(catalog)
    consumer = Consumer(catalog, access)
    caller = Caller(consumer_dept, "consumer", "demo")
    subs = Subscriptions(consumer)
    if not any(s["holder"] == holder for s in subs.list(caller, CASE)):
        subs.add(caller, CASE, holder_id=holder, days=30)
    mine = [o for o in objections.find(catalog.engine, objector=consumer_dept) if o["record_id"] == record_id]
    disputed = None
    if not mine:
        filed = consumer.file_objection(caller, item, record_id, REASON)
        disputed = next(r["disputed"] for r in catalog.lookup(holder) if r["record_id"] == record_id)
        objections.resolve(catalog.engine, filed["id"], "upheld", ANSWER, by=STEWARD)
        mine = [objections.get(catalog.engine, filed["id"])]
    notifying.sweep()          # fan-out, objection outcomes, delivery (the bureau reads by replay)
    told = [n for n in subs.page(caller, CASE)["notices"] if n["type"].startswith("cn.gov.exchange.objection.")]
    notice = told[-1] if told else None
    verified = notice is not None and verify_notice(notice["body"].encode(), notice["signature"], jwks)["id"] \
        == notice["event"]["id"]
    o = mine[-1]
    return {"objection": {k: o[k] for k in ("id", "record_id", "state", "filed_at", "due_at", "resolution")},
            "disputed_while_open": disputed,
            "notice": None if notice is None else {"seq": notice["seq"], "type": notice["type"],
                                                   "state": notice["state"], "verified": verified}}
