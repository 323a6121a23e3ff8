"""Bounded retries with exponential backoff and full jitter; honours Retry-After."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from base import clock

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6               # tries per request, the first included
    backoff: float = 0.5            # seconds; doubles each attempt
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After fails the run instead of waiting

    def delay(self, attempt: int, rng: random.Random = random._inst) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date (RFC 9110 §10.2.3); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or clock.now())).total_seconds())
