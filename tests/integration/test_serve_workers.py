"""`exchange serve --workers 2`: two processes answer, and a department's rate limit is one
limit for the server, not one per worker."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import ROOT

PURPOSE = "DJ-SCJG-0003"


def test_two_workers_share_the_rate_limit(tmp_path):
    from catalog.access import Access
    from catalog.db import engine_for

    home = tmp_path / "home"
    url = f"sqlite:///{home / 'catalog.db'}"
    access = Access(engine_for(url), 0)
    access.add_department("dept-w", "Workers test")
    key = access.issue_credential("dept-w")["key"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "EXCHANGE_HOME": str(home), "EXCHANGE_CATALOG_URL": url,
           "EXCHANGE_API_RATE": "0.001", "EXCHANGE_API_BURST": "20", "TMPDIR": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", "exchange.cli", "serve", "--port", str(port),
                               "--workers", "2"], cwd=ROOT, env=env)
    try:
        def get(path, headers=None):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)   # a new connection each
            try:
                c.request("GET", path, headers=headers or {})
                r = c.getresponse()
                return r.status, r.getheader("retry-after"), r.read()
            finally:
                c.close()

        deadline = time.monotonic() + 60
        while True:
            try:
                if get("/health")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        workers = _children(server.pid)
        assert len(workers) == 2, workers
        before = {w: _written(w) for w in workers}
        codes, retry_after, sent = [], [], {}
        with ThreadPoolExecutor(12) as pool:      # concurrent connections: both workers accept
            for _ in range(30):                   # until both have answered (one may start late)
                got = list(pool.map(lambda _: get(f"/v1/datasets?purpose={PURPOSE}",
                                                  {"Authorization": f"Bearer {key}"}), range(24)))
                codes += [s for s, _, _ in got]
                retry_after += [int(ra) for s, ra, _ in got if s == 429]
                sent = {w: _written(w) - before[w] for w in workers}
                if all(n > 2_000 for n in sent.values()):
                    break
        assert all(n > 2_000 for n in sent.values()), f"bytes each worker wrote: {sent}"
        assert codes.count(200) == 20 and codes.count(429) == len(codes) - 20, codes
        assert all(ra > 0 for ra in retry_after)
    finally:
        server.terminate()
        server.wait(20)
    assert not list(tmp_path.glob("exchange-api-buckets-*"))     # the shared table is removed


def _children(pid: int) -> list[int]:
    """The uvicorn workers under the serve process (not multiprocessing's resource tracker)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    tracker = b"resource_tracker" in f.read()
            except OSError:
                continue
            if parent == pid and not tracker:
                out.append(int(d))
    return out


def _written(pid: int) -> int:
    """Bytes the process has written through system calls (responses on its sockets)."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
