"""Request size cap (ASGI middleware) and a token bucket per department."""
from __future__ import annotations

import json
import time

from api.rate_store import Failover, RedisBuckets
from api.shared_buckets import SharedBuckets
from base.errors import RateLimited

MAX_BODY = 16 * 1024
PATH_LIMITS = {"/v1/federation/access": 1024 * 1024}      # a peer's batch of access reports


class BodyLimit:
    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = PATH_LIMITS.get(scope.get("path", ""), self.limit)
        for k, v in scope.get("headers", ()):
            if k == b"content-length" and (not v.isdigit() or int(v) > limit):
                return await _too_large(send, limit)
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > limit:
                raise _TooLarge()
            return msg
        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, limit)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"type": "about:blank", "title": "Request too large", "status": 413,
                       "detail": f"request bodies are at most {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """`rate` requests per second per department, bursts up to `burst`; the buckets live in
    this process, or with `shared` (a table file, api/shared_buckets.py) in every worker of the
    server at once, or with `store` (Redis, api/rate_store.py) in every API host at once, the
    host's own buckets standing in while Redis does not answer."""

    def __init__(self, rate: float, burst: int, shared: str | None = None,
                 store: RedisBuckets | None = None):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._shared = None
        if shared:
            self._shared = SharedBuckets(shared)
        self.failover = Failover(store, self._take_here) if store is not None else None

    def take(self, key: str, who: str | None = None) -> None:
        """`who`: the bucket's owner as the 429 names it (default: department `key`)."""
        tokens = self.failover.take(key) if self.failover is not None else self._take_here(key)
        if tokens < 1:
            raise RateLimited(f"请求过于频繁 (too many requests): "
                              f"more than {self.rate:g} requests per second from {who or 'department ' + key}; "
                              "slow down", (1 - tokens) / self.rate)

    def _take_here(self, key: str) -> float:
        """The key's tokens on this host before this take (one taken if ≥ 1)."""
        now = time.monotonic()        # CLOCK_MONOTONIC: one clock for every process on the host

        def update(tokens, last):
            if tokens is None:
                tokens, last = self.burst, now
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            return ((tokens, now), tokens) if tokens < 1 else ((tokens - 1, now), tokens)

        if self._shared is not None:
            return self._shared.exchange(key, now, self.burst / self.rate, update)
        (self._buckets[key], tokens) = update(*self._buckets.get(key, (None, None)))
        return tokens
