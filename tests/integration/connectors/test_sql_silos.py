"""SQL silos on real PostgreSQL and MariaDB servers: full pulls as text, server-side cursors,
credentials from Airflow connections kept out of messages, and the server dying mid-pull."""
from __future__ import annotations

import logging

import pyarrow as pa
import pytest
import sqlalchemy as sa

from base.errors import SourceError
from connectors.sql import SqlConnector
from demo.synth import TABLE
from registration.connector import SqlSettings

pytestmark = pytest.mark.integration


def _pull(url, **kw) -> tuple[pa.Table, list[int]]:
    conn = SqlConnector(SqlSettings(table=TABLE, url=url.render_as_string(hide_password=False), **kw), "t")
    sizes, batches = [], []
    for b in conn.batches():
        sizes.append(b.num_rows)
        batches.append(b)
    return pa.Table.from_batches(batches), sizes


def test_a_sqlite_table_read_in_rowid_ranges_equals_one_plain_read(tmp_path, silo_rows):
    """ADBC reads a rowid table in ranges on two threads: same rows, same order, same text as a
    plain SQLAlchemy read, across rowid gaps and a range that is all NULL in a column."""
    from demo.sql_silos import seed

    url = sa.make_url(f"sqlite:///{tmp_path / 'silo.db'}")
    seed(url, silo_rows[0])
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql(f'DELETE FROM "{TABLE}" WHERE rowid BETWEEN 1200 AND 2600')   # a gap of whole ranges
        c.exec_driver_sql(f'UPDATE "{TABLE}" SET "QYMC" = NULL WHERE rowid <= 500')    # the first range: NULL
    engine.dispose()
    ranged, sizes = _pull(url, batch_rows=500, adbc=True)
    plain, _ = _pull(url, batch_rows=500, adbc=False)
    assert ranged.num_rows == plain.num_rows == silo_rows[0].num_rows - 1401
    assert ranged.equals(plain), "the same rows in the same order"
    assert max(sizes) <= 500 and ranged.column("QYMC").null_count == 500
    rowids = [i for i in range(1, silo_rows[0].num_rows + 1) if not 1200 <= i <= 2600]
    assert len(sizes) == len({(i - 1) // 500 for i in rowids}), "one batch a rowid range (its sentinel row too)"


@pytest.mark.parametrize("silo,adbc", [("pg_silo", True), ("pg_silo", False), ("maria_silo", False)])
def test_full_pull_keeps_the_original_text(request, silo, adbc, silo_rows):
    url = request.getfixturevalue(silo)
    table, sizes = _pull(url, batch_rows=1_000, adbc=adbc)
    source = silo_rows[0]
    assert table.num_rows == source.num_rows
    assert all(t == pa.string() for t in table.schema.types)
    got = dict(zip(table.column("ID").to_pylist(), table.column("QYMC").to_pylist()))
    want = dict(zip(map(str, source.column("ID").to_pylist()), source.column("QYMC").to_pylist()))
    assert got == want, "names (simplified, traditional, odd spaces) come back as written"
    dates = dict(zip(table.column("ID").to_pylist(), table.column("FZRQ").to_pylist()))
    assert dates["1"] == source.column("FZRQ")[0].as_py()
    if not adbc:
        assert max(sizes) <= 1_000 and len(sizes) >= 6, "streamed in batches of batch_rows"


def test_mariadb_reads_through_an_unbuffered_server_side_cursor(maria_silo):
    import pymysql.cursors

    seen = []
    conn = SqlConnector(SqlSettings(table=TABLE, url=maria_silo.render_as_string(hide_password=False),
                                    batch_rows=500), "t")
    fn = lambda conn_, cursor, *a: seen.append(type(cursor))  # noqa: E731
    sa.event.listen(sa.Engine, "before_cursor_execute", fn)
    it = conn.batches()
    try:
        first = next(it)
        it.close()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", fn)
    assert first.num_rows == 500
    assert any(issubclass(c, pymysql.cursors.SSCursor) for c in seen), seen


def _kill_other_sessions(url: sa.URL) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        if engine.dialect.name == "postgresql":
            c.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        else:
            ids = c.exec_driver_sql("SELECT id FROM information_schema.processlist "
                                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()").scalars().all()
            for i in ids:
                c.exec_driver_sql(f"KILL {int(i)}")
    engine.dispose()


@pytest.mark.parametrize("silo,adbc", [("pg_silo", False), ("maria_silo", False)])
def test_the_server_killing_the_session_mid_pull_is_a_clear_source_error(request, silo, adbc):
    url = request.getfixturevalue(silo)
    conn = SqlConnector(SqlSettings(table=TABLE, url=url.render_as_string(hide_password=False),
                                    batch_rows=200, adbc=adbc), "smr_pg")
    it = conn.batches()
    next(it)
    _kill_other_sessions(url)
    with pytest.raises(SourceError, match=r"source smr_pg: lost the connection while reading 'yyzz_djxx'.*re-run"):
        for _ in range(1_000):   # bounded: the whole table is 30 batches
            next(it)


@pytest.mark.parametrize("silo,adbc", [("pg_silo", True), ("pg_silo", False), ("maria_silo", False)])
def test_the_connection_dropping_mid_pull_is_a_clear_source_error(request, silo, adbc):
    from tests.faultproxy import FaultProxy

    url = request.getfixturevalue(silo)
    proxy = FaultProxy(url.port)
    proxy.cut_after = 300_000
    via = url.set(port=proxy.port).render_as_string(hide_password=False)
    conn = SqlConnector(SqlSettings(table=TABLE, url=via, batch_rows=200, adbc=adbc), "smr_db")
    rows = 0
    try:
        with pytest.raises(SourceError, match=r"source smr_db: lost the connection while reading"):
            for b in conn.batches():
                rows += b.num_rows
    finally:
        proxy.close()
    assert proxy.cuts == 1 and 0 < rows < 6_000 or rows == 0


def test_conn_id_comes_from_airflow_and_its_password_never_shows(pg_silo, monkeypatch, caplog):
    from tests.faultproxy import FaultProxy

    proxy = FaultProxy(pg_silo.port or 5432)
    secret = "Zq8-very-secret-pw"
    uri = pg_silo.set(drivername="postgresql", password=secret, port=proxy.port)
    monkeypatch.setenv("AIRFLOW_CONN_SILO_PG_T4", uri.render_as_string(hide_password=False))
    cfg = {"kind": "sql", "conn_id": "silo_pg_t4", "table": TABLE, "batch_rows": 100}
    conn = SqlConnector(SqlSettings.from_registration(cfg), "smr_pg")
    assert conn.url.password == secret and secret not in conn.safe_url
    assert len(conn.columns()) == 18
    proxy.cut_after = 200_000
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(SourceError) as err:
            for _ in conn.batches():
                pass
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert secret not in str(err.value) and "***" in str(err.value)
    assert secret not in caplog.text


def test_a_missing_connection_is_named_with_the_fix(monkeypatch):
    from base.errors import ConfigError

    conn = SqlConnector(SqlSettings(table=TABLE, conn_id="no_such_conn_t4"), "smr_pg")
    with pytest.raises(ConfigError, match="AIRFLOW_CONN_NO_SUCH_CONN_T4"):
        conn.columns()


def test_memory_stays_flat_while_streaming(pg_silo):
    """Python allocations stay bounded by one batch, not by the table."""
    import tracemalloc

    conn = SqlConnector(SqlSettings(table=TABLE, url=pg_silo.render_as_string(hide_password=False),
                                    batch_rows=500, adbc=False), "t")
    tracemalloc.start()
    peaks = []
    for _ in conn.batches():
        peaks.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert len(peaks) == 12
    assert max(peaks[4:]) < 2 * max(peaks[:4]) + 1_000_000
