"""EXCHANGE_API_RATE_STORE: empty keeps each host's own rate limits; a Redis URL shares them;
anything else is refused at start, not at the first request."""
from __future__ import annotations

import pytest

from base.errors import ConfigError
from base.settings import get_settings, reset_settings


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("  ", None),
    ("redis://10.0.0.5:6379/2", "redis://10.0.0.5:6379/2"),
    ("rediss://:pw@redis.internal:6380/0", "rediss://:pw@redis.internal:6380/0"),
    ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
])
def test_the_rate_store_is_a_redis_url_or_none(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("EXCHANGE_API_RATE_STORE", raising=False)
    else:
        monkeypatch.setenv("EXCHANGE_API_RATE_STORE", value)
    monkeypatch.delenv("EXCHANGE_API_RATE_PREFIX", raising=False)
    reset_settings()
    try:
        s = get_settings()
        assert s.api_rate_store == expected and s.api_rate_prefix == "exchange:rate:"
    finally:
        reset_settings()


def test_anything_else_is_refused(monkeypatch):
    monkeypatch.setenv("EXCHANGE_API_RATE_STORE", "127.0.0.1:6379")
    reset_settings()
    try:
        with pytest.raises(ConfigError, match="EXCHANGE_API_RATE_STORE must be a Redis URL"):
            get_settings()
    finally:
        reset_settings()
