"""One way to write times: ISO 8601 with an offset for programs, the display zone for people."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from base import times
from base.errors import ConfigError
from base.settings import get_settings, reset_settings

NAIVE = datetime(2026, 12, 5, 15, 0, 20, 36556)          # as SQLite hands a stored time back (UTC)


def test_machine_form_always_has_an_offset():
    assert times.iso(NAIVE) == "2026-12-05T15:00:20.036556+00:00"
    assert times.iso(NAIVE.replace(tzinfo=timezone(timedelta(hours=8)))) == "2026-12-05T07:00:20.036556+00:00"
    assert times.iso(NAIVE, "seconds") == "2026-12-05T15:00:20+00:00"
    assert times.iso(None) is None
    assert json.loads(json.dumps({"at": NAIVE, "day": date(2026, 12, 5)}, default=times.json_default)) == \
        {"at": "2026-12-05T15:00:20.036556+00:00", "day": "2026-12-05"}


def test_people_see_beijing_time_by_default(monkeypatch):
    monkeypatch.delenv("EXCHANGE_DISPLAY_TZ", raising=False)
    reset_settings()
    assert get_settings().display_tz == "Asia/Shanghai"
    assert times.local_iso(NAIVE) == "2026-12-05T23:00:20+08:00"
    assert times.shown(NAIVE) == "2026-12-05 23:00"
    assert times.shown("2026-12-05T15:00:20Z") == "2026-12-05 23:00"       # text of an instant too
    assert times.shown("not a time") == "not a time" and times.shown(None) == "–"
    assert times.offset_label() == "UTC+08:00"


def test_the_display_zone_is_a_setting(monkeypatch):
    monkeypatch.setenv("EXCHANGE_DISPLAY_TZ", "Europe/Berlin")
    reset_settings()
    try:
        assert times.local_iso(NAIVE) == "2026-12-05T16:00:20+01:00"
        assert times.local_iso(datetime(2026, 7, 1, 12, tzinfo=UTC)) == "2026-07-01T14:00:00+02:00"   # summer time
        monkeypatch.setenv("EXCHANGE_DISPLAY_TZ", "Mars/Olympus")
        reset_settings()
        with pytest.raises(ConfigError, match="EXCHANGE_DISPLAY_TZ"):
            get_settings()
    finally:
        monkeypatch.delenv("EXCHANGE_DISPLAY_TZ")
        reset_settings()
