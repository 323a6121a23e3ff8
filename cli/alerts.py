"""`exchange alerts`: recent alerts; `exchange watch`: check freshness once and alert on changes."""
from __future__ import annotations

from base import times
from base.settings import get_settings
from cli import emit, ledger
from exchange.alerts.channels import channels


def cmd_alerts(args) -> int:
    rows = ledger().alerts(limit=args.limit, dataset=args.dataset)
    for r in rows:
        r["at"] = times.iso(r["at"], "seconds")
    if not args.json:
        for r in rows:
            r["delivered_to"] = ", ".join(d["channel"] + ("" if d["ok"] else f" (failed: {d['error']})")
                                          for d in r["delivered"] or [])
            r["what"] = " ".join(filter(None, (r["dataset_id"], r["task_id"] and f"task {r['task_id']}")))
    emit(args, rows, "Recent alerts (newest first)", ["at", "kind", "what", "message", "delivered_to"])
    return 0


def cmd_watch(args) -> int:
    from exchange.alerts.watch import check  # lazy: CLI start (the catalogue imports pyarrow)

    channels(get_settings())          # a bad EXCHANGE_ALERTS is a configuration error here
    raised = check(ledger())
    emit(args, raised, "Freshness alerts raised now (none: nothing changed)",
         ["kind", "dataset", "source", "freshness", "message"])
    return 0


def register(add) -> None:
    sp = add("alerts", cmd_alerts, "recent alerts: failed and overrunning runs, late and stale datasets")
    sp.add_argument("--limit", type=int, default=50)
    sp.add_argument("--dataset", help="only this dataset's alerts")
    add("watch", cmd_watch, "check every dataset's freshness once; alert when one turned late, "
                            "stale or fresh again (what the exchange_watch DAG runs)")
