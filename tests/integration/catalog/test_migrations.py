"""The Alembic migrations build exactly the tables the models describe (SQLite and PostgreSQL),
and downgrade cleanly to nothing: a migration forgotten or mis-chained fails here."""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from catalog.db.engine import _alembic_config
from catalog.db.models import Base
from tests.integration.conftest import server_url


def _functions(conn) -> set[str]:
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.execute(sa.text("select proname from pg_proc p join pg_namespace n on "
                                    "n.oid = p.pronamespace where nspname = 'public'")).scalars())


def _diff(url: str) -> list:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        cfg = _alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        functions = _functions(conn)
        command.downgrade(cfg, "base")
        left = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
        left |= _functions(conn)
    engine.dispose()
    assert functions == ({"audit_append"} if url.startswith("postgresql") else set()), functions
    return diff, left


def _on_server(kind: str, prefix: str, check):
    """`check(url)` on a fresh database of its own on the test server `kind`, dropped afterwards."""
    from demo.sql_silos import create_database, drop_database

    server = server_url(kind)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    try:
        return check(sa.make_url(url).render_as_string(hide_password=False))
    finally:
        drop_database(server, name)


def test_one_head():
    heads = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"migrations have several heads {heads}: chain the newest onto the last"


def test_sqlite_migrations_match_models(tmp_path):
    diff, left = _diff(f"sqlite:///{tmp_path / 'c.db'}")
    assert diff == [] and left == set()


def test_postgresql_migrations_match_models():
    diff, left = _on_server("postgresql", "t_mig", _diff)
    assert diff == [] and left == set()


def test_entries_from_before_the_chain_are_joined_to_it(tmp_path):
    """Migration 0012: entries written before the chain (migration 0007) had no position; they
    are appended to the chain, content unchanged, so that every entry is in it."""
    from catalog.serving import audit

    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    cfg = _alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
    audit.append(engine, department="chained", purpose="DJ-SCJG-0003", action="lookup", outcome="allowed")
    with engine.begin() as conn:
        for i in range(2):
            conn.execute(sa.text("insert into audit_log (at, department, purpose, action, outcome, detail) "
                                 "values ('2026-01-02 03:04:05.000000', :d, 'case:old-1', 'lookup', 'allowed', "
                                 "'{\"records\": 1}')"), {"d": f"legacy-{i}"})
    assert not audit.verify_chain(engine).ok
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    r = audit.verify_chain(engine)
    assert (r.ok, r.entries) == (True, 3), r
    with engine.connect() as conn:
        assert conn.execute(sa.text("select department from audit_log order by seq")).scalars().all() == [
            "chained", "legacy-0", "legacy-1"]
    engine.dispose()


def test_absolute_paths_become_store_keys(home, tmp_path):
    """Migration 0016: the catalogue's absolute paths to version folders and Data Docs become keys
    relative to the store (under the local store's root; elsewhere by the layout's tail), and back."""
    root = str(home.resolve())
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = sa.create_engine(url, poolclass=sa.NullPool)       # no foreign keys enforced: rows alone
    cfg = _alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0015_registrations")
        for v, path in ((1, f"{root}/store/a.b/v000001"), (2, "/old/machine/.state/store/a.b/v000002/"),
                        (3, "store/a.b/v000003")):
            conn.execute(sa.text(
                "insert into dataset_versions (dataset_id, version, tree_size, root_hash, content_digest, "
                "signed_tree_head, head_hash, kid, type_version, path, run_id, published_at) values "
                "('a.b', :v, 1, 'r', 'c', 'h', :hh, 'k', 1, :p, 1, '2026-01-01 00:00:00')"),
                {"v": v, "hh": f"hh{v}", "p": path})
        for run, docs in ((1, f"{root}/staging/s/r1/data_docs/index.html"),
                          (2, "/elsewhere/staging/s/r2/data_docs/index.html"), (3, None)):
            conn.execute(sa.text("insert into run_quality (run_id, data_docs) values (:r, :d)"), {"r": run, "d": docs})
        command.upgrade(cfg, "head")
        assert conn.execute(sa.text("select path from dataset_versions order by version")).scalars().all() == [
            "store/a.b/v000001", "store/a.b/v000002", "store/a.b/v000003"]
        assert conn.execute(sa.text("select data_docs from run_quality order by run_id")).scalars().all() == [
            "staging/s/r1/data_docs/index.html", "staging/s/r2/data_docs/index.html", None]
        command.downgrade(cfg, "0015_registrations")
        assert conn.execute(sa.text("select path from dataset_versions where version = 1")).scalar() == \
            f"{root}/store/a.b/v000001"
    engine.dispose()


def _current_indexes(url: str, steps: list[str]) -> list[set[str]]:
    """The records table's indexes after each upgrade or downgrade in `steps` ("+rev" / "-rev")."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    cfg = _alembic_config(url)
    seen = []
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        for step in steps:
            (command.upgrade if step[0] == "+" else command.downgrade)(cfg, step[1:])
            seen.append({i["name"] for i in sa.inspect(conn).get_indexes("records")})
    engine.dispose()
    return seen


def _check_0018(url: str) -> None:
    new = {"ix_records_dataset_licence", "ix_records_dataset_status"}
    at17, at18, back = _current_indexes(url, ["+0017_append_only_log", "+0018_current_by_licence",
                                              "-0017_append_only_log"])
    assert "ix_records_dataset_current" in at17 and not new & at17
    assert at18 - at17 == new and back == at17


def test_0018_indexes_current_records_by_licence_and_status(tmp_path):
    """Migration 0018: the indexes a Delta run reads by (log_delta.py) come and go with it."""
    _check_0018(f"sqlite:///{tmp_path / 'c.db'}")


def test_0018_on_postgresql():
    _on_server("postgresql", "t_mig18", _check_0018)


def _check_0020(url: str) -> None:
    """Migration 0020 on a catalogue with one record's two states and their events: the events'
    leaf_hash and time go (and come back from `records` and `dataset_versions` on a downgrade),
    the status index becomes
    the partial index of the current withdrawn records, which counts them."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    cfg = _alembic_config(url)
    leaf = {1: "1" * 64, 2: "2" * 64}
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0019_change_detection")
        conn.execute(sa.text("insert into datasets (id, certificate_type, type_version, department, title, sharing, "
                             "update_cycle, current_version, created_at) values "
                             "('a.b', 't', 1, 'd', 'T', 's', 'u', 2, '2026-01-01 00:00:00')"))
        for v, status, superseded in ((1, "valid", 2), (2, "withdrawn", None)):
            conn.execute(sa.text(
                "insert into records (record_id, version, dataset_id, leaf_index, holder_key, holder_code_type, "
                "holder_name, licence_number, status, leaf_hash, superseded_in) values "
                "(:r, :v, 'a.b', :v, 'h', 'c', 'n', 'L1', :s, :leaf, :sup)"),
                {"r": "ab" * 16, "v": v, "s": status, "leaf": leaf[v], "sup": superseded})
        published = {1: "2026-01-01 00:00:00", 2: "2026-01-02 00:00:00"}
        conn.execute(sa.text("insert into sources (id, dataset_id, connector_kind, registration, registered_at) "
                             "values ('s', 'a.b', 'sqlite', '{}', '2026-01-01 00:00:00')"))
        run = conn.execute(sa.text("insert into runs (source_id, run_key, state, started_at) values "
                                   "('s', 'k', 'published', '2026-01-01 00:00:00') returning id")).scalar()
        for v, change, hashed in ((1, "added", leaf[1]), (2, "withdrawn", None)):
            conn.execute(sa.text(
                "insert into dataset_versions (dataset_id, version, tree_size, root_hash, content_digest, "
                "signed_tree_head, head_hash, kid, type_version, path, run_id, published_at) values "
                "('a.b', :v, 1, 'r', 'c', 'h', :hh, 'k', 1, 'store/a.b/v', :run, :at)"),
                {"v": v, "hh": f"hh{v}", "at": published[v], "run": run})
            column = conn.dialect.identifier_preparer.quote("change")    # reserved in MariaDB
            conn.execute(sa.text(
                f"insert into record_events (dataset_id, record_id, version, {column}, status, leaf_hash, at) "
                "values ('a.b', :r, :v, :c, 'valid', :h, :at)"),
                {"r": "ab" * 16, "v": v, "c": change, "h": hashed, "at": published[v]})
        command.upgrade(cfg, "0020_lean_index")
        inspect = sa.inspect(conn)
        assert not {"leaf_hash", "at"} & {c["name"] for c in inspect.get_columns("record_events")}
        indexes = {i["name"] for i in inspect.get_indexes("records")}
        assert "ix_records_dataset_withdrawn" in indexes and "ix_records_dataset_status" not in indexes
        withdrawn = conn.execute(sa.text("select count(*) from records where dataset_id = 'a.b' and "
                                         "superseded_in is null and status = 'withdrawn'")).scalar()
        assert withdrawn == 1
        command.downgrade(cfg, "0019_change_detection")
        back = conn.execute(sa.text("select version, leaf_hash, at from record_events order by version")).all()
        assert [(v, h, str(at)[:19]) for v, h, at in back] == [(1, leaf[1], published[1]), (2, None, published[2])]
        assert "ix_records_dataset_status" in {i["name"] for i in sa.inspect(conn).get_indexes("records")}
    engine.dispose()


def test_0020_drops_what_nobody_reads(tmp_path):
    _check_0020(f"sqlite:///{tmp_path / 'c.db'}")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}", poolclass=sa.NullPool)
    with engine.begin() as conn:       # the count by the partial index (SQLite picks it for this query)
        cfg = _alembic_config(str(engine.url))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        from catalog.db.models import Record
        from catalog.publish.log_delta import CURRENT_WITHDRAWN
        query = sa.select(sa.func.count()).select_from(Record).where(Record.dataset_id == "a.b", *CURRENT_WITHDRAWN)
        plan = " ".join(str(r[-1]) for r in conn.execute(sa.text("explain query plan " + str(
            query.compile(conn, compile_kwargs={"literal_binds": True})))))
        assert "ix_records_dataset_withdrawn" in plan, plan
        from catalog.service import sqlite_supersede_sql

        # the publish's UPDATE: by the primary key, never a scan of the current records
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
            "explain query plan " + sqlite_supersede_sql(2), (3, "ab" * 16, "cd" * 16, "a.b")))
        assert "PRIMARY KEY (record_id=?)" in plan, plan
    engine.dispose()


def test_0020_on_postgresql():
    _on_server("postgresql", "t_mig20", _check_0020)


def test_0020_on_mariadb():
    """MariaDB keeps an index led by dataset_id for the foreign key, and has no partial indexes."""
    _on_server("mariadb", "t_mig20", _check_0020)


def _check_0021(url: str) -> None:
    """Migration 0021 on a catalogue with one record's two states: ix_records_dataset_current
    covers the map's entries (and back on a downgrade), and a bucket read finds the current
    state's entry alone."""
    from catalog.publish.log_delta import _sqlite_ranges

    engine = sa.create_engine(url, poolclass=sa.NullPool)
    cfg = _alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0020_lean_index")
        conn.execute(sa.text("insert into datasets (id, certificate_type, type_version, department, title, sharing, "
                             "update_cycle, current_version, created_at) values "
                             "('a.b', 't', 1, 'd', 'T', 's', 'u', 2, '2026-01-01 00:00:00')"))
        for v, superseded in ((1, 2), (2, None)):
            conn.execute(sa.text(
                "insert into records (record_id, version, dataset_id, leaf_index, holder_key, holder_code_type, "
                "holder_name, licence_number, status, leaf_hash, superseded_in) values "
                "(:r, :v, 'a.b', :v, 'h', 'c', 'n', 'L1', 'valid', :leaf, :sup)"),
                {"r": "ab" * 16, "v": v, "leaf": str(v) * 64, "sup": superseded})

        def columns() -> list[str]:
            return next(i["column_names"] for i in sa.inspect(conn).get_indexes("records")
                        if i["name"] == "ix_records_dataset_current")

        assert columns() == ["dataset_id", "record_id"]
        command.upgrade(cfg, "0021_map_cover")
        assert columns() == ["dataset_id", "record_id", "leaf_index", "leaf_hash", "superseded_in"]
        entries = conn.execute(sa.text("select record_id, leaf_index, leaf_hash from records where dataset_id = "
                                       "'a.b' and superseded_in is null and record_id >= :lo"), {"lo": "a" * 32}).all()
        assert [tuple(e) for e in entries] == [("ab" * 16, 2, "2" * 64)]
        if conn.dialect.name == "sqlite":
            (got,), rows = _sqlite_ranges(conn, "a.b", [("a" * 32, "b" * 32), ("c" * 32, None)])
            assert rows == [] and got.index.tolist() == [2]
            assert got.ids.tobytes().hex() == "ab" * 16 and got.leaves.tobytes().hex() == "2" * 64
        command.downgrade(cfg, "0020_lean_index")
        assert columns() == ["dataset_id", "record_id"]
    engine.dispose()


def test_0021_covers_the_map_entries(tmp_path):
    _check_0021(f"sqlite:///{tmp_path / 'c.db'}")


def test_0021_bucket_read_is_the_index_alone(tmp_path):
    """A Delta version's map bucket read (log_delta._sqlite_ranges): one range of the covering
    index per bucket range, never a primary-key look-up an entry nor a scan."""
    from catalog.publish import log_delta

    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    statements = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, sql, parameters, context, many: statements.append((sql, parameters)))
    with engine.begin() as conn:
        cfg = _alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        statements.clear()
        log_delta._sqlite_ranges(conn, "a.b", [("0" * 32, "1" + "0" * 31), ("f" + "0" * 31, None)])
        assert len(statements) == 1
        sql, args = statements[0]
        plan = [str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args)]
        reads = [p for p in plan if " records " in p]
        assert len(reads) == 2, plan
        for p in reads:
            assert p.startswith("SEARCH records USING COVERING INDEX ix_records_dataset_current "
                                "(dataset_id=? AND record_id>"), plan
    engine.dispose()


def test_0021_on_postgresql():
    _on_server("postgresql", "t_mig21", _check_0021)


def test_0021_on_mariadb():
    _on_server("mariadb", "t_mig21", _check_0021)
