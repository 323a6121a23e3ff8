"""The one clock. Every "now" and "today" of the exchange comes from here, never from
`datetime.now()`/`date.today()` elsewhere, so a run, its fixtures and its checks share one notion
of time and can be moved together.

- `now()`: an aware UTC instant (the wall clock).
- `today()`: the business date "as of" which records are judged (future-dated issues, expiry):
  `EXCHANGE_TODAY` (YYYY-MM-DD) when set, else the date in Beijing time (UTC+8), where the
  licences are issued. Tests read the clock once and pin `EXCHANGE_TODAY` for the whole session,
  so a session that crosses midnight still has one today; CI runs the date-sensitive tests again
  under a clock moved forward (libfaketime) to prove they pass on any day.
"""
from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone

from base.errors import ConfigError

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")   # China keeps no daylight saving
TODAY_ENV = "EXCHANGE_TODAY"


def now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    pinned = os.environ.get(TODAY_ENV)
    if pinned:
        try:
            return date.fromisoformat(pinned.strip())
        except ValueError:
            raise ConfigError(f"{TODAY_ENV}={pinned!r} is not a date: write it as YYYY-MM-DD") from None
    return now().astimezone(BEIJING).date()


def beijing(t: datetime) -> datetime:
    """A stored instant in Beijing time (SQLite hands back naive datetimes, all UTC)."""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(BEIJING)
