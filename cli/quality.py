"""The quarantine queue and run approvals:
`exchange quarantine DATASET`, `exchange quarantine review DATASET KEY --by NAME --note TEXT`,
`exchange approve SOURCE RUN_KEY --by NAME --note TEXT`."""
from __future__ import annotations

import json

from base import times
from base.errors import ConfigError
from base.i18n import both, t, term_both
from cli import emit, table
from cli.watch import following


def cmd_quarantine(args) -> int:
    if args.words[0] == "review":
        return _review(args)
    if len(args.words) != 1:
        raise ConfigError(t("cli.error.usage_quarantine"))
    from exchange import quarantine  # lazy: CLI start (the catalogue imports pyarrow)

    dataset = args.words[0]
    entries, summary = quarantine.queue(dataset, args.all, args.samples)
    if args.json:
        print(json.dumps({"dataset": dataset, **summary, "entries": entries},
                         ensure_ascii=False, indent=1, default=times.json_default))
        return 0
    states = "，".join(f"{term_both('quarantine', s)} {n}" for s, n in summary["by_state"].items())
    print(t("cli.msg.queue", dataset=dataset, rows=summary["rows"], states=f"：{states}" if states else ""))
    if summary["holding_published_records"]:
        print(t("cli.msg.queue_holding", n=summary["holding_published_records"]))
    texts = summary["reason_texts"]
    table(both("cli.title.by_reason"), [{"reason": texts[r], "rows": n} for r, n in summary["by_reason"].items()],
          ["reason", "rows"])
    picked = {k for keys in summary["samples"].values() for k in keys}
    table(both("cli.title.samples"), [{**e, "reasons": "；".join(texts.get(r, r) for r in e["reasons"])}
                                      for e in entries if e["key"] in picked],
          ["key", "row_hash", "state", "reasons", "values", "held_record_id", "review_note"],
          {"state": "quarantine"})
    return 0


def _review(args) -> int:
    if len(args.words) != 3 or not args.by or not args.note:
        raise ConfigError(t("cli.error.usage_review"))
    _, dataset, key = args.words
    from exchange import quarantine  # lazy: CLI start (the catalogue imports pyarrow)

    out = quarantine.review(dataset, key, args.by, args.note, args.row)
    emit(args, out if args.json else
         t("cli.msg.reviewed", key=key, dataset=dataset, state=term_both("quarantine", out["state"]),
           n=out["entries"], note=args.note))
    return 0


def cmd_approve(args) -> int:
    """Record the approval; then publish: in Airflow (the held DAG run's publish task cleared and
    followed to its end) or, for a run of `run --local` (or with --local), in this process."""
    from exchange import quarantine  # lazy: CLI start (the catalogue imports pyarrow)

    with following(args, f"{args.source} {args.run_key}") as (on_start, on_change):
        result = quarantine.approve(args.source, args.run_key, args.by, args.note, publish=not args.no_publish,
                                    local=args.local, unpause=args.unpause, on_start=on_start, on_change=on_change)
    emit(args, result if args.json else
         t("cli.msg.approved", run_key=args.run_key, source=args.source)
         + (t("cli.msg.run_result", state=term_both("run", result["state"]), version=result.get("version"))
            if not args.no_publish else "")
         + (t("cli.msg.airflow_result", state=result["airflow_state"], url=result["url"]) if "url" in result else ""))
    return 0


def register(add) -> None:
    p = add("quarantine", cmd_quarantine, both("cli.help.quarantine"))
    p.add_argument("words", nargs="+", metavar="DATASET | review DATASET KEY")
    p.add_argument("--all", action="store_true", help=both("cli.arg.q_all"))
    p.add_argument("--samples", type=int, default=3, help=both("cli.arg.q_samples"))
    p.add_argument("--by", help=both("cli.arg.q_by"))
    p.add_argument("--note", help=both("cli.arg.q_note"))
    p.add_argument("--row", metavar="ROW_HASH", help=both("cli.arg.q_row"))
    p = add("approve", cmd_approve, both("cli.help.approve"))
    p.add_argument("source")
    p.add_argument("run_key")
    p.add_argument("--by", required=True, help=both("cli.arg.approve_by"))
    p.add_argument("--note", required=True, help=both("cli.arg.approve_note"))
    p.add_argument("--no-publish", action="store_true", help=both("cli.arg.no_publish"))
    p.add_argument("--local", action="store_true", help=both("cli.arg.approve_local"))
    p.add_argument("--unpause", action="store_true", help=both("cli.arg.unpause"))
