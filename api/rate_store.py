"""Token buckets in Redis, one per department for every API host at once (EXCHANGE_API_RATE_STORE),
and the failover to the host's own buckets while Redis does not answer.

One Lua script refills and takes in Redis, so two hosts never both spend the last token; it reads
the Redis server's clock (TIME), so the hosts' clocks may disagree; each bucket expires once it
would have refilled completely (burst / rate seconds), so idle departments leave nothing behind."""
from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable

import redis

log = logging.getLogger("exchange.api")

# KEYS[1]: the bucket (a hash: tokens, at = microseconds on the server's clock)
# ARGV: rate (tokens per second), burst, expiry (ms). Returns the tokens before this take (a
# string: Redis would cut a Lua number to an integer); one is taken when there is one.
TAKE = """
local rate, burst, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]), tonumber(held[2])
if tokens == nil or at == nil then
  tokens, at = burst, now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  at = now
end
local left = tokens
if tokens >= 1 then
  left = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', left), 'at', string.format('%.0f', at))
redis.call('PEXPIRE', KEYS[1], ttl)
return string.format('%.17g', tokens)
"""
TAKE_SHA = hashlib.sha1(TAKE.encode()).hexdigest()
TIMEOUT = 0.25           # seconds to connect or answer: Redis answers a LAN in well under 1 ms


def client(url: str) -> redis.Redis:
    """A client for EXCHANGE_API_RATE_STORE that fails fast (no retries: the limiter falls back)."""
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                                retry=None, retry_on_timeout=False)


class RedisBuckets:
    def __init__(self, client: redis.Redis, prefix: str, rate: float, burst: int):
        self.client, self.prefix = client, prefix
        self.rate, self.burst = rate, burst
        self._ttl_ms = math.ceil(burst / rate * 1000) + 1000    # then the bucket is full anyway
        self._loaded = False

    def take(self, key: str) -> float:
        """The key's tokens after the refill and before this take (one taken if ≥ 1)."""
        if not self._loaded:                      # on first use (and after a SCRIPT FLUSH/restart)
            self.client.script_load(TAKE)
            self._loaded = True
        args = (1, self.prefix + key, repr(float(self.rate)), self.burst, self._ttl_ms)
        try:
            return float(self.client.evalsha(TAKE_SHA, *args))
        except redis.exceptions.NoScriptError:
            self.client.script_load(TAKE)
            return float(self.client.evalsha(TAKE_SHA, *args))


class Failover:
    """Redis while it answers; this host's own buckets (`local`) while it does not, with a warning
    in the log (at the outage, then once a minute) and a count (`fallbacks`). A limiter outage
    neither takes the API down nor lifts the limits: each host then holds the limit on its own.
    Redis is tried again `retry_s` after a failure, so an outage costs one timeout per retry, not
    one per request."""

    def __init__(self, shared: RedisBuckets, local: Callable[[str], float], retry_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.shared, self.local, self.retry_s, self.clock = shared, local, retry_s, clock
        self.fallbacks = 0                        # requests limited by this host alone
        self.down_since: float | None = None
        self._retry_at = self._warned_at = -math.inf

    def take(self, key: str) -> float:
        now = self.clock()
        if now >= self._retry_at:
            try:
                tokens = self.shared.take(key)
            except redis.RedisError as exc:       # unreachable, timed out, read-only, out of memory …
                self._failed(exc, now)
            else:
                if self.down_since is not None:
                    log.warning("rate limits: the shared store answers again after %.1f s; %d requests "
                                "were limited by this host alone", now - self.down_since, self.fallbacks)
                    self.down_since, self._warned_at = None, -math.inf
                return tokens
        self.fallbacks += 1
        return self.local(key)

    def _failed(self, exc: Exception, now: float) -> None:
        self.shared._loaded = False               # a restarted Redis has no scripts
        self._retry_at = now + self.retry_s
        if self.down_since is None:
            self.down_since = now
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("rate limits: the shared store (Redis) does not answer (%s: %s); each API host "
                        "limits departments on its own until it does (%d requests so far)",
                        type(exc).__name__, exc, self.fallbacks)
