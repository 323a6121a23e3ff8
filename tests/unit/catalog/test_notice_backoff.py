"""Change notices' retry timing and settings: exponential backoff with full jitter from an
injected random source (deterministic for a seed), capped; positive seconds only."""
from __future__ import annotations

import random

import pytest

from base.errors import ConfigError
from base.settings import _notice_settings
from catalog.serving.notices import backoff


def test_backoff_is_full_jitter_under_an_exponential_ceiling():
    rng = random.Random(3)
    waits = [[backoff(n, 30, 600, rng) for _ in range(200)] for n in range(1, 8)]
    for n, ws in enumerate(waits, start=1):
        ceiling = min(600, 30 * 2 ** (n - 1))
        assert all(0 <= w <= ceiling for w in ws)
        assert max(ws) > 0.8 * ceiling and min(ws) < 0.2 * ceiling     # spread over the whole range
    assert [backoff(3, 30, 600, random.Random(9)) for _ in range(2)] == [backoff(3, 30, 600, random.Random(9))] * 2


def test_notice_settings_are_positive_seconds():
    env = {"EXCHANGE_NOTICE_DEAD_AFTER": "3600", "EXCHANGE_NOTICE_TIMEOUT": "2.5"}
    assert _notice_settings(env.get) == {"notice_dead_after": 3600.0, "notice_timeout": 2.5}
    for bad in ("0", "-5", "soon"):
        with pytest.raises(ConfigError, match="EXCHANGE_NOTICE_RETRY_BASE"):
            _notice_settings({"EXCHANGE_NOTICE_RETRY_BASE": bad}.get)
