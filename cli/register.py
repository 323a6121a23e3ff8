"""A steward adds a source: `exchange register FILE [--dry-run] [--by NAME] [--sample N]`;
a dataset's metadata and its history: `exchange dataset DATASET`."""
from __future__ import annotations

import contextlib
import getpass
import json
import sys
from datetime import datetime

from rich.console import Console
from rich.markup import escape

from base import times
from base.errors import ExchangeError
from cli import catalog, table

PREVIEW_COLUMNS = ["_row", "licence_number", "holder_name", "holder_code", "issuer_name",
                   "issue_date", "valid_to", "status"]
MARK = {"ok": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[yellow]–[/yellow]"}


def cmd_register(args) -> int:
    from exchange import registering  # lazy: CLI start (registering imports pyarrow, the catalogue)

    console = Console(highlight=False)

    def show(step, report) -> None:
        if args.json:
            return
        console.print(f"{MARK[step.state]} {step.number} {step.name}: {escape(step.summary)}")
        if step.number == 3 and step.state == "ok" and report.preview:
            cols = [c for c in PREVIEW_COLUMNS if c in report.preview[0]]
            table(f"First {len(report.preview)} conformed rows", report.preview, cols)
        if step.number == 4 and step.state == "ok" and report.validation.get("failing"):
            table("Failing expectations on the sample",
                  [{**f, **f["example"]} for f in report.validation["failing"]],
                  ["expectation", "rows", "row", "key", "values"])

    try:
        # with --json, stdout is the report alone: what libraries print (Airflow's logging,
        # set up when a conn_id is read, writes to stdout) goes to stderr
        with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
            report = registering.register_file(args.file, dry_run=args.dry_run, by=args.by,
                                               sample_rows=args.sample, on_step=show)
    except ExchangeError as exc:
        if args.json:
            partial = getattr(exc, "report", None)
            print(json.dumps({"error": type(exc).__name__, "message": str(exc),
                              "failed_step": getattr(exc, "step", None),
                              "report": partial.as_dict() if partial else None},
                             ensure_ascii=False, indent=1, default=times.json_default))
        print(f"exchange: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=1, default=times.json_default))
    elif report.registered:
        console.print(f"registered {report.source}: DAG {report.dag_id}, dataset {report.dataset}")
    else:
        console.print(f"dry run: {report.source} is ready to register; nothing was written")
    return 0


def cmd_dataset(args) -> int:
    data = catalog().dataset(args.dataset)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1, default=times.json_default))
        return 0
    meta = {k: _when(v) for k, v in data.items() if k not in ("sources", "history")}
    table(f"Dataset {args.dataset}", [{"field": k, "value": v} for k, v in meta.items()],
          ["field", "value"])
    table("Sources", [{k: _when(v) for k, v in r.items()} for r in data["sources"]],
          ["source", "connector", "registered_at"])
    table("Metadata history", [{k: _when(v) for k, v in r.items()} for r in data["history"]],
          ["changed_at", "field", "old_value", "new_value", "changed_by", "source_id", "source_file"])
    return 0


def register(add) -> None:
    p = add("register", cmd_register, "check a registration file, test its silo, preview a "
                                      "validated sample, then add the source")
    p.add_argument("file", help="the registration file (TOML)")
    p.add_argument("--dry-run", action="store_true", help="stop before adding: nothing is written")
    p.add_argument("--by", default=_user(), help="who registers (kept in the metadata history)")
    p.add_argument("--sample", type=int, default=1_000, metavar="N",
                   help="rows pulled for the preview and validation (default 1000)")
    p = add("dataset", cmd_dataset, "a dataset's metadata, sources and metadata history")
    p.add_argument("dataset")


def _when(value):
    return times.local_iso(value) if isinstance(value, datetime) else value


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
