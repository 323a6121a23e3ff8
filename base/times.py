"""The one way times are written: ISO 8601 with an offset in JSON, the API and the CLI; shown in
the display time zone (EXCHANGE_DISPLAY_TZ, Beijing time by default) to people.

The catalogue keeps naive UTC (SQLite hands datetimes back without a zone); every naive value
met here is taken as UTC and written with its offset, never as bare `2026-12-05 15:00:20`."""
from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from base.errors import ConfigError
from base.settings import get_settings

DEFAULT_TZ = "Asia/Shanghai"


def aware(t: datetime) -> datetime:
    """A stored instant with its zone (naive values are UTC)."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse(text: str) -> datetime:
    """ISO 8601 text (a trailing Z, or none: UTC) as an aware datetime; ValueError if not one."""
    return aware(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def iso(t: datetime | None, timespec: str = "auto") -> str | None:
    """Machine form: ISO 8601 in UTC with its offset (`2026-12-05T15:00:35.554144+00:00`)."""
    return None if t is None else aware(t).astimezone(UTC).isoformat(timespec=timespec)


@lru_cache(maxsize=8)
def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"EXCHANGE_DISPLAY_TZ={name!r} is not an IANA time zone "
                          "(e.g. Asia/Shanghai, UTC)") from None


def display_zone() -> tzinfo:
    return zone(get_settings().display_tz)


def local(t: datetime, tz: tzinfo | None = None) -> datetime:
    """The instant in the display time zone."""
    return aware(t).astimezone(tz or display_zone())


def local_iso(t: datetime | None, tz: tzinfo | None = None) -> str | None:
    """People's form in the CLI: the display zone's time, to the second, with its offset
    (`2026-12-05T23:00:20+08:00`)."""
    return None if t is None else local(t, tz).isoformat(timespec="seconds")


def shown(t: datetime | str | None, tz: tzinfo | None = None, seconds: bool = False) -> str:
    """The dashboard's form: `2026-12-05 23:00` in the display zone ('–' for none; text that is
    no time passes through)."""
    if t is None or t == "":
        return "–"
    if isinstance(t, str):
        try:
            instant = parse(t)
        except ValueError:
            return t
    else:
        instant = t
    return local(instant, tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def offset_label(tz: tzinfo | None = None, at: datetime | None = None) -> str:
    """`UTC+08:00` for the display zone (at `at`, for zones with daylight saving)."""
    moment = aware(at) if at else datetime.now(UTC)
    off = moment.astimezone(tz or display_zone()).strftime("%z") or "+0000"
    return f"UTC{off[:3]}:{off[3:]}"


def json_default(o: Any) -> Any:
    """`default=` for json.dumps: datetimes in ISO 8601 with their offset, dates as YYYY-MM-DD,
    anything else as its text."""
    if isinstance(o, datetime):
        return iso(o)
    if isinstance(o, date):
        return o.isoformat()
    return str(o)
