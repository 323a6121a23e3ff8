"""One clock (base/clock.py): nothing else reads the wall clock's date or time, "today" is
the Beijing date unless pinned, and a pinned today is what every stage defaults to."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from base import clock
from base.errors import ConfigError
from tests.conftest import ROOT, TODAY

WALL_CLOCK = re.compile(r"\b(date\.today|datetime\.now|datetime\.utcnow|datetime\.datetime\.now|"
                        r"dt\.date\.today|dt\.datetime\.now)\(")
FOLDERS = ("api", "bench", "catalog", "connectors", "dags", "demo", "exchange", "quality", "schemas",
           "tests")


def test_nothing_but_the_clock_reads_the_date_or_time():
    offenders = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "base" / "clock.py" or path.samefile(__file__):
                continue
            for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if WALL_CLOCK.search(code):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "use base.clock.now()/today() instead:\n" + "\n".join(offenders)


def test_today_is_the_beijing_date(monkeypatch):
    monkeypatch.delenv(clock.TODAY_ENV)
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 5, 16, 30, tzinfo=UTC))
    assert clock.today() == date(2026, 12, 6)            # 00:30 the next day in Beijing
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 5, 15, 59, tzinfo=UTC))
    assert clock.today() == date(2026, 12, 5)


def test_a_pinned_today_is_shared_and_checked(monkeypatch):
    assert clock.today() == TODAY                         # the session pinned it once
    monkeypatch.setenv(clock.TODAY_ENV, "2031-02-28")
    assert clock.today() == date(2031, 2, 28)
    monkeypatch.setenv(clock.TODAY_ENV, "tomorrow")
    with pytest.raises(ConfigError, match="EXCHANGE_TODAY='tomorrow' is not a date"):
        clock.today()


def test_beijing_time_of_a_stored_instant():
    assert clock.beijing(datetime(2026, 12, 5, 16, 0)).isoformat() == "2026-12-06T00:00:00+08:00"
