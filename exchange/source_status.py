"""How every source is doing (`exchange status`) and the departments' scorecards
(`exchange scorecard`), as of a time."""
from __future__ import annotations

from datetime import datetime

from base import clock
from base.errors import NotFound
from base.settings import get_settings
from catalog import registrations
from catalog.ledger import monitoring
from exchange.catalogue import open_ledger


def source_status(at: datetime | None = None, source: str | None = None) -> list[dict]:
    """Each source's last run, result, counts, freshness and backlog, with the registrations in
    the catalogue that do not load; only `source` when given (NotFound if there is none)."""
    ledger = open_ledger()
    ledger.reap_orphans()       # runs whose `exchange run` process is gone: failed, not running
    scan = registrations.scan(get_settings().catalog_url)
    rows = monitoring.with_registrations(monitoring.source_status(ledger, at), scan)
    if source:
        rows = [r for r in rows if r["source"] == source]
        if not rows:
            raise NotFound(f"no source {source!r}; `exchange status` lists them")
    return rows


def scorecards(period: str, at: datetime | None = None) -> list[dict]:
    """Per-department scorecards for the day, week or month ending at `at` (default now)."""
    return monitoring.scorecards(open_ledger(), period, at)


# --- `exchange status --check`: one verdict for cron and Nagios-style monitors ----------------
OK, WARNING, CRITICAL = 0, 1, 2
LEVELS = {OK: "ok", WARNING: "warning", CRITICAL: "critical"}
LABELS = {"ok": "正常 (ok)", "warning": "警告 (warning)", "critical": "严重 (critical)"}
REASONS = {"failed": "最近一次运行失败 (failed)", "stale": "数据已过期 (stale)",
           "held": "运行被闸门暂停，待批准 (held)", "late": "数据更新逾期 (late)"}
WORST_SHOWN = 5            # sources named in the one-line summary


def judge(row: dict) -> tuple[int, list[str]]:
    """One source's level and why: critical when its latest run failed or its dataset is stale,
    warning when late or its run is held by a gate, else ok (never run counts as ok)."""
    reasons = [r for r, hit in (("failed", row.get("result") == "failed"),
                                ("stale", row.get("freshness") == "stale"),
                                ("held", row.get("result") == "held"),
                                ("late", row.get("freshness") == "late")) if hit]
    level = (CRITICAL if {"failed", "stale"} & set(reasons) else WARNING if reasons else OK)
    return level, reasons


def check(at: datetime | None = None, source: str | None = None) -> dict:
    """The monitoring verdict over every source in the catalogue (or `source`): exit code
    0 ok, 1 warning, 2 critical, counts per level, the worst sources by id and a one-line
    summary, Chinese first with the technical name beside."""
    rows = [r for r in source_status(at, source) if r["dataset"] is not None]
    judged = [(r["source"], *judge(r)) for r in rows]
    code = max((lvl for _, lvl, _ in judged), default=OK)
    counts = {name: sum(lvl == n for _, lvl, _ in judged) for n, name in LEVELS.items()}
    worst = [{"source": s, "level": LEVELS[lvl], "reasons": why}
             for s, lvl, why in sorted(judged, key=lambda j: (-j[1], j[0])) if lvl > OK]
    head = f"EXCHANGE {LEVELS[code].upper()} {LABELS[LEVELS[code]]}"
    tally = "，".join(f"{LABELS[k]} {n}" for k, n in counts.items())
    named = "；".join(f"{w['source']}: {'、'.join(REASONS[r] for r in w['reasons'])}"
                     for w in worst[:WORST_SHOWN])
    more = f"；另有 {len(worst) - WORST_SHOWN} 个 (more)" if len(worst) > WORST_SHOWN else ""
    at_text = (at or clock.now()).isoformat()
    summary = f"{head} — {tally}" + (f" — {named}{more}" if named else "") + f" ({at_text})"
    return {"status": LEVELS[code], "exit_code": code, "at": at_text, "sources": len(rows),
            "counts": counts, "worst": worst, "summary": summary}
