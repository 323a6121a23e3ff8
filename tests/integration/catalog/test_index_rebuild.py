"""SQLite: a version with at least as many index rows as `records` holds is loaded with
ix_records_dataset_licence dropped and made again after, in the publishing transaction
(catalog/publish/index_rebuild.py); a smaller one is loaded into the index as it stands. Either
way sqlite_master reads the same after, and a failure after the drop leaves the index as it was."""
from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from base.errors import PublishError
from base.settings import get_settings
from catalog.db.models import Record
from catalog.publish import index_rebuild
from demo.synth import TABLE
from exchange import stages
from tests.conftest import TODAY, catalog, register_demo_source

pytestmark = pytest.mark.integration
SOURCE = "smr_business_licence"
LICENCE = "ix_records_dataset_licence"


@pytest.fixture
def silo(silo_2k, tmp_path):
    path = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], path)
    return path


def _schema() -> list[tuple]:
    with sqlite3.connect(get_settings().home / "catalog.db") as c:
        return c.execute("select type, name, tbl_name, sql from sqlite_master order by name").fetchall()


def _ddl_seen() -> tuple[list[str], Callable]:
    """DROP/CREATE INDEX statements run (their first three words), and the listener that notes them."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith(("DROP INDEX", "CREATE INDEX")):
            seen.append(" ".join(statement.split()[:3]))
    return seen, listen


def test_a_first_version_rebuilds_the_licence_index_and_a_small_one_does_not(home, silo):
    register_demo_source(home, silo)
    before = _schema()
    seen, listen = _ddl_seen()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listen)
    try:
        first = stages.run_all(SOURCE, "r1", TODAY)
        first_ddl = list(seen)
        seen.clear()
        with sqlite3.connect(silo) as c:
            c.execute(f'update {TABLE} set "QYMC" = "QYMC" || \'（变更）\' where "ID" % 50 = 0')
        second = stages.run_all(SOURCE, "r2", TODAY + timedelta(days=1))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", listen)
    assert first["version"] == 1 and second["version"] == 2
    assert first_ddl == [f"DROP INDEX main.{LICENCE}", "CREATE INDEX ix_records_dataset_licence"]
    assert seen == []                       # ~40 rows over ~1,900: loaded into the index as it is
    after = _schema()
    assert [r for r in after if r[2] == "records"] == [r for r in before if r[2] == "records"]
    assert after == before
    with catalog().engine.connect() as c:     # the rebuilt index holds every current row
        by_index = c.exec_driver_sql(
            f"select licence_number, record_id from records indexed by {LICENCE} "
            "where dataset_id = ? and superseded_in is null order by 1, 2", (first["dataset"],)).all()
        by_table = c.exec_driver_sql(
            "select licence_number, record_id from records not indexed "
            "where dataset_id = ? and superseded_in is null order by 1, 2", (first["dataset"],)).all()
        assert len(by_index) > 1_900 and by_index == by_table
        assert c.exec_driver_sql("pragma integrity_check").scalar() == "ok"


def test_a_failure_after_the_drop_leaves_the_index_as_it_was(home, silo):
    register_demo_source(home, silo)
    before = _schema()
    gone: list[bool] = []

    def fail_insert(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("INSERT INTO RECORDS"):
            names = {r[0] for r in cursor.connection.execute("select name from sqlite_master where type = 'index'")}
            gone.append(LICENCE not in names)
            raise RuntimeError("disk full while the rows were copied")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", fail_insert)
    try:
        with pytest.raises(PublishError, match="nothing of it was kept"):
            stages.run_all(SOURCE, "r1", TODAY)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", fail_insert)
    assert gone == [True]                     # it failed with the index dropped
    assert _schema() == before                # the rollback made it again: the same SQL
    with catalog().engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from records")) == 0
    again = stages.publish(SOURCE, "r1")
    assert again["version"] == 1 and _schema() == before


def test_the_rule_counts_at_most_the_incoming_rows_and_needs_a_transaction(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    Record.metadata.create_all(engine)
    names = lambda c: {r[0] for r in c.exec_driver_sql("select name from sqlite_master where type = 'index'")}  # noqa: E731
    row = dict(dataset_id="d", leaf_index=0, holder_key="k", holder_code_type="001", holder_name="n",
               licence_number="L", status="valid")
    with engine.connect() as c:
        with index_rebuild.rebuilt_around(c, 5) as dropped:      # no transaction yet: DDL would commit
            assert dropped == [] and LICENCE in names(c)
        c.execute(sa.insert(Record), [dict(row, record_id=f"{i:032x}", version=1) for i in range(3)])
        with index_rebuild.rebuilt_around(c, 3) as dropped:      # 3 coming, 3 there: left
            assert dropped == [] and LICENCE in names(c)
        with index_rebuild.rebuilt_around(c, 4) as dropped:      # 4 coming, 3 there: rebuilt
            assert dropped == [LICENCE] and LICENCE not in names(c)
        assert LICENCE in names(c)
        c.exec_driver_sql(f"drop index {LICENCE}")
        c.exec_driver_sql(f"create index {LICENCE} on records (licence_number)")   # not the model's
        with index_rebuild.rebuilt_around(c, 4) as dropped:
            assert dropped == []
        c.rollback()
