"""Objections (数据异议) for stewards and the watch: `exchange objections`, `exchange departments
objection-days`, and the overdue alert of the `exchange_watch` DAG (catalog/serving/objections.py
holds the rules)."""
from __future__ import annotations

from datetime import datetime

from base.settings import get_settings
from catalog.serving import objections
from exchange.alerts import Alert, send
from exchange.catalogue import open_catalog, open_ledger


def find(dataset: str | None = None, department: str | None = None, state: str | None = None,
         overdue: bool = False, now: datetime | None = None) -> list[dict]:
    return objections.find(open_catalog().engine, dataset, department, state, overdue, now=now)


def resolve(objection_id: int, outcome: str, reason: str | None, by: str,
            now: datetime | None = None) -> dict:
    return objections.resolve(open_catalog().engine, objection_id, outcome, reason, by, now)


def set_days(department: str, days: int, actor: str = "operator") -> dict:
    return objections.set_days(open_catalog().engine, department, days, actor)


def _message(o: dict) -> str:
    return (f"objection #{o['id']} by {o['department']} on record {o['record_id']} is {o['state']}, "
            f"due {o['due_at']}: answer it with `exchange objections resolve {o['id']} --corrected` "
            f"or `--upheld --reason TEXT`")


def check_overdue(now: datetime | None = None, settings=None) -> list[dict]:
    """One `objection_overdue` alert for each unresolved objection past its deadline, once."""
    settings = settings or get_settings()
    ledger = open_ledger(settings)
    raised = []
    for o in objections.claim_overdue(ledger.engine, now):
        alert = Alert("objection_overdue", o["dataset"], state=o["state"], message=_message(o))
        raised.append({**alert.payload(settings), "objection": o["id"], "delivered": send(alert, settings, ledger)})
    return raised
