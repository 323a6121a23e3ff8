"""Watching and scoring: `exchange status`, `exchange scorecard`, `exchange run SOURCE`."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from base import clock
from exchange.cli import ledger, table
from base.errors import ConfigError

COLOURS = {"fresh": "green", "late": "yellow", "stale": "red", "never": "magenta",
           "failed": "red", "held": "yellow", "published": "green", "unchanged": "green"}


def _at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at {text!r} is not an ISO time such as 2026-11-21T09:00:00+08:00") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _paint(value) -> str:
    text = "" if value is None else str(value)
    return f"[{COLOURS[text]}]{text}[/]" if text in COLOURS else text


def cmd_status(args) -> int:
    from catalog.ledger import monitoring
    from rich.markup import escape

    from exchange import registry
    from base.settings import get_settings

    cat = ledger()
    cat.reap_orphans()       # runs whose `exchange run` process is gone: failed, not running
    scan = registry.scan(get_settings().sources_dir)
    rows = monitoring.with_registrations(monitoring.source_status(cat, _at(args.at)), scan)
    if args.source:
        rows = [r for r in rows if r["source"] == args.source]
        if not rows:
            from base.errors import NotFound
            raise NotFound(f"no source {args.source!r}; `exchange status` lists them")
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
        table("Registration files not loaded (no DAG until mended)",
              [{"file": escape(r["registration_file"] or ""), "source": r["source"],
                "reason": escape(r["registration_error"])} for r in unloaded],
              ["file", "source", "reason"])
    return 0


def cmd_scorecard(args) -> int:
    from catalog.ledger import monitoring
    from rich.console import Console

    cards = monitoring.scorecards(ledger(), args.period, _at(args.at))
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
                     "consumed by others": f"{c['records_consumed']:,}",
                     "materials saved": f"{c['materials_saved']:,}"})
    table(f"{title}: {span}", rows, ["department", "on time", "rows passing", "backlog",
                                      "consumed by others", "materials saved"])
    late = [c["department_name"] for c in cards if c["on_time_share"] is not None and c["on_time_share"] < 1]
    if late:
        Console().print(f"Not refreshed on time throughout the period: {', '.join(late)}")
    return 0


def _share(x) -> str:
    return "—" if x is None else f"{x:.1%}"


def cmd_run(args) -> int:
    """Run a source's whole path now, in this process (a steward's check; Airflow runs it on
    its schedule): a bar per stage."""
    from catalog.ledger.run_owner import owning
    from exchange import stages
    from exchange.cli.progress import bar

    key = args.key or "manual_" + clock.now().strftime("%Y%m%dT%H%M%S")
    steps = [("extract", stages.extract), ("conform", stages.conform),
             ("validate", stages.validate), ("publish", stages.publish)]
    out = {}
    with owning(), bar(args, transient=False) as progress:     # the run is this process's
        task = progress.add_task(f"{args.source}: extract", total=len(steps))
        for name, step in steps:
            progress.update(task, description=f"{args.source}: {name}")
            out[name] = step(args.source, key)
            progress.advance(task)
    result = {"source": args.source, "run_key": key, **out["publish"]}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    else:
        print(f"{args.source} run {key}: {result.get('state')}, version {result.get('version')}")
    return 0


def register(add) -> None:
    sp = add("status", cmd_status, "every source: last run, result, counts, freshness, quarantine backlog")
    sp.add_argument("--source", help="only this source")
    sp.add_argument("--at", help="as of this ISO time (default now)")
    sp = add("scorecard", cmd_scorecard, "per-department sharing scorecards (daily scan, weekly "
                                         "dispatch, monthly bulletin)")
    sp.add_argument("--period", default="month", choices=["day", "week", "month"])
    sp.add_argument("--at", help="the period ends at this ISO time (default now)")
    sp = add("run", cmd_run, "run a source's pipeline once now, without Airflow, with progress")
    sp.add_argument("source")
    sp.add_argument("--key", help="run key (default manual_<time>); the same key publishes nothing twice")
