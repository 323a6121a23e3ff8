"""The quarantine queue and run approvals:
`exchange quarantine DATASET`, `exchange quarantine review DATASET KEY --by NAME --note TEXT`,
`exchange approve SOURCE RUN_KEY --by NAME --note TEXT`."""
from __future__ import annotations

import json

from base import times
from base.errors import ConfigError
from base.i18n import term_both
from cli import emit, table
from cli.watch import following


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
                         ensure_ascii=False, indent=1, default=times.json_default))
        return 0
    states = "，".join(f"{term_both('quarantine', s)} {n}" for s, n in summary["by_state"].items())
    print(f"{dataset}: 隔离区共 {summary['rows']} 行 (rows in quarantine){f'：{states}' if states else ''}")
    if summary["holding_published_records"]:
        print(f"{summary['holding_published_records']} 条待处理行使已发布记录被暂扣：该记录保持发布状态，显示为有争议，"
              "直到数据管理员复核该行 (open rows hold a published record back, shown as disputed)")
    texts = summary["reason_texts"]
    table("按原因 (by reason)", [{"原因 (reason)": texts[r], "行数 (rows)": n}
                               for r, n in summary["by_reason"].items()], ["原因 (reason)", "行数 (rows)"])
    picked = {k for keys in summary["samples"].values() for k in keys}
    table("样例行 (sample rows)", [{**e, "state": term_both("quarantine", e["state"]),
                                  "reasons": "；".join(texts.get(r, r) for r in e["reasons"])}
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
    """Record the approval; then publish: in Airflow (the held DAG run's publish task cleared and
    followed to its end) or, for a run of `run --local` (or with --local), in this process."""
    from exchange import quarantine  # lazy: CLI start (the catalogue imports pyarrow)

    with following(args, f"{args.source} {args.run_key}") as (on_start, on_change):
        result = quarantine.approve(args.source, args.run_key, args.by, args.note, publish=not args.no_publish,
                                    local=args.local, unpause=args.unpause, on_start=on_start, on_change=on_change)
    emit(args, result if args.json else
         f"approved run {args.run_key} of {args.source}"
         + (f": {result['state']} version {result.get('version')}" if not args.no_publish else "")
         + (f" (Airflow {result['airflow_state']}: {result['url']})" if "url" in result else ""))
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
    p.add_argument("--local", action="store_true",
                   help="publish in this process even if the run is an Airflow DAG run (Airflow gone)")
    p.add_argument("--unpause", action="store_true", help="unpause the source's DAG if it is paused")
