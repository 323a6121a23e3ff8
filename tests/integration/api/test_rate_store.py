"""The Redis token bucket (api/rate_store.py) through a real Redis on 127.0.0.1:6379: the Lua
script's arithmetic, its expiry, its reload after NOSCRIPT, atomic takes from two processes, and
the failover to the host's own buckets when Redis is down (a dead port; a Redis stopped mid-flight)."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest
import redis

from api import rate_store
from api.limits import RateLimiter
from api.rate_store import RedisBuckets
from base.errors import RateLimited

URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> redis.Redis:
    client = rate_store.client(URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {URL} ({exc}): start it with "
                    "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`")
    return client


@pytest.fixture
def prefix():
    """A key prefix of this test's own, its keys deleted afterwards."""
    client = _redis_or_skip()
    p = f"test:rate:{uuid.uuid4().hex}:"
    yield p
    keys = list(client.scan_iter(match=p + "*"))
    if keys:
        client.delete(*keys)


def _buckets(prefix: str, rate: float, burst: int, url: str = URL) -> RedisBuckets:
    return RedisBuckets(rate_store.client(url), prefix, rate, burst)


def test_the_lua_bucket_refills_takes_and_expires(prefix):
    b = _buckets(prefix, 1e-3, 3)                # a refill too slow to show in these few calls
    assert b.take("d") == 3.0                    # a new bucket is full; one token taken
    assert b.take("d") == pytest.approx(2.0, abs=1e-3)
    assert b.take("d") == pytest.approx(1.0, abs=1e-3)
    left = b.take("d")                           # none left: refused, nothing taken
    assert left < 1 and left == pytest.approx(0.0, abs=1e-3)
    assert b.take("other") == 3.0                # each key its own bucket
    ttl = b.client.pttl(prefix + "d")            # the bucket lives until it would be full again
    assert 3_000_000 < ttl <= 3_001_000

    fast = _buckets(prefix, 20, 1)               # 20 tokens/s, burst 1: refill in 50 ms
    assert fast.take("f") == 1.0
    empty = fast.take("f")
    assert empty < 1                             # Retry-After (1 - tokens) / rate: at most 50 ms
    time.sleep(0.06)
    assert fast.take("f") >= 1                   # refilled on the Redis server's clock
    stored = fast.client.hgetall(prefix + "f")
    server_us = (lambda s, us: s * 1_000_000 + us)(*fast.client.time())
    assert 0 <= server_us - int(stored[b"at"]) < 1_000_000     # the server's TIME, in microseconds
    assert 1_000 < fast.client.pttl(prefix + "f") <= 1_050     # burst/rate (50 ms) + 1 s
    time.sleep(1.2)
    assert not fast.client.exists(prefix + "f")  # idle departments expire


def test_the_script_is_loaded_again_after_noscript(prefix):
    b = _buckets(prefix, 1e-3, 5)
    assert b.take("d") == 5.0
    b._loaded = True
    real = b.client.evalsha
    calls = []

    def evalsha(sha, *args):                     # the first call finds no script, as after a restart
        calls.append(sha)
        if len(calls) == 1:
            raise redis.exceptions.NoScriptError("NOSCRIPT No matching script")
        return real(sha, *args)

    b.client.evalsha = evalsha
    assert b.take("d") == pytest.approx(4.0, abs=1e-3)
    assert calls == [rate_store.TAKE_SHA] * 2
    assert b.client.script_exists(rate_store.TAKE_SHA) == [True]


def _hammer(prefix: str, n: int, q) -> None:
    b = _buckets(prefix, 1e-6, 30)               # no refill to speak of: the burst is all there is
    q.put(sum(b.take("dept-a") >= 1 for _ in range(n)))


def test_two_processes_share_one_bucket_atomically(prefix):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(prefix, 200, q)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert sum(got) == 30, got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_redis_falls_back_to_the_hosts_own_limit(prefix, caplog):
    limiter = RateLimiter(1e-3, 3, store=_buckets(prefix, 1e-3, 3, f"redis://127.0.0.1:{_free_port()}/0"))
    with caplog.at_level(logging.WARNING, logger="exchange.api"):
        started = time.monotonic()
        for _ in range(3):
            limiter.take("d")                    # the API answers: this host's burst
        with pytest.raises(RateLimited) as exc:  # and still limits: not lifted
            limiter.take("d")
        assert time.monotonic() - started < 1    # no retry storm, no long timeout per request
    assert exc.value.retry_after > 0
    assert limiter.failover.fallbacks == 4
    warnings = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(warnings) == 1 and "ConnectionError" in warnings[0], warnings


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_redis_stopped_mid_flight_and_back(prefix, tmp_path, caplog):
    port = _free_port()

    # a server's own clock: not the moved one of the suite's second pass (libfaketime)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}

    def start():
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(host="127.0.0.1", port=port).ping()
                return proc
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    clock = [0.0]
    server = start()
    try:
        store = _buckets(prefix, 1e-3, 5, f"redis://127.0.0.1:{port}/0")
        limiter = RateLimiter(1e-3, 2, store=store)      # this host's own: burst 2; shared: 5
        limiter.failover.clock = lambda: clock[0]
        limiter.take("d")
        limiter.take("d")
        assert limiter.failover.fallbacks == 0
        server.terminate()
        server.wait(10)
        with caplog.at_level(logging.WARNING, logger="exchange.api"):
            limiter.take("d")                    # Redis gone: this host's bucket (full) serves
            limiter.take("d")
            with pytest.raises(RateLimited):
                limiter.take("d")
            assert limiter.failover.fallbacks == 3
            server = start()                     # a restarted Redis: empty, no scripts
            clock[0] += 0.5
            with pytest.raises(RateLimited):     # not retried yet (1 s after the failure)
                limiter.take("d")
            clock[0] += 1
            limiter.take("d")                    # back on Redis: a new bucket there
            assert limiter.failover.fallbacks == 4 and limiter.failover.down_since is None
            assert store.client.exists(prefix + "d")
        said = [r.getMessage() for r in caplog.records]
        assert any("does not answer" in m for m in said) and any("answers again" in m for m in said), said
    finally:
        server.terminate()
        server.wait(10)
