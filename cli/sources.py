"""The registrations every machine reads, in the catalogue: `exchange sources sync [DIR]`,
`exchange sources list`, `exchange sources remove ID`."""
from __future__ import annotations

import argparse
import json
import sys

from rich.markup import escape

from base.i18n import both, t
from cli import table
from cli.register import _user, _when


def _sources():
    from exchange import sources  # lazy: CLI start (the catalogue imports pyarrow)
    return sources


def cmd_sync(args) -> int:
    rows = _sources().sync(args.dir, by=args.by)
    refused = sum(r["state"] == "refused" for r in rows)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        table(both("cli.title.sources_synced", dir=args.dir or t("cli.msg.sources_folder")),
              [{**r, "file": escape(r["file"]), "reason": escape(r["reason"] or "")} for r in rows],
              ["file", "source", "state", "reason"], {"state": "registration"})
    if refused:
        print(f"exchange: {t('cli.error.sync_refused', n=refused, total=len(rows))}", file=sys.stderr)
        return 2
    return 0


def cmd_list(args) -> int:
    rows = _sources().listed()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1, default=str))
        return 0
    table(both("cli.title.registrations"),
          [{**r, "updated_at": _when(r["updated_at"]), "reason": escape(r["reason"] or ""),
            "origin": escape(r["origin"] or "")} for r in rows],
          ["source", "dataset", "state", "updated_at", "by", "origin", "reason"], {"state": "registration"})
    return 0


def cmd_remove(args) -> int:
    gone = _sources().remove(args.source)
    if args.json:
        print(json.dumps(gone, ensure_ascii=False, indent=1))
        return 0
    print(t("cli.msg.source_removed", source=args.source))
    for path in gone["still_in_folder"]:
        print(t("cli.msg.still_in_folder", path=path))
    return 0


def register(add) -> None:
    sp = add("sources", lambda a: a.sources_func(a), both("cli.help.sources"))
    sub = sp.add_subparsers(dest="sources_command", required=True)
    parsers = {n: sub.add_parser(n, help=both(f"cli.help.sources_{n}"), description=both(f"cli.help.sources_{n}"))
               for n in ("sync", "list", "remove")}
    p = parsers["sync"]
    p.add_argument("dir", nargs="?", default=None, help=both("cli.arg.sources_dir"))
    p.add_argument("--by", default=_user(), help=both("cli.arg.sources_by"))
    p.set_defaults(sources_func=cmd_sync)
    parsers["list"].set_defaults(sources_func=cmd_list)
    parsers["remove"].add_argument("source")
    parsers["remove"].set_defaults(sources_func=cmd_remove)
    for p in parsers.values():
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=both("cli.arg.json"))
