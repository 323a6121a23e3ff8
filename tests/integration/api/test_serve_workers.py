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

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT

PURPOSE = "DJ-SCJG-0003"


def test_two_workers_share_the_rate_limit(tmp_path):
    from catalog.db.engine import engine_for
    from catalog.serving.access import Access

    home = tmp_path / "home"
    url = f"sqlite:///{home / 'catalog.db'}"
    access = Access(engine_for(url), 0)
    access.add_department("dept-w", "Workers test")
    key = access.issue_credential("dept-w")["key"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "EXCHANGE_HOME": str(home), "EXCHANGE_CATALOG_URL": url,
           "EXCHANGE_API_RATE": "0.001", "EXCHANGE_API_BURST": "20", "TMPDIR": str(tmp_path),
           "EXCHANGE_METRICS_TOKEN": "workers-metrics"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port),
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
        for _ in range(6):        # whichever worker answers /metrics counts both workers' requests
            status, _, body = get("/metrics", {"Authorization": "Bearer workers-metrics"})
            assert status == 200
            counted = {s.labels["status"]: s.value for fam in text_string_to_metric_families(body.decode())
                       for s in fam.samples if s.name == "exchange_api_requests_total"
                       and s.labels["route"] == "/v1/datasets"}
            assert counted == {"200": 20.0, "429": float(len(codes) - 20)}, counted
    finally:
        server.terminate()
        server.wait(20)
    assert not list(tmp_path.glob("exchange-api-buckets-*"))     # the shared table is removed
    assert not list(tmp_path.glob("exchange-api-metrics-*"))     # and the workers' metric files


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


def test_a_logged_out_dashboard_session_is_refused_by_both_workers(tmp_path):
    """Sessions live in the catalogue: after a logout, the same cookie opens nothing in either
    worker (and before it, either worker honours it: `serve --workers` gives both one secret)."""
    import re
    from urllib.parse import urlencode

    from catalog.db.engine import engine_for
    from catalog.serving.access import Access

    home = tmp_path / "home"
    url = f"sqlite:///{home / 'catalog.db'}"
    access = Access(engine_for(url), 0)
    access.add_department("audit-w", "审计局", role="auditor")
    key = access.issue_credential("audit-w")["key"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "EXCHANGE_HOME": str(home), "EXCHANGE_CATALOG_URL": url}
    env.pop("EXCHANGE_DASHBOARD_SECRET", None)
    origin = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port),
                               "--workers", "2"], cwd=ROOT, env=env)

    def call(method, path, cookies=None, form=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)     # a new connection each
        headers = {"Origin": origin} if method == "POST" else {}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            c.request(method, path, body=urlencode(form) if form is not None else None, headers=headers)
            r = c.getresponse()
            got = {m.group(1): m.group(2) for h in r.headers.get_all("set-cookie") or []
                   if (m := re.match(r"([^=]+)=([^;]*)", h))}
            return r.status, got, r.read().decode()
        finally:
            c.close()

    def token(html):
        m = re.search(r'name="csrf" value="([^"]+)"', html)
        return {"csrf": m.group(1)} if m else {}

    def from_both(cookie):
        """Status codes of /dashboard/audit with the cookie, until both workers have answered."""
        workers = _children(server.pid)
        before = {w: _written(w) for w in workers}
        codes = []
        with ThreadPoolExecutor(12) as pool:
            for _ in range(30):
                codes += [s for s, _, _ in pool.map(
                    lambda _: call("GET", "/dashboard/audit", {"exchange_dashboard": cookie}), range(24))]
                if all(_written(w) > before[w] + 500 for w in workers):
                    return codes
        raise AssertionError("one worker never answered")

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call("GET", "/health")[0] == 200 and len(_children(server.pid)) == 2:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        status, pre, html = call("GET", "/dashboard/login")
        status, got, _ = call("POST", "/dashboard/login", pre,
                              {"key": key, "next": "/dashboard/audit", **token(html)})
        assert status == 303, status
        cookie = got["exchange_dashboard"]
        assert set(from_both(cookie)) == {200}
        _, _, page = call("GET", "/dashboard/audit", {"exchange_dashboard": cookie})
        assert call("POST", "/dashboard/logout", {"exchange_dashboard": cookie}, token(page))[0] == 303
        assert set(from_both(cookie)) == {303}, "a worker still honours the logged-out cookie"
    finally:
        server.terminate()
        server.wait(20)
