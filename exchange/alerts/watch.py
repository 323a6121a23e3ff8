"""The freshness watch (DAG `exchange_watch`, or `exchange watch`): alert once when a dataset turns
late or stale, and once when it is fresh again. What was already said is read back from the
catalogue's alerts, so a second check in the same state says nothing."""
from __future__ import annotations

from datetime import datetime

from base.settings import get_settings
from catalog.ledger import monitoring
from catalog.ledger.service import Ledger
from exchange.alerts import Alert, send

TURNS = ("late", "stale")


def decide(state: str, said: str | None) -> str | None:
    """The alert to raise for a dataset in `state` when `said` was the last freshness alert."""
    if state in TURNS and said != state:
        return state
    if state == "fresh" and said in TURNS:
        return "recovered"
    return None


def _message(f: dict, kind: str) -> str:
    if kind == "recovered":
        return f"refreshed {f['last_refresh']}; next due {f['due_at']}"
    text = (f"not refreshed since {f['last_refresh']}, due {f['due_at']} "
            f"({f['overdue_hours']} h overdue, update cycle {f['update_cycle']})")
    if f.get("last_run_state") == "failed" and f.get("last_run_message"):
        text += f"; last run failed: {f['last_run_message']}"
    return text


def check(ledger=None, settings=None, now: datetime | None = None) -> list[dict]:
    """Compute freshness, alert on every change of state, return the alerts raised."""
    if settings is None:
        settings = get_settings()
    if ledger is None:
        ledger = Ledger(settings.catalog_url)
    said = ledger.said_freshness()
    raised = []
    for f in monitoring.freshness(ledger, now):
        kind = decide(f["state"], said.get(f["dataset"]))
        if kind is None:
            continue
        sources = f["sources"]
        alert = Alert(kind, f["dataset"], source=sources[0] if len(sources) == 1 else None,
                      dag_id=f"source__{sources[0]}" if len(sources) == 1 else None,
                      state=f["state"], freshness=f["state"], message=_message(f, kind))
        delivered = send(alert, settings, ledger)
        raised.append({**alert.payload(settings), "delivered": delivered})
    return raised
