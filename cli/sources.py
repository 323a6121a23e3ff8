"""The registrations every machine reads, in the catalogue: `exchange sources sync [DIR]`,
`exchange sources list`, `exchange sources remove ID`."""
from __future__ import annotations

import argparse
import json
import sys

from rich.markup import escape

from cli import table
from cli.register import _user, _when

MARK = {"added": "新增 (added)", "updated": "已更新 (updated)", "unchanged": "未变 (unchanged)",
        "refused": "拒绝 (refused)"}


def _sources():
    from exchange import sources  # lazy: CLI start (the catalogue imports pyarrow)
    return sources


def cmd_sync(args) -> int:
    rows = _sources().sync(args.dir, by=args.by)
    refused = sum(r["state"] == "refused" for r in rows)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        table(f"Registrations loaded into the catalogue from {args.dir or 'the sources folder'}",
              [{**r, "state": MARK[r["state"]], "file": escape(r["file"]),
                "reason": escape(r["reason"] or "")} for r in rows], ["file", "source", "state", "reason"])
    if refused:
        print(f"exchange: 登记被拒绝 (refused): {refused} of {len(rows)} file(s) refused, each with why "
              "above; the others were stored", file=sys.stderr)
        return 2
    return 0


def cmd_list(args) -> int:
    rows = _sources().listed()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1, default=str))
        return 0
    table("Registrations in the catalogue (what every scheduler and worker reads)",
          [{**r, "updated_at": _when(r["updated_at"]), "reason": escape(r["reason"] or ""),
            "origin": escape(r["origin"] or "")} for r in rows],
          ["source", "dataset", "state", "updated_at", "by", "origin", "reason"])
    return 0


def cmd_remove(args) -> int:
    gone = _sources().remove(args.source)
    if args.json:
        print(json.dumps(gone, ensure_ascii=False, indent=1))
        return 0
    print(f"removed {args.source} from the catalogue: its DAG goes at Airflow's next parse; its "
          "dataset, versions and runs stay")
    for path in gone["still_in_folder"]:
        print(f"note: {path} still registers it: `exchange sources sync` would add it again")
    return 0


def register(add) -> None:
    sp = add("sources", lambda a: a.sources_func(a),
             "the registrations in the catalogue: sync a folder, list, remove")
    sub = sp.add_subparsers(dest="sources_command", required=True)
    p = sub.add_parser("sync", help="load every registration file of a folder into the catalogue "
                                    "(default: the sources folder); reports each file")
    p.add_argument("dir", nargs="?", default=None, help="the folder (default EXCHANGE_SOURCES_DIR)")
    p.add_argument("--by", default=_user(), help="who stores them")
    p.set_defaults(sources_func=cmd_sync)
    p = sub.add_parser("list", help="the registrations every machine reads, and any that do not load")
    p.set_defaults(sources_func=cmd_list)
    p = sub.add_parser("remove", help="take a source's registration out (its DAG goes; its data stays)")
    p.add_argument("source")
    p.set_defaults(sources_func=cmd_remove)
    for p in (sub.choices[n] for n in ("sync", "list", "remove")):
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
