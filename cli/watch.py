"""Watching and scoring: `exchange status`, `exchange scorecard`, `exchange run SOURCE`."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape

from base import times
from base.errors import ConfigError, ExchangeError
from base.i18n import both, t, term_both
from cli import cell, table
from cli.progress import bar

COLOURS = {"fresh": "green", "late": "yellow", "stale": "red", "never": "magenta",
           "failed": "red", "held": "yellow", "published": "green", "unchanged": "green"}


def _at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(t("cli.error.at_status", text=text)) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _paint(value, kind: str) -> str:
    """A term in its colour, Chinese first: `[green]按时更新 (fresh)[/]`."""
    text = "" if value is None else str(value)
    shown = term_both(kind, text) if text else ""
    return f"[{COLOURS[text]}]{shown}[/]" if text in COLOURS else shown


def cmd_status(args) -> int:
    if getattr(args, "check", False):
        return _check(args)
    from exchange.source_status import source_status  # lazy: CLI start (the catalogue)

    rows = source_status(_at(args.at), args.source)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    unloaded = [r for r in rows if r["registration_error"]]
    rows = [r for r in rows if r["dataset"] is not None]          # the catalogue's sources
    for r in rows:
        r["counts"] = ("" if r["extracted"] is None else
                       f"{r['extracted']:,} → {r['accepted'] or 0:,} ✓ {r['quarantined'] or 0:,} ✗")
        r["last_run_at"] = cell(r["finished_at"] or r["started_at"])
        r["freshness"], r["result"] = _paint(r["freshness"], "freshness"), _paint(r["result"], "run")
        r["due"] = cell(r["due_at"])
        r["message"] = escape((r["message"] or "")[:80])
    table(both("cli.title.status"), rows, ["source", "update_cycle", "freshness", "due", "last_run_at",
                                           "result", "counts", "backlog", "message"], {"freshness": None})
    if unloaded:
        table(both("cli.title.unloaded"),
              [{"file": escape(r["registration_file"] or ""), "source": r["source"],
                "reason": escape(r["registration_error"])} for r in unloaded],
              ["file", "source", "reason"])
    return 0


def _check(args) -> int:
    """`status --check`: exit 0 ok, 1 warning, 2 critical, with one line (or --json) for a
    monitor; 3 unknown (the Nagios convention) when the check itself cannot run."""
    from exchange.source_status import check  # lazy: CLI start (the catalogue)

    try:
        verdict = check(_at(args.at), args.source)
    except Exception as exc:
        text = t("cli.msg.check_unknown", error=f"{type(exc).__name__}: {exc}")
        print(json.dumps({"status": "unknown", "exit_code": 3, "summary": text}, ensure_ascii=False)
              if args.json else text)
        return 3
    print(json.dumps(verdict, ensure_ascii=False) if args.json else verdict["summary"])
    return verdict["exit_code"]


def cmd_scorecard(args) -> int:
    from exchange.source_status import scorecards  # lazy: CLI start (the catalogue)

    cards = scorecards(args.period, _at(args.at))
    if args.json:
        print(json.dumps(cards, ensure_ascii=False, indent=1))
        return 0
    title = both(f"cli.title.scorecard.{args.period}")
    span = f"{cell(cards[0]['from'])} – {cell(cards[0]['to'])}" if cards else ""
    rows = []
    for c in sorted(cards, key=lambda c: (-(c["on_time_share"] or 0), -(c["quality_pass_share"] or 0))):
        rows.append({**c, "department": f"{c['department_name']} ({c['department']})",
                     "on_time": f"{c['on_time']}/{c['datasets']} {_share(c['on_time_share'])}",
                     "quality_pass": _share(c["quality_pass_share"]),
                     "backlog": f"{c['backlog']:,}" + (t("cli.msg.oldest_days", n=c["backlog_oldest_days"])
                                                       if c["backlog_oldest_days"] is not None else ""),
                     "runs_failed": f"{c['runs_failed']}/{c['runs']}",
                     "records_consumed": f"{c['records_consumed']:,}",
                     "materials_saved": f"{c['materials_saved']:,}",
                     "objections_on_time": f"{c['objections_on_time']}/{c['objections_resolved']}"})
    table(f"{title}: {span}", rows, ["department", "on_time", "runs_failed", "quality_pass",
                                      "backlog", "records_consumed", "materials_saved", "objections_received",
                                      "objections_on_time", "objections_open_overdue", "objections_median_days"])
    late = [c["department_name"] for c in cards if c["on_time_share"] is not None and c["on_time_share"] < 1]
    if late:
        Console().print(t("cli.msg.not_on_time", names="、".join(late)))
    failing = [c["department_name"] for c in cards if c["datasets_failing"]]
    if failing:
        Console().print(t("cli.msg.latest_failed", names="、".join(failing)))
    return 0


def _share(x) -> str:
    return "—" if x is None else f"{x:.1%}"


def cmd_run(args) -> int:
    """Run a source's whole path now: a DAG run in Airflow, followed to its end (a bar per
    task), or with --local in this process (a bar per stage)."""
    if args.local:
        return _run_local(args)
    from exchange import manual_run  # lazy: CLI start (stages reach pyarrow and GX)

    with following(args, args.source) as (on_start, on_change):
        result = manual_run.airflow_run(args.source, args.key, unpause=args.unpause,
                                        on_start=on_start, on_change=on_change)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1, default=times.json_default))
    else:
        print(t("cli.msg.run_done", source=args.source, run_key=result["run_key"],
                state=term_both("run", result["state"]), version=result["version"])
              + t("cli.msg.airflow_result", state=result["airflow_state"], url=result["url"]))
    return 0


@contextmanager
def following(args, label: str):
    """(on_start, on_change) for following an Airflow DAG run: the bar on a terminal, a line per
    change on stderr otherwise (none with --json). Ctrl-C stops following, not the run."""
    from exchange.airflow_api import DONE_TASK  # lazy: CLI start
    from exchange.manual_run import TASKS, order  # lazy: CLI start (stages reach pyarrow and GX)

    err = Console(stderr=True, highlight=False)
    urls: list[str] = []
    with bar(args, transient=False) as progress:
        tasks: list = []            # the bar, once a run is followed

        def on_start(url: str) -> None:
            urls.append(url)
            tasks.append(progress.add_task(t("cli.progress.queued", label=label), total=len(TASKS)))
            if not args.json:
                err.print(t("cli.progress.airflow_run", url=url), soft_wrap=True)

        def on_change(states: dict[str, str], run_state: str) -> None:
            current = next((s for s in order(states) if states[s] not in DONE_TASK), None)
            text = f"{current} ({states[current]})" if current else run_state
            progress.update(tasks[0], total=max(len(TASKS), len(states)), description=f"{label}: {text}",
                            completed=sum(1 for s in states.values() if s in DONE_TASK))
            if progress.disable and not args.json:
                err.print(f"{label}: " + ", ".join(f"{s} {states[s]}" for s in order(states))
                          + t("cli.progress.run_state", state=term_both("run", run_state)), soft_wrap=True)

        try:
            yield on_start, on_change
        except KeyboardInterrupt:
            raise ExchangeError(t("cli.error.stopped_following", what=urls[0] if urls else label)) from None


def _run_local(args) -> int:
    from exchange import manual_run  # lazy: CLI start (stages reach pyarrow and GX)

    key = args.key or manual_run.manual_key()
    with bar(args, transient=False) as progress:
        task = progress.add_task(f"{args.source}: extract", total=len(manual_run.STEPS))
        result = manual_run.run_source(
            args.source, key, before=lambda name: progress.update(task, description=f"{args.source}: {name}"),
            after=lambda name: progress.advance(task))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1, default=times.json_default))
    else:
        print(t("cli.msg.run_done", source=args.source, run_key=key, state=term_both("run", result.get("state")),
                version=result.get("version"))
              + (t("cli.msg.rows_carried", checked=f"{result['checked']:,}", carried=f"{result['carried']:,}")
                 if result.get("carried") else ""))
    return 0


def register(add) -> None:
    sp = add("status", cmd_status, both("cli.help.status"))
    sp.add_argument("--source", help=both("cli.arg.source"))
    sp.add_argument("--at", help=both("cli.arg.status_at"))
    sp.add_argument("--check", action="store_true", help=both("cli.arg.check"))
    sp = add("scorecard", cmd_scorecard, both("cli.help.scorecard"))
    sp.add_argument("--period", default="month", choices=["day", "week", "month"], help=both("cli.arg.period"))
    sp.add_argument("--at", help=both("cli.arg.scorecard_at"))
    sp = add("run", cmd_run, both("cli.help.run"))
    sp.add_argument("source")
    sp.add_argument("--key", help=both("cli.arg.run_key"))
    sp.add_argument("--local", action="store_true", help=both("cli.arg.run_local"))
    sp.add_argument("--unpause", action="store_true", help=both("cli.arg.unpause"))
