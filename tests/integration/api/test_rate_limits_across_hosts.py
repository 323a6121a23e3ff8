"""Two API hosts (`exchange serve` processes, each with its own home, one catalogue) sharing one
Redis (EXCHANGE_API_RATE_STORE): a department's burst is one burst for both, it refills, and a
refusal is a 429 with Retry-After; with Redis unreachable a host still answers and still limits."""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from api import rate_store
from tests.conftest import ROOT, wait_until_serving

URL = "redis://127.0.0.1:6379/0"
PURPOSE = "DJ-SCJG-0003"
RATE, BURST = 2.0, 10


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, key: str):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)     # a new connection each
    try:
        c.request("GET", f"/v1/datasets?purpose={PURPOSE}", headers={"Authorization": f"Bearer {key}"})
        r = c.getresponse()
        r.read()
        return port, r.status, r.getheader("retry-after")
    finally:
        c.close()


@pytest.fixture
def department(tmp_path):
    from catalog.db.engine import engine_for
    from catalog.serving.access import Access

    url = f"sqlite:///{tmp_path / 'shared' / 'catalog.db'}"
    access = Access(engine_for(url), 0)
    access.add_department("dept-h", "Hosts test")
    return url, access.issue_credential("dept-h")["key"]


def _serve(tmp_path, name: str, catalog_url: str, store: str, prefix: str, clock: str = "", **popen):
    """An API host; `clock`: its clock moved by libfaketime (e.g. "+1h"), where it is installed."""
    port = _port()
    moved = ["faketime", "-f", clock] if clock and shutil.which("faketime") else []
    env = {**os.environ, "EXCHANGE_HOME": str(tmp_path / name), "EXCHANGE_CATALOG_URL": catalog_url,
           "EXCHANGE_API_RATE": str(RATE), "EXCHANGE_API_BURST": str(BURST),
           "EXCHANGE_API_RATE_STORE": store, "EXCHANGE_API_RATE_PREFIX": prefix}
    # its own process group: libfaketime's wrapper does not pass SIGTERM on to the server
    server = subprocess.Popen([*moved, sys.executable, "-m", "cli", "serve", "--port", str(port)],
                              cwd=ROOT, env=env, start_new_session=True, **popen)
    return server, port


def test_two_hosts_share_one_burst_that_refills(tmp_path, department):
    client = rate_store.client(URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {URL} ({exc}): start it with "
                    "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''`")
    catalog_url, key = department
    prefix = f"test:hosts:{uuid.uuid4().hex}:"
    # host b's clock an hour ahead: the buckets run on the Redis server's clock, not the hosts'
    hosts = [_serve(tmp_path, "host-a", catalog_url, URL, prefix),
             _serve(tmp_path, "host-b", catalog_url, URL, prefix, clock="+1h")]
    ports = [port for _, port in hosts]
    try:
        for server, port in hosts:
            wait_until_serving(server, port)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:       # both hosts at once, alternately
            got = list(pool.map(lambda i: _get(ports[i % 2], key), range(40)))
        burst_s = time.monotonic() - started
        allowed = [p for p, status, _ in got if status == 200]
        refused = [(p, ra) for p, status, ra in got if status == 429]
        assert len(allowed) + len(refused) == 40, got
        # one bucket for both: the burst plus what refilled meanwhile, not a burst per host
        assert BURST <= len(allowed) <= BURST + RATE * burst_s + 1, (len(allowed), burst_s)
        assert len(allowed) < 2 * BURST
        assert set(allowed) == set(ports) and {p for p, _ in refused} == set(ports)
        assert all(ra is not None and int(ra) >= 1 for _, ra in refused), refused

        time.sleep(1.1)                           # ≥ 2.2 tokens back at 2/s: one on each host
        again = [_get(port, key) for port in ports]
        assert [status for _, status, _ in again] == [200, 200], again
        total_s = time.monotonic() - started
        assert len(allowed) + 2 <= BURST + RATE * total_s + 1
        bucket = client.hgetall(prefix + "dept-h")
        assert bucket and 0 < client.pttl(prefix + "dept-h") <= (BURST / RATE + 1) * 1000
    finally:
        for server, _ in hosts:
            os.killpg(server.pid, signal.SIGTERM)
        for server, _ in hosts:
            server.wait(20)
        client.delete(prefix + "dept-h")


def test_a_host_whose_redis_is_unreachable_still_answers_and_limits(tmp_path, department):
    catalog_url, key = department
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        server, port = _serve(tmp_path, "host-c", catalog_url, f"redis://127.0.0.1:{_port()}/0",
                              "test:dead:", stderr=err)
        try:
            wait_until_serving(server, port)
            got = [_get(port, key) for _ in range(BURST + 5)]
        finally:
            server.terminate()
            server.wait(20)
    statuses = [status for _, status, _ in got]
    assert statuses.count(200) >= BURST and statuses.count(429) >= 1, statuses     # not lifted
    assert all(int(ra) >= 1 for _, status, ra in got if status == 429)
    said = log.read_text()
    assert "rate limits: the shared store (Redis) does not answer" in said, said[-2000:]
