"""`exchange alerts`: recent alerts; `exchange watch`: check freshness once and alert on changes."""
from __future__ import annotations

from base import times
from base.i18n import both, t
from base.settings import get_settings
from cli import emit, ledger
from exchange.alerts.channels import channels


def cmd_alerts(args) -> int:
    rows = ledger().alerts(limit=args.limit, dataset=args.dataset)
    for r in rows:
        r["at"] = times.iso(r["at"], "seconds")
    if not args.json:
        for r in rows:
            r["delivered_to"] = ", ".join(
                d["channel"] + ("" if d["ok"] else t("cli.msg.delivery_failed", error=d["error"]))
                for d in r["delivered"] or [])
            task = r["task_id"] and t("cli.msg.task", task=r["task_id"])
            r["what"] = " ".join(filter(None, (r["dataset_id"], task)))
    emit(args, rows, both("cli.title.alerts"), ["at", "kind", "what", "message", "delivered_to"], {"kind": "alert"})
    return 0


def cmd_watch(args) -> int:
    from exchange.alerts.watch import check  # lazy: CLI start (the catalogue imports pyarrow)

    channels(get_settings())          # a bad EXCHANGE_ALERTS is a configuration error here
    raised = check(ledger())
    emit(args, raised, both("cli.title.watch"), ["kind", "dataset", "source", "freshness", "message"],
         {"kind": "alert"})
    return 0


def register(add) -> None:
    sp = add("alerts", cmd_alerts, both("cli.help.alerts"))
    sp.add_argument("--limit", type=int, default=50, help=both("cli.arg.limit"))
    sp.add_argument("--dataset", help=both("cli.arg.alerts_dataset"))
    add("watch", cmd_watch, both("cli.help.watch"))
