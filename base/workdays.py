"""Working days in mainland China (工作日), for deadlines counted in working days.

Statutory holidays and the weekend days made working days in exchange (调休) come from the
`chinesecalendar` package, which knows the years the State Council has announced. A year it
does not cover (it raises NotImplementedError: the next year's holidays are announced late in
the year before) falls back to Monday to Friday; `covered(day)` says which rule a day follows.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from base.clock import BEIJING

END_OF_DAY = time(23, 59, 59)


def covered(day: date) -> bool:
    """Whether the statutory calendar knows `day`'s year (else Monday to Friday is assumed)."""
    import chinese_calendar  # lazy: its tables load on first use

    try:
        chinese_calendar.is_workday(day)
        return True
    except NotImplementedError:
        return False


def is_workday(day: date) -> bool:
    """A working day: by the statutory calendar where it covers the year, else Monday to Friday."""
    import chinese_calendar  # lazy: its tables load on first use

    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def add_workdays(day: date, n: int) -> date:
    """The n-th working day after `day` (`day` itself never counts); n >= 1."""
    if n < 1:
        raise ValueError(f"a count of working days is at least 1, not {n}")
    while n:
        day += timedelta(days=1)
        n -= is_workday(day)
    return day


def due_after(filed: datetime, n: int) -> datetime:
    """The end (23:59:59 Beijing time) of the n-th working day after the Beijing date of `filed`."""
    return datetime.combine(add_workdays(filed.astimezone(BEIJING).date(), n), END_OF_DAY, BEIJING)
