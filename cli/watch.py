"""Watching and scoring: `exchange status`, `exchange scorecard`, `exchange run SOURCE`."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape

from base import times
from base.errors import ConfigError, ExchangeError
from cli import table
from cli.progress import bar

COLOURS = {"fresh": "green", "late": "yellow", "stale": "red", "never": "magenta",
           "failed": "red", "held": "yellow", "published": "green", "unchanged": "green"}


def _at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at {text!r} is not an ISO time such as 2026-11-21T09:00:00+08:00") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _paint(value) -> str:
    text = "" if value is None else str(value)
    return f"[{COLOURS[text]}]{text}[/]" if text in COLOURS else text


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
        r["last_run_at"] = (r["finished_at"] or r["started_at"] or "")[:19]
        r["freshness"], r["result"] = _paint(r["freshness"]), _paint(r["result"])
        r["due"] = (r["due_at"] or "")[:19]
        r["message"] = escape((r["message"] or "")[:80])
    table("Sources", rows, ["source", "update_cycle", "freshness", "due", "last_run_at",
                            "result", "counts", "backlog", "message"])
    if unloaded:
        table("登记未能加载 (registrations not loaded: no DAG until mended and registered again)",
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
        text = f"EXCHANGE UNKNOWN 未知 (unknown) — 检查无法完成 (check failed): {type(exc).__name__}: {exc}"
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
    title = {"day": "Daily scan 日扫描", "week": "Weekly dispatch 周调度",
             "month": "Monthly bulletin 月通报"}[args.period]
    span = f"{cards[0]['from'][:16]} – {cards[0]['to'][:16]} UTC" if cards else ""
    rows = []
    for c in sorted(cards, key=lambda c: (-(c["on_time_share"] or 0), -(c["quality_pass_share"] or 0))):
        rows.append({**c, "department": f"{c['department_name']} ({c['department']})",
                     "on time": f"{c['on_time']}/{c['datasets']} {_share(c['on_time_share'])}",
                     "rows passing": _share(c["quality_pass_share"]),
                     "backlog": f"{c['backlog']:,}" + (f" (oldest {c['backlog_oldest_days']} d)"
                                                       if c["backlog_oldest_days"] is not None else ""),
                     "failed runs 失败运行": f"{c['runs_failed']}/{c['runs']}",
                     "consumed by others": f"{c['records_consumed']:,}",
                     "materials saved": f"{c['materials_saved']:,}"})
    table(f"{title}: {span}", rows, ["department", "on time", "failed runs 失败运行", "rows passing",
                                      "backlog", "consumed by others", "materials saved"])
    late = [c["department_name"] for c in cards if c["on_time_share"] is not None and c["on_time_share"] < 1]
    if late:
        Console().print(f"Not refreshed on time throughout the period: {', '.join(late)}")
    failing = [c["department_name"] for c in cards if c["datasets_failing"]]
    if failing:
        Console().print(f"最近一次运行失败 (latest run failed): {', '.join(failing)}")
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
        print(f"{args.source} run {result['run_key']}: {result['state']}, version {result['version']} "
              f"(Airflow {result['airflow_state']}: {result['url']})")
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
            tasks.append(progress.add_task(f"{label}: queued", total=len(TASKS)))
            if not args.json:
                err.print(f"Airflow 运行 (run): {url}", soft_wrap=True)

        def on_change(states: dict[str, str], run_state: str) -> None:
            current = next((t for t in order(states) if states[t] not in DONE_TASK), None)
            text = f"{current} ({states[current]})" if current else run_state
            progress.update(tasks[0], total=max(len(TASKS), len(states)), description=f"{label}: {text}",
                            completed=sum(1 for s in states.values() if s in DONE_TASK))
            if progress.disable and not args.json:
                err.print(f"{label}: " + ", ".join(f"{t} {states[t]}" for t in order(states))
                          + f" — run {run_state}", soft_wrap=True)

        try:
            yield on_start, on_change
        except KeyboardInterrupt:
            raise ExchangeError("停止跟踪 (stopped following); 运行在 Airflow 中继续 (the run goes on in "
                                f"Airflow): {urls[0] if urls else label}") from None


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
        print(f"{args.source} run {key}: {result.get('state')}, version {result.get('version')}")
    return 0


def register(add) -> None:
    sp = add("status", cmd_status, "every source: last run, result, counts, freshness, quarantine backlog")
    sp.add_argument("--source", help="only this source")
    sp.add_argument("--at", help="as of this ISO time (default now)")
    sp.add_argument("--check", action="store_true",
                    help="for monitors: exit 0 ok, 1 warning (late, held), 2 critical (failed, "
                         "stale), 3 unknown, with a one-line summary (--json: an object)")
    sp = add("scorecard", cmd_scorecard, "per-department sharing scorecards (daily scan, weekly "
                                         "dispatch, monthly bulletin)")
    sp.add_argument("--period", default="month", choices=["day", "week", "month"])
    sp.add_argument("--at", help="the period ends at this ISO time (default now)")
    sp = add("run", cmd_run, "run a source's pipeline once now as an Airflow DAG run, followed with "
                             "progress (--local: in this process, without Airflow)")
    sp.add_argument("source")
    sp.add_argument("--key", help="run key, also the Airflow run id (default manual__<UTC time>; --local: "
                                  "manual_<time>); the same key publishes nothing twice")
    sp.add_argument("--local", action="store_true",
                    help="run the stages in this process, without Airflow (offline checks)")
    sp.add_argument("--unpause", action="store_true", help="unpause the source's DAG if it is paused")
