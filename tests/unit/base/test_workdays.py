"""Working days for objection deadlines: statutory holidays skipped, make-up working days (调休)
counted, Monday to Friday for a year the statutory calendar does not cover."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from base.workdays import add_workdays, covered, due_after, is_workday

pytestmark = pytest.mark.notices


def test_a_statutory_holiday_is_skipped():
    # National Day and Mid-Autumn 2025: 1 to 8 October off, though 6 to 8 October are weekdays
    assert not is_workday(date(2025, 10, 6))
    assert add_workdays(date(2025, 9, 30), 1) == date(2025, 10, 9)


def test_a_make_up_weekend_day_counts():
    # Saturday 11 October 2025 was worked in exchange for the holiday
    assert date(2025, 10, 11).weekday() == 5 and is_workday(date(2025, 10, 11))
    assert add_workdays(date(2025, 10, 10), 1) == date(2025, 10, 11)
    # Sunday 28 September 2025 too
    assert add_workdays(date(2025, 9, 26), 1) == date(2025, 9, 28)


def test_a_year_the_calendar_does_not_cover_falls_back_to_monday_to_friday():
    friday = date(2031, 1, 3)
    assert friday.weekday() == 4 and not covered(friday)
    assert add_workdays(friday, 1) == date(2031, 1, 6)      # Monday
    assert add_workdays(friday, 5) == date(2031, 1, 10)
    assert is_workday(date(2031, 1, 1))                     # a holiday the fallback cannot know


def test_the_deadline_is_the_end_of_the_beijing_day():
    # 20:00 UTC on Thursday 2 January 2025 is already Friday 3 January in Beijing
    due = due_after(datetime(2025, 1, 2, 20, 0, tzinfo=UTC), 1)
    assert due.isoformat() == "2025-01-06T23:59:59+08:00"
    with pytest.raises(ValueError):
        add_workdays(date(2025, 1, 2), 0)
