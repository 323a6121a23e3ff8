"""The records index is loaded in bulk (catalog/publish/index_load.py: ADBC + ATTACH on SQLite, COPY on
PostgreSQL) and stays part of the publishing transaction: the rows equal the published
version's, on a first version and on one published over it; a failure after the bulk insert
leaves no row, no version and, on SQLite, no scratch file attached or on disk."""
from __future__ import annotations

import shutil
import sqlite3
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from base.errors import PublishError
from base.settings import get_settings, reset_settings
from catalog.db import engine
from catalog.db.models import DatasetVersion, Record
from catalog.publish import index_load, index_rebuild, store
from demo.synth import TABLE
from exchange import stages
from tests.conftest import TODAY, catalog, make_signing_key, register_demo_source
from tests.integration.conftest import server_url

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"
COLUMNS = [*index_load.COLUMNS, "dataset_id", "version"]


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-role"])
def backend(request, home, monkeypatch):
    """The catalogue on SQLite (the default) or on a fresh PostgreSQL database, reached as the
    server's superuser or as a plain role that owns the database."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    server = server_url("postgresql")          # skips, saying why, when the server is absent
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"t_index_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(server).set(database=name)
    with admin.connect() as c:
        if request.param == "postgresql-role":
            c.exec_driver_sql(f'create role "{name}" login nosuperuser')
            url = url.set(username=name, password=None)
        c.exec_driver_sql(f'create database "{name}" owner "{url.username}"')
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", url.render_as_string(False))
    reset_settings()
    try:
        yield request.param
    finally:
        from catalog.db.engine import engine_for
        engine_for.cache_clear()
        with admin.connect() as c:
            c.exec_driver_sql(f'drop database if exists "{name}" with (force)')
            c.exec_driver_sql(f'drop role if exists "{name}"')
        admin.dispose()


@pytest.fixture
def silo(silo_2k, tmp_path):
    """A copy of the 2,000-row silo this test may change."""
    path = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], path)
    return path


def _expected(version_dir, dataset: str, version: int) -> list[tuple]:
    """The index rows the version's files describe, in record-id order: its records, their leaf
    hashes (RFC 8785, RFC 9162) and their log leaf indexes from the version's first."""
    import pyarrow.parquet as pq

    from catalog.signing.canonical import canonical_json
    from catalog.signing.merkle import leaf_hashes

    with catalog().session() as s:
        first = s.scalar(sa.select(DatasetVersion.first_leaf).where(DatasetVersion.version == version))
    plain = [c for c in index_load.COLUMNS if c not in ("leaf_hash", "leaf_index")]
    index = store.index_table(version_dir / "index.parquet", plain).to_pylist()
    leaves = leaf_hashes(canonical_json(pq.read_table(version_dir / "records.parquet")))
    for i, r in enumerate(index):
        r["leaf_hash"], r["leaf_index"] = leaves[i].tobytes().hex(), first + i
    rows = [tuple(r[c] for c in index_load.COLUMNS) + (dataset, version) for r in index]
    return sorted(rows)


def _stored(version: int) -> list[tuple]:
    """The records rows of a version as the catalogue reads them (SQLAlchemy's types)."""
    r = Record.__table__.c
    with catalog().engine.connect() as c:
        rows = c.execute(sa.select(*(r[x] for x in COLUMNS)).where(r.version == version)
                         .order_by(r.record_id)).all()
    return [tuple(row) for row in rows]


def _version_dir(version: int) -> Path:
    with catalog().session() as s:
        key = s.scalar(sa.select(DatasetVersion.path).where(DatasetVersion.version == version))
    assert not key.startswith("/")                 # a key in the store, never a machine's path
    return get_settings().store.local_path(key)


def test_index_rows_equal_the_published_versions(backend, home, silo):
    register_demo_source(home, silo)
    first = stages.run_all(SOURCE, "r1", TODAY)
    dataset = first["dataset"]
    v1 = _expected(_version_dir(1), dataset, 1)
    assert len(v1) == first["tree_size"] > 1_900
    assert _stored(1) == v1
    assert any(r[6] is None for r in v1) and any(isinstance(r[6], date) for r in v1)   # valid_to both ways

    # a second version over the first: rows land among the first version's (same record ids)
    with sqlite3.connect(silo) as c:
        c.execute(f'update {TABLE} set "QYMC" = "QYMC" || \'（变更）\' where "ID" % 50 = 0')
        c.execute(f'update {TABLE} set "DJZT" = \'吊销\' where "ID" % 77 = 0')
        c.execute(f'delete from {TABLE} where "ID" % 97 = 0')          # gone: carried as withdrawn
    second = stages.run_all(SOURCE, "r2", TODAY + timedelta(days=1))
    assert second["version"] == 2 and second["changes"]["withdrawn"] > 0
    v2 = _expected(_version_dir(2), dataset, 2)
    assert _stored(2) == v2 and _stored(1) == v1
    assert {r[5] for r in v2} >= {"valid", "revoked", "withdrawn"}
    # the log: version 2 holds only the states that changed
    ch = second["changes"]
    assert len(v2) == ch["changed"] + ch["withdrawn"] + ch["new"] < 200
    assert len({r[0] for r in v2} - {r[0] for r in v1}) == ch["new"]
    assert [r[-3] for r in sorted(v2, key=lambda r: r[-3])] == list(range(len(v1), len(v1) + len(v2)))  # leaves
    assert sum(r[3].endswith("（变更）") for r in v2) >= 35


def test_the_bulk_path_stores_what_executemany_stores(home, silo, tmp_path, monkeypatch):
    """SQLite: byte for byte the rows (and SQLite storage classes) of the generic path."""
    register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    bulk_db = get_settings().home / "catalog.db"
    query = ("select record_id, version, dataset_id, leaf_index, holder_key, holder_code_type, holder_name, "
             "licence_number, status, valid_to, typeof(valid_to), typeof(leaf_index) from records order by 1, 2")
    with sqlite3.connect(bulk_db) as c:
        bulk = c.execute(query).fetchall()

    other = tmp_path / "home2"
    monkeypatch.setenv("EXCHANGE_HOME", str(other))
    reset_settings()
    make_signing_key()
    monkeypatch.setattr(index_load, "loader", index_load.IndexLoader)   # the generic executemany
    register_demo_source(other, silo)
    stages.run_all(SOURCE, "r1", TODAY)
    with sqlite3.connect(other / "catalog.db") as c:
        generic = c.execute(query).fetchall()
    assert len(bulk) > 1_900 and bulk == generic


def _attached(engine) -> set[str]:
    """Databases attached to any pooled connection besides main (and temp)."""
    conns = [engine.connect() for _ in range(max(1, engine.pool.checkedin()))]
    try:
        return {row[1] for c in conns for row in c.exec_driver_sql("PRAGMA database_list")} - {"main", "temp"}
    finally:
        for c in conns:
            c.close()


def test_a_failure_after_the_bulk_insert_leaves_nothing(backend, home, silo, monkeypatch):
    register_demo_source(home, silo)
    from catalog import service

    seen = {}
    insert_index = service._insert_index

    def fail_after_insert(loader, dataset, version, *args):
        insert_index(loader, dataset, version, *args)
        # inside the transaction: the bulk insert has happened
        seen["rows"] = loader.conn.execute(sa.text("select count(*) from records where version = :v"),
                                           {"v": version}).scalar_one()
        if backend == "sqlite":
            seen["scratch"] = [p for p in home.glob(".index-scratch-*")]
        raise RuntimeError("power cut after the index was written")

    with monkeypatch.context() as m:
        m.setattr(service, "_insert_index", fail_after_insert)
        with pytest.raises(PublishError, match="nothing of it was kept"):
            stages.run_all(SOURCE, "r1", TODAY)
    assert seen["rows"] > 1_900
    engine = catalog().engine
    with engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from records")) == 0
        assert c.scalar(sa.text("select count(*) from dataset_versions")) == 0
        assert c.scalar(sa.text("select current_version from datasets")) is None
        assert c.scalar(sa.text("select state from runs")) == "failed"
    assert get_settings().store.list("store/business_licence.market_regulation") == []
    if backend == "sqlite":
        assert seen["scratch"], "the scratch file lives beside the catalogue while publishing"
        assert not list(home.glob(".index-scratch-*"))
        assert _attached(engine) == set()

    again = stages.publish(SOURCE, "r1")
    assert again["version"] == 1
    assert _stored(1) == _expected(_version_dir(1), again["dataset"], 1)
    if backend == "sqlite":
        assert not list(home.glob(".index-scratch-*")) and _attached(engine) == set()
    with engine.connect() as c, pytest.raises(sa.exc.IntegrityError):   # the key is still enforced
        c.execute(sa.insert(Record).values(record_id="0" * 32, version=1, dataset_id="no.such.dataset",
                                           leaf_index=0, holder_key="x", holder_code_type="001",
                                           holder_name="x", licence_number="x", status="valid"))


def test_a_killed_publish_leaves_scratch_that_the_next_one_sweeps(home, silo):
    """SIGKILL in the middle of publishing (the index ingested, its scratch files attached):
    the catalogue keeps nothing of the version and the scratch directory stays behind; the next
    publish removes it, but not the one a live process is still using."""
    import os
    import subprocess
    import sys

    from catalog.publish.scratch_dirs import Scratch, fs_now

    register_demo_source(home, silo)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal\nfrom catalog import service\n"
        "from exchange import stages\n"
        "insert_index = service._insert_index\n"
        "service._insert_index = lambda *a: (insert_index(*a), os.kill(os.getpid(), signal.SIGKILL))\n"
        f"stages.run_all({SOURCE!r}, 'r1')\n")], env=os.environ.copy())
    assert killed.returncode == -9
    left = list(home.glob(".index-scratch-*"))
    assert len(left) == 1 and list(left[0].glob("part*.db"))
    with catalog().engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from records")) == 0
    live = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom catalog.publish.scratch_dirs import Scratch\n"
        f"s = Scratch.make({str(home)!r}, '.index-scratch-')\nprint(s.path, flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        in_use = Path(live.stdout.readline().strip())
        young = Scratch.make(home, ".index-scratch-")      # made, then its process "died"
        os.close(young._fd)
        old = fs_now(home) - 3_600                          # on the file system's clock
        for p in (left[0], in_use):
            os.utime(p, (old, old))

        again = stages.publish(SOURCE, "r1")
        assert again["version"] == 1 and _stored(1) == _expected(_version_dir(1), again["dataset"], 1)
        assert not left[0].exists()                       # dead owner, old: swept
        assert in_use.exists() and young.path.exists()    # live owner; or too young to judge
    finally:
        live.kill()
        live.wait()


def test_the_index_copy_runs_under_a_capped_page_cache_then_restores_it(home, silo, monkeypatch):
    """SQLite: the catalogue connection's page cache is LOAD_CACHE_KB while the rows are copied
    into records (its pages are kept by the process once filled), its own size again after; a
    copy with the licence index dropped (a first version: index_rebuild.py) needs less."""
    register_demo_source(home, silo)
    monkeypatch.setattr(index_load, "LOAD_CACHE_KB", 1_024)
    monkeypatch.setattr(index_rebuild, "LOAD_CACHE_KB", 512)
    during: list[int] = []

    def seen(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("INSERT INTO RECORDS"):
            during.append(cursor.connection.execute("PRAGMA main.cache_size").fetchone()[0])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        stages.run_all(SOURCE, "r1", TODAY)
        first = list(during)
        during.clear()
        with sqlite3.connect(silo) as c:
            c.execute(f'update {TABLE} set "QYMC" = "QYMC" || \'（变更）\' where "ID" % 50 = 0')
        stages.run_all(SOURCE, "r2", TODAY + timedelta(days=1))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert first and set(first) == {-512}
    assert during and set(during) == {-1_024}
    with catalog().engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA main.cache_size").scalar() == -engine.CACHE_KB


def test_the_version_commit_leaves_the_wal_to_a_checkpoint_thread(home, silo, monkeypatch):
    """SQLite: the publishing connection does not checkpoint the WAL in its commit (a version's
    pages copied into the database file and fsynced); a thread checkpoints it after the commit,
    and the publish stage waits for it before it ends; the connection's setting is restored."""
    import threading

    from catalog import service

    register_demo_source(home, silo)
    started: list[threading.Thread] = []
    real = service.checkpoint_thread

    def spied(engine):
        thread = real(engine)
        started.append(thread)
        return thread

    monkeypatch.setattr(service, "checkpoint_thread", spied)
    during: list[int] = []
    checkpoints: list[str] = []

    def seen(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("INSERT INTO RECORDS"):
            during.append(cursor.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        if "wal_checkpoint" in statement:
            checkpoints.append(threading.current_thread().name)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        out = stages.run_all(SOURCE, "r1", TODAY)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert out["version"] == 1
    assert during and set(during) == {0}
    assert len(started) == 1 and not started[0].is_alive()      # joined before the stage ended
    assert checkpoints == ["wal-checkpoint"]
    engine = catalog().engine
    conns = [engine.connect() for _ in range(max(1, engine.pool.checkedin()))]
    try:
        assert {c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() for c in conns} == {1000}
    finally:
        for c in conns:
            c.close()


def test_only_a_version_over_another_supersedes_records(home, silo):
    """The first version has no current rows to supersede: no UPDATE of records (it was ~1,900
    empty statements a million records); the next version supersedes its changed records' rows."""
    register_demo_source(home, silo)
    updates: list[str] = []

    def seen(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("UPDATE RECORDS"):
            updates.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        first = stages.run_all(SOURCE, "r1", TODAY)
        assert first["version"] == 1 and updates == []
        with sqlite3.connect(silo) as c:
            c.execute(f'update {TABLE} set "QYMC" = "QYMC" || \'（变更）\' where "ID" % 50 = 0')
        second = stages.run_all(SOURCE, "r2", TODAY + timedelta(days=1))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert second["version"] == 2 and second["changes"]["changed"] > 0 and updates
    with catalog().engine.connect() as c:
        superseded = c.execute(sa.select(sa.func.count()).select_from(Record).where(
            Record.superseded_in == 2)).scalar()
    assert superseded == second["changes"]["changed"]


def test_the_rows_are_ingested_while_the_log_grows_and_a_failure_meanwhile_leaves_nothing(home, silo, monkeypatch):
    """SQLite: the sort and the scratch ingest start on a worker before the log's tiles are
    appended (load() then waits for them); a failure in the append waits for the worker, then
    leaves no scratch file, attached database or row; the next publish stores the version."""
    import threading

    from catalog.signing import tiles

    register_demo_source(home, silo)
    stages.extract(SOURCE, "r1")
    stages.conform(SOURCE, "r1")
    stages.validate(SOURCE, "r1", TODAY)
    events: list[str] = []
    ingest, begun = index_load._ingest, threading.Event()

    def ingest_noted(path, rows):
        events.append(f"ingest {threading.current_thread() is threading.main_thread()}")
        begun.set()
        ingest(path, rows)
        events.append("ingested")

    def failing_append(self, *args, **kw):
        events.append(f"append, ingest begun: {begun.wait(30)}")
        raise OSError("the store went away")

    monkeypatch.setattr(index_load, "_ingest", ingest_noted)
    with monkeypatch.context() as m:
        m.setattr(tiles.TileLog, "append", failing_append)
        with pytest.raises(PublishError, match="nothing of it was kept"):
            stages.publish(SOURCE, "r1")
    assert "append, ingest begun: True" in events and "ingest True" not in events     # on the worker
    assert events[-1] == "ingested"                                  # waited for before the scratch went
    engine = catalog().engine
    assert not list(home.glob(".index-scratch-*")) and _attached(engine) == set()
    with engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from records")) == 0
    assert [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")] == []

    events.clear()
    again = stages.publish(SOURCE, "r1")
    assert again["version"] == 1 and _stored(1) == _expected(_version_dir(1), again["dataset"], 1)
    assert events.count("ingest False") == index_load.SQLiteLoader.PARTS
