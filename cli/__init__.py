"""The `exchange` command: tables for people, --json for programs.

Exit codes: 0 ok; otherwise the error's exit_code (see base/errors.py) and a one-line reason.
Each command group lives in its own module with a `register(add)` function. What people read
(titles, column names, terms, results, help) comes from base/i18n.py, Chinese first with the
technical name beside; --json keeps the technical keys and values as they are.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from datetime import datetime

from rich.console import Console
from rich.table import Table

from base import times
from base.errors import ExchangeError
from base.i18n import both, header, term_both

GROUPS = ["cli.records", "cli.demo", "cli.items", "cli.keys",
          "cli.integrity", "cli.access", "cli.serve",
          "cli.quality", "cli.watch", "cli.register",
          "cli.alerts", "cli.types", "cli.db", "cli.sources", "cli.objections", "cli.notices",
          "cli.peers"]


def catalog():
    from exchange.catalogue import open_catalog  # lazy: CLI start (the catalogue imports pyarrow)
    return open_catalog()


def ledger():
    from exchange.catalogue import open_ledger  # lazy: CLI start (the catalogue imports pyarrow)
    return open_ledger()


# columns whose values are terms (base/i18n.py TERMS kinds), wherever they appear
TERM_COLUMNS = {"sharing": "sharing", "update_cycle": "cycle", "freshness": "freshness"}


def table(title: str, rows: list[dict], columns: list[str], terms: dict[str, str] | None = None) -> None:
    """Rows as a table for people: headers `状态 (state)`, term values `已发布 (published)`
    (`terms`: column -> term kind, beside TERM_COLUMNS)."""
    kinds = {**TERM_COLUMNS, **(terms or {})}
    out = Table(title=title)
    for c in columns:
        out.add_column(header(c), overflow="fold")
    for r in rows:
        out.add_row(*(cell(r.get(c), kinds.get(c)) for c in columns))
    Console().print(out)


TIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\Z")


def cell(value, kind: str | None = None) -> str:
    """A value for people: a time (or ISO text of one) in the display time zone with its offset
    (base/times.py), a term of `kind` in Chinese with its technical name, nothing for None."""
    if value is None:
        return ""
    if kind is not None:
        return term_both(kind, str(value))
    if isinstance(value, datetime):
        return times.local_iso(value) or ""
    if isinstance(value, str) and TIME_TEXT.match(value):
        return times.local_iso(times.parse(value)) or value
    return str(value)


def emit(args, data, title: str = "", columns: list[str] | None = None,
         terms: dict[str, str] | None = None) -> None:
    """Print data as JSON with --json, else as a table (rows) or text."""
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1, default=times.json_default))
    elif columns is not None:
        table(title, data, columns, terms)
    else:
        print(cell(data) if isinstance(data, datetime) else data)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="exchange", description=both("cli.prog"))
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help):
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--json", action="store_true", help=both("cli.arg.json"))
        sp.set_defaults(func=func)
        return sp

    for module in GROUPS:
        importlib.import_module(module).register(add)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:          # `exchange ... | head`
        sys.stderr.close()
        return 0
    except ExchangeError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}, ensure_ascii=False))
        print(f"exchange: {exc}", file=sys.stderr)
        return exc.exit_code
