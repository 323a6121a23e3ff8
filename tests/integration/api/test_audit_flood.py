"""A flood of refused requests against a real server: the audit log gets a few counted
entries, not one per request, and SQLite's WAL file stays small and shrinks back."""
from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from catalog.serving import audit
from tests.conftest import ROOT, free_port

PURPOSE = "DJ-SCJG-0003"
REQUESTS, CONNECTIONS = 3_000, 6
WAL_BOUND = 4 * 2**20


def _wal_size(db) -> int:
    try:
        return os.path.getsize(f"{db}-wal")
    except FileNotFoundError:
        return 0


def test_a_flood_of_unauthenticated_requests_leaves_a_few_counted_entries(tmp_path):
    from catalog.db.engine import engine_for

    home = tmp_path / "home"
    db = home / "catalog.db"
    url = f"sqlite:///{db}"
    engine = engine_for(url)
    with engine.connect() as c:
        start = c.scalar(sa.text("select seq from audit_head"))
    port = free_port()
    env = {**os.environ, "EXCHANGE_HOME": str(home), "EXCHANGE_CATALOG_URL": url}
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)],
                              cwd=ROOT, env=env)
    wal, stop = [0], threading.Event()

    def watch_wal():
        while not stop.is_set():
            wal[0] = max(wal[0], _wal_size(db))
            time.sleep(0.02)

    def flood(n: int) -> list[int]:
        c, codes = http.client.HTTPConnection("127.0.0.1", port, timeout=10), []
        try:
            for _ in range(n):      # keep-alive: one connection, requests one after another
                c.request("GET", f"/v1/datasets?purpose={PURPOSE}")
                r = c.getresponse()
                r.read()
                codes.append(r.status)
        finally:
            c.close()
        return codes

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/health") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        watcher = threading.Thread(target=watch_wal, daemon=True)
        watcher.start()
        began = time.monotonic()
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            codes = [s for got in pool.map(flood, [REQUESTS // CONNECTIONS] * CONNECTIONS) for s in got]
        took = time.monotonic() - began
        assert len(codes) == REQUESTS and set(codes) == {401, 429}, set(codes)
        assert took < 120, f"the flood took {took:.0f} s"
    finally:
        server.send_signal(signal.SIGTERM)       # a clean stop writes the open windows' counts
        server.wait(30)
        stop.set()
    assert server.returncode in (0, -signal.SIGTERM)   # uvicorn re-raises the signal once stopped
    with engine.connect() as c:
        rows = c.execute(sa.select(audit._log.c.department, audit._log.c.action, audit._log.c.outcome,
                                   audit._log.c.detail).where(audit._log.c.seq > start)).all()
    assert len(rows) <= 8, f"{len(rows)} audit entries for one client's flood"
    assert {r.department for r in rows} == {"-"} and {r.outcome for r in rows} == {"refused:401", "refused:429"}
    assert sum(r.detail["count"] for r in rows) == REQUESTS          # nothing lost
    assert {r.detail["client"] for r in rows} == {"127.0.0.1"}
    summaries = [r for r in rows if r.action == "refusals"]
    assert summaries and all(r.detail["actions"] == {"catalogue": r.detail["count"]} for r in summaries)
    assert wal[0] < WAL_BOUND, f"the WAL grew to {wal[0]:,} bytes"
    assert audit.verify_chain(engine).ok


def _get(port: int, path: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_the_wal_shrinks_back_once_readers_let_go(tmp_path, monkeypatch):
    """A reader holding an old snapshot keeps the WAL from starting over, so it grows; once the
    reader is done, the checkpoint thread brings the file back under the limit (it used to stay
    at its largest size for good)."""
    from catalog.db import rawdb
    from catalog.db.engine import engine_for

    monkeypatch.setattr(rawdb, "WAL_LIMIT", 256 * 1024, raising=False)
    db = tmp_path / "c.db"
    engine = engine_for(f"sqlite:///{db}")
    r = rawdb.raw(engine)
    r.checkpoint_aside(every=0.05)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("select count(*) from audit_log").fetchone()     # holds its snapshot
    for i in range(400):
        audit.append_many(engine, [audit.entry(department="d", purpose=PURPOSE, action="lookup",
                                               outcome="allowed", detail={"pad": "x" * 3000, "i": i})])
    grown = _wal_size(db)
    assert grown > 4 * rawdb.WAL_LIMIT, grown
    reader.execute("COMMIT")
    reader.close()
    deadline = time.monotonic() + 10
    while _wal_size(db) > rawdb.WAL_LIMIT and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _wal_size(db) <= rawdb.WAL_LIMIT, f"the WAL stayed at {_wal_size(db):,} bytes (from {grown:,})"
    assert audit.verify_chain(engine).ok


def test_a_window_that_closes_while_serving_writes_its_count(published):
    """The summary is written when the window closes, not only when the server stops; the
    next refusal after it opens a new window (written at once)."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(published, cache_ttl=0)
    app.state.audit_refusals.counter.window = 0.3
    engine = app.state.consumer.engine
    log = audit._log.c

    def since(seq):
        with engine.connect() as c:
            return c.execute(sa.select(log.action, log.outcome, log.detail).where(log.seq > seq)
                             .order_by(log.seq)).all()

    with engine.connect() as c:
        start = c.scalar(sa.text("select seq from audit_head"))
    with TestClient(app, client=("203.0.113.9", 1)) as client:
        for _ in range(5):
            assert client.get("/v1/datasets", params={"purpose": PURPOSE}).status_code == 401
        deadline = time.monotonic() + 5
        while len(since(start)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = since(start)
        assert [(r.action, r.detail["count"]) for r in rows] == [("catalogue", 1), ("refusals", 4)]
        assert client.get("/v1/datasets", params={"purpose": PURPOSE}).status_code == 401
        assert [(r.action, r.detail["count"]) for r in since(start)][2:] == [("catalogue", 1)]
    assert audit.verify_chain(engine).ok
