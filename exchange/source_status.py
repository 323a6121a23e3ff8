"""How every source is doing (`exchange status`) and the departments' scorecards
(`exchange scorecard`), as of a time."""
from __future__ import annotations

from datetime import datetime

import registration
from base.errors import NotFound
from base.settings import get_settings
from catalog.ledger import monitoring
from exchange.catalogue import open_ledger


def source_status(at: datetime | None = None, source: str | None = None) -> list[dict]:
    """Each source's last run, result, counts, freshness and backlog, with the registration
    files that do not load; only `source` when given (NotFound if there is none)."""
    ledger = open_ledger()
    ledger.reap_orphans()       # runs whose `exchange run` process is gone: failed, not running
    scan = registration.scan(get_settings().sources_dir)
    rows = monitoring.with_registrations(monitoring.source_status(ledger, at), scan)
    if source:
        rows = [r for r in rows if r["source"] == source]
        if not rows:
            raise NotFound(f"no source {source!r}; `exchange status` lists them")
    return rows


def scorecards(period: str, at: datetime | None = None) -> list[dict]:
    """Per-department scorecards for the day, week or month ending at `at` (default now)."""
    return monitoring.scorecards(open_ledger(), period, at)
