"""The quarantine queue and run approvals:
`exchange quarantine DATASET`, `exchange quarantine review DATASET KEY --by NAME --note TEXT`,
`exchange approve SOURCE RUN_KEY --by NAME --note TEXT`."""
from __future__ import annotations

import json
from collections import Counter

from exchange.cli import catalog, emit, ledger, table
from base.errors import ConfigError


def queue_summary(entries: list[dict], samples: int) -> dict:
    by_reason = Counter(r for e in entries for r in e["reasons"])
    by_state = Counter(e["state"] for e in entries)
    holding = sum(1 for e in entries if e["state"] == "open" and e.get("held_record_id"))
    return {"rows": len(entries), "by_state": dict(by_state), "holding_published_records": holding,
            "by_reason": dict(by_reason.most_common()),
            "samples": {reason: [e["key"] for e in entries if reason in e["reasons"]][:samples]
                        for reason in by_reason}}


def cmd_quarantine(args) -> int:
    if args.words[0] == "review":
        return _review(args)
    if len(args.words) != 1:
        raise ConfigError("usage: exchange quarantine DATASET | quarantine review DATASET KEY "
                          "--by NAME --note TEXT")
    dataset = args.words[0]
    catalog().dataset(dataset)           # NotFound (exit 7) naming the known datasets
    entries = ledger().quarantine(dataset, include_resolved=args.all)
    summary = queue_summary(entries, args.samples)
    _with_raw_rows(entries)
    if args.json:
        print(json.dumps({"dataset": dataset, **summary, "entries": entries},
                         ensure_ascii=False, indent=1, default=str))
        return 0
    print(f"{dataset}: {summary['rows']} rows in quarantine {summary['by_state']}")
    if summary["holding_published_records"]:
        print(f"{summary['holding_published_records']} open rows hold a published record back: it stays "
              "as published, shown as disputed, until a steward reviews the row")
    table("By reason", [{"reason": r, "rows": n} for r, n in summary["by_reason"].items()],
          ["reason", "rows"])
    picked = {k for keys in summary["samples"].values() for k in keys}
    table("Sample rows", [{**e, "reasons": ", ".join(e["reasons"])}
                          for e in entries if e["key"] in picked],
          ["key", "row_hash", "state", "reasons", "values", "held_record_id", "review_note"])
    return 0


def _with_raw_rows(entries: list[dict]) -> None:
    """Each entry's raw silo row, from the quarantine file of the run that last saw it."""
    from base.settings import get_settings
    from quality.quarantine_store import raw_rows

    raws = raw_rows(get_settings().staging_dir, entries)
    for e in entries:
        e["raw"] = raws.get((e["source_id"], e["key"], e["row_hash"]))


def _review(args) -> int:
    if len(args.words) != 3 or not args.by or not args.note:
        raise ConfigError("usage: exchange quarantine review DATASET KEY --by NAME --note TEXT")
    _, dataset, key = args.words
    out = ledger().review_quarantine(dataset, key, args.by, args.note, args.row)
    emit(args, out if args.json else
         f"{key} in {dataset}: {out['state']}, {out['entries']} row(s) ({args.note})")
    return 0


def cmd_approve(args) -> int:
    from exchange import stages

    from catalog.ledger.run_owner import owning

    run = ledger().approve_run(args.source, args.run_key, args.by, args.note)
    result = {"source": args.source, "run_key": args.run_key, "approved_by": args.by,
              "held_because": run.message}
    if not args.no_publish:
        with owning():                        # the run is this process's while it publishes
            result.update(stages.publish(args.source, args.run_key))
    emit(args, result if args.json else
         f"approved run {args.run_key} of {args.source}"
         + (f": {result['state']} version {result.get('version')}" if not args.no_publish else ""))
    return 0


def register(add) -> None:
    p = add("quarantine", cmd_quarantine, "the quarantine queue of a dataset; `review` marks a row")
    p.add_argument("words", nargs="+", metavar="DATASET | review DATASET KEY")
    p.add_argument("--all", action="store_true", help="include rows that have left the queue")
    p.add_argument("--samples", type=int, default=3, help="sample rows per reason")
    p.add_argument("--by", help="review: who reviewed")
    p.add_argument("--note", help="review: the steward's note")
    p.add_argument("--row", metavar="ROW_HASH", help="review: only the row whose hash starts so "
                   "(rows sharing a licence number are reviewed together without it)")
    p = add("approve", cmd_approve, "let a run held by a quality gate publish")
    p.add_argument("source")
    p.add_argument("run_key")
    p.add_argument("--by", required=True)
    p.add_argument("--note", required=True)
    p.add_argument("--no-publish", action="store_true", help="record the approval only")
