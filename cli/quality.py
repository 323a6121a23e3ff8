"""The quarantine queue and run approvals:
`exchange quarantine DATASET`, `exchange quarantine review DATASET KEY --by NAME --note TEXT`,
`exchange approve SOURCE RUN_KEY --by NAME --note TEXT`."""
from __future__ import annotations

import json

from base.errors import ConfigError
from cli import emit, table


def cmd_quarantine(args) -> int:
    if args.words[0] == "review":
        return _review(args)
    if len(args.words) != 1:
        raise ConfigError("usage: exchange quarantine DATASET | quarantine review DATASET KEY "
                          "--by NAME --note TEXT")
    from exchange import quarantine  # lazy: CLI start (the catalogue imports pyarrow)

    dataset = args.words[0]
    entries, summary = quarantine.queue(dataset, args.all, args.samples)
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


def _review(args) -> int:
    if len(args.words) != 3 or not args.by or not args.note:
        raise ConfigError("usage: exchange quarantine review DATASET KEY --by NAME --note TEXT")
    _, dataset, key = args.words
    from exchange import quarantine  # lazy: CLI start (the catalogue imports pyarrow)

    out = quarantine.review(dataset, key, args.by, args.note, args.row)
    emit(args, out if args.json else
         f"{key} in {dataset}: {out['state']}, {out['entries']} row(s) ({args.note})")
    return 0


def cmd_approve(args) -> int:
    from exchange import quarantine  # lazy: CLI start (the catalogue imports pyarrow)

    result = quarantine.approve(args.source, args.run_key, args.by, args.note, publish=not args.no_publish)
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
