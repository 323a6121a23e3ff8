"""The API's hot path: lookups read on the driver, audit appends that wait for a taken SQLite
write lock without blocking the loop, and cached credentials that stop working promptly."""
from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from catalog.serving import audit
from catalog.serving.access import now_utc

ITEM = "DJ-SCJG-0003"


def _app(settings, dept, **kw):
    from api.app import create_app

    app = create_app(settings, rate=10_000, burst=10_000, **{"cache_ttl": 0, **kw})
    access = app.state.consumer.access
    access.add_department(dept, dept)
    cred = access.issue_credential(dept)
    return app, access, cred


def test_lookup_on_the_driver_matches_the_catalogue(api_settings):
    """Catalog.lookup (a compiled statement on the driver) against the same rows read through
    the ORM, on a day that makes some of them expired."""
    from catalog.db.models import Dataset, Record
    from catalog.publish import status as statuses
    from catalog.service import Catalog

    cat = Catalog(api_settings.catalog_url, api_settings.store)
    with cat.session() as c:
        holders = c.execute(sa.select(Record.holder_key).distinct().order_by(Record.holder_key)
                            .limit(80)).scalars().all()
        want = {h: c.execute(sa.select(Record, Dataset.title).join(
            Dataset, sa.and_(Dataset.id == Record.dataset_id, Dataset.current_version == Record.version))
            .where(Record.holder_key == h).order_by(Record.dataset_id, Record.licence_number)).all()
            for h in holders}
    ends = sorted(r.valid_to for rows in want.values() for r, _ in rows if r.valid_to)
    day = ends[len(ends) // 2]
    seen = set()
    for h in holders:
        got = cat.lookup(h, day)
        assert got == [{"record_id": r.record_id, "dataset": r.dataset_id, "title": title,
                        "version": r.version, "licence_number": r.licence_number,
                        "holder_name": r.holder_name,
                        "status": statuses.standing(r.status, r.valid_to, day),
                        "valid_to": r.valid_to.isoformat() if r.valid_to else None,
                        "disputed": False}     # no quarantined row holds one back here
                       for r, title in want[h]], h
        seen.update(x["status"] for x in got)
    assert {"valid", "expired"} <= seen, seen


def _hold_write_lock(db, seconds: float) -> threading.Thread:
    """Another connection takes SQLite's write lock now and releases it after `seconds`."""
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    t = threading.Thread(target=lambda: (time.sleep(seconds), other.execute("ROLLBACK"), other.close()))
    t.start()
    return t


@pytest.mark.parametrize("busy_limit", [10.0, 0.05])
def test_audit_waits_for_a_taken_sqlite_write_lock(published, monkeypatch, busy_limit):
    """A second worker holding the write lock delays the response until its entry is
    committed: retried off the loop's back (busy_limit 10 s), or after busy_limit by waiting
    in SQLite like any writer. Either way the entry is written before the response."""
    from catalog.serving import audit_writer

    monkeypatch.setattr(audit_writer, "BUSY_LIMIT", busy_limit)
    waits = []
    real = audit.append_many
    monkeypatch.setattr(audit, "append_many", lambda e, rows, wait=True: (waits.append(wait), real(e, rows, wait))[1])
    dept = f"lock-{int(busy_limit * 100)}"
    app, _, cred = _app(published, dept)
    engine = app.state.consumer.engine
    with engine.connect() as c:
        holder = c.execute(sa.text("select holder_key from records limit 1")).scalar_one()
    client = TestClient(app)
    waits.clear()
    holder_thread = _hold_write_lock(published.home / "catalog.db", 0.4)
    t = time.perf_counter()
    r = client.post("/v1/holders/records", params={"purpose": ITEM}, json={"holder_id": holder},
                    headers={"Authorization": f"Bearer {cred['key']}"})
    took = time.perf_counter() - t
    holder_thread.join()
    assert r.status_code == 200, r.text
    assert took >= 0.3, took                      # it waited for the lock: the audit came first
    assert waits[0] is False and (True in waits) == (busy_limit < 0.4), waits
    with engine.connect() as c:
        last = c.execute(sa.text("select department, action, holder from audit_log order by seq desc limit 1")).one()
    assert tuple(last) == (dept, "lookup", holder)
    assert audit.verify_chain(engine).ok


def test_cached_credentials_stop_working_promptly(api_settings):
    """With credentials cached for `cache_ttl` seconds: a revocation through the service
    applies at once, one made elsewhere (another process) within cache_ttl, and an expiry at
    once (it is compared with the clock on every request)."""
    from catalog.db.models import Credential
    from catalog.serving.access import Access

    ttl = 0.5
    app, access, cred = _app(api_settings, "cache-dept", cache_ttl=ttl)
    client = TestClient(app)
    h = {"Authorization": f"Bearer {cred['key']}"}

    def status():
        return client.get("/v1/datasets", params={"purpose": ITEM}, headers=h).status_code

    assert status() == 200                                   # now cached
    Access(app.state.consumer.engine, 0).revoke_credential(cred["key_id"])  # elsewhere
    time.sleep(ttl + 0.1)
    assert status() == 401
    cred2 = access.issue_credential("cache-dept")
    h["Authorization"] = f"Bearer {cred2['key']}"
    assert status() == 200
    access.revoke_credential(cred2["key_id"])                # through this service: at once
    assert status() == 401
    cred3 = access.issue_credential("cache-dept")
    h["Authorization"] = f"Bearer {cred3['key']}"
    app.state.consumer.access.ttl = 60                       # a long cache: expiry still applies
    assert status() == 200
    with app.state.consumer.engine.begin() as c:
        c.execute(sa.update(Credential).where(Credential.key_id == cred3["key_id"])
                  .values(expires_at=now_utc() + timedelta(seconds=2)))
    access.clear()
    assert status() == 200                                   # cached with the new expiry
    time.sleep(2.1)
    assert status() == 401


def test_a_refused_purpose_with_nul_is_audited(api_settings):
    """PostgreSQL cannot store NUL in text: the refused purpose is audited with U+FFFD instead
    of failing the group commit (and with it the other requests of its group)."""
    app, _, cred = _app(api_settings, "nul-dept")
    client = TestClient(app)
    r = client.post("/v1/holders/records", params={"purpose": "DJ\x00SCJG"}, json={"holder_id": "x"},
                    headers={"Authorization": f"Bearer {cred['key']}"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
    engine = app.state.consumer.engine
    with engine.connect() as c:
        last = c.execute(sa.text("select department, purpose, outcome from audit_log order by seq desc limit 1")).one()
    assert tuple(last) == ("nul-dept", "DJ\ufffdSCJG", "refused:400")
    assert audit.verify_chain(engine).ok


def test_sqlite_checkpoints_run_beside_the_commits(tmp_path):
    """The API's writer connection does not checkpoint in its commits; a thread does, so the
    WAL is copied back into the database file without the writer paying for it."""
    from catalog.db.engine import engine_for
    from catalog.db.rawdb import raw

    db = tmp_path / "c.db"
    engine = engine_for(f"sqlite:///{db}")
    r = raw(engine)
    r.checkpoint_aside(every=0.1)
    with r.connection() as c:
        assert c.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    size = db.stat().st_size
    for i in range(300):        # some 1,200 WAL frames: the writer would have checkpointed itself
        audit.append_many(engine, [audit.entry(department="d", purpose=ITEM, action="lookup",
                                               outcome="allowed", detail={"pad": "x" * 2000, "i": i})])
    deadline = time.monotonic() + 5
    while db.stat().st_size <= size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.stat().st_size > size          # the checkpointer copied the new pages back
    assert r._checkpointer.is_alive() and audit.verify_chain(engine).ok


def test_postgresql_chains_in_the_database_for_every_writer_at_once(published_pg):
    """On PostgreSQL the database chains the entries (migration 0010): sync appends from four
    threads and an async group-commit writer, all at once, give one gapless chain whose hashes
    verify_chain recomputes in Python, and each append gets back the seqs it was given."""
    import asyncio

    import psycopg

    from catalog.db.engine import engine_for

    engine = engine_for(published_pg.catalog_url, False)
    with engine.connect() as c:
        start = c.scalar(sa.text("select seq from audit_head where id = 1"))

    def rows(who, n):
        return [audit.entry(department=who, purpose=ITEM, action="lookup", outcome="allowed",
                            holder="H", datasets=["d"], fields=["holder_name"] if n % 2 else None,
                            subject=None if n % 3 else "s",
                            detail={"n": n, "名": "张三", "nul": "a\x00b", "q": "\"\\"}) for _ in range(n)]

    got: dict[str, list[int]] = {}

    def sync_writer(who):
        got[who] = [s for i in range(40) for s in audit.append_many(engine, rows(who, 1 + i % 4))]

    async def async_writer():
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        conn = await psycopg.AsyncConnection.connect(*cargs, **cparams, autocommit=True)
        try:
            got["async"] = [s for i in range(40) for s in await audit.append_many_async(conn, rows("async", 1 + i % 3))]
        finally:
            await conn.close()

    threads = [threading.Thread(target=sync_writer, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    asyncio.run(async_writer())
    for t in threads:
        t.join()
    with engine.connect() as c:
        mine = dict(c.execute(sa.text("select seq, department from audit_log where seq > :a"), {"a": start}).all())
    assert sorted(mine) == list(range(start + 1, start + 1 + len(mine)))
    assert len(mine) == sum(len(v) for v in got.values()) == 4 * 100 + sum(1 + i % 3 for i in range(40))
    for who, seqs in got.items():
        assert {mine[s] for s in seqs} == {who}, who
    assert audit.verify_chain(engine).ok
    victim = start + 57                      # an entry the database hashed: altering it shows
    with engine.begin() as c:
        was = c.scalar(sa.text("select purpose from audit_log where seq = :s"), {"s": victim})
        c.execute(sa.text("update audit_log set purpose = 'altered' where seq = :s"), {"s": victim})
    try:
        report = audit.verify_chain(engine)
        assert not report.ok and report.first_bad_seq == victim, report
    finally:
        with engine.begin() as c:
            c.execute(sa.text("update audit_log set purpose = :p where seq = :s"), {"p": was, "s": victim})
    assert audit.verify_chain(engine).ok
