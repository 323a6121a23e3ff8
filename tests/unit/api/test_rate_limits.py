"""The per-department rate limit holds for a whole server: worker processes share their token
buckets through one mapped file (api/shared_buckets.py)."""
from __future__ import annotations

import multiprocessing as mp

import pytest

from api.limits import RateLimiter
from api.shared_buckets import SharedBuckets, create
from base.errors import RateLimited


def _hammer(shared: str | None, n: int, q) -> None:
    limiter = RateLimiter(1e-6, 30, shared)      # no refill to speak of: the burst is all there is
    allowed = 0
    for _ in range(n):
        try:
            limiter.take("dept-a")
            allowed += 1
        except RateLimited:
            pass
    q.put(allowed)


def _allowed_in_two_processes(shared: str | None) -> list[int]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(shared, 100, q)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    return got


def test_two_processes_share_one_bucket(tmp_path):
    table = str(create(tmp_path / "buckets"))
    assert sum(_allowed_in_two_processes(table)) == 30
    assert _allowed_in_two_processes(None) == [30, 30]      # per process: twice the limit


def test_refill_and_retry_after(tmp_path):
    clock = [1000.0]
    limiter = RateLimiter(10, 2, str(create(tmp_path / "b")))
    import api.limits as limits
    real = limits.time.monotonic
    limits.time.monotonic = lambda: clock[0]
    try:
        limiter.take("d")
        limiter.take("d")
        with pytest.raises(RateLimited) as exc:
            limiter.take("d")
        assert exc.value.retry_after == pytest.approx(0.1)
        clock[0] += 0.1
        limiter.take("d")                 # one token back after 1/rate seconds
        limiter.take("other")             # other keys have their own bucket
        limiter.take("other")
    finally:
        limits.time.monotonic = real


def test_slots_persist_stale_ones_are_reused_and_a_full_table_still_answers(tmp_path):
    from api import shared_buckets

    table = SharedBuckets(create(tmp_path / "b"))

    def found(now, refill):
        return lambda k: table.exchange(k, now, refill, lambda tokens, last: ((1.0, now), tokens is not None))

    live = found(0.0, 1e9)
    keys = [f"client-{i}" for i in range(shared_buckets.SLOTS + 500)]
    assert not any(live(k) for k in keys[:1000]) and all(live(k) for k in keys[:1000])
    for k in keys[1000:]:                  # more keys than slots, all live: the oldest give way
        live(k)
    assert live(keys[-1])
    later = found(10.0, 1.0)               # every bucket has refilled: any slot may be reused
    fresh = [f"other-{i}" for i in range(2000)]
    assert not any(later(k) for k in fresh) and all(later(k) for k in fresh)
