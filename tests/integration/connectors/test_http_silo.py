"""The HTTP connector against the project's silo server on 127.0.0.1: pagination kinds, auth
kinds, and the faults: 5xx for a while, rate limits, malformed pages, dying mid-answer."""
from __future__ import annotations

import pyarrow as pa
import pytest

from base.errors import DataError, SourceError
from connectors.http import HttpConnector
from demo.silo_server import SiloServer, licence_rows
from demo.synth import COLUMNS
from registration.connector import HttpSettings

pytestmark = pytest.mark.integration
SECRET = "hmac-secret-0f3a9c"


@pytest.fixture(scope="module")
def rows():
    return licence_rows(1_050, seed=3)


@pytest.fixture
def silo(rows):
    with SiloServer(rows) as s:
        yield s


def _connector(url, sleeps=None, **kw) -> HttpConnector:
    cfg = {"url": url, "path": "/licences", "fields": list(COLUMNS), "page_size": 100,
           "backoff": 0.01, **kw}
    return HttpConnector(HttpSettings.from_registration(cfg), "mps_api",
                         sleep=(sleeps.append if sleeps is not None else lambda s: None))


def _pull(conn) -> pa.Table:
    return pa.Table.from_batches(list(conn.batches()), schema=pa.schema([(c, pa.string()) for c in COLUMNS]))


@pytest.mark.parametrize("pagination", ["page", "offset", "cursor"])
def test_every_pagination_kind_gets_every_row_once(silo, rows, pagination):
    table = _pull(_connector(silo.url, pagination=pagination))
    assert table.num_rows == len(rows)
    assert table.column("ID").to_pylist() == [str(r["ID"]) for r in rows]
    assert table.column("QYMC").to_pylist() == [r["QYMC"] for r in rows]
    assert len(silo.log.requests) == 11


@pytest.mark.parametrize("auth", ["bearer", "api_key", "hmac"])
def test_auth_kinds_and_a_wrong_secret_is_refused(rows, auth, monkeypatch, caplog):
    monkeypatch.setenv("SILO_SECRET_T4", SECRET)
    with SiloServer(rows[:150], auth=auth, secret=SECRET) as s:
        for method in ("GET", "POST"):
            assert _pull(_connector(s.url, auth=auth, secret_env="SILO_SECRET_T4", method=method)).num_rows == 150
        monkeypatch.setenv("SILO_SECRET_T4", "wrong-secret-xyz")
        with pytest.raises(SourceError, match="HTTP 401.*check the credentials"):
            list(_connector(s.url, auth=auth, secret_env="SILO_SECRET_T4").batches())
    assert SECRET not in caplog.text


def test_a_secret_from_an_airflow_connection(rows, monkeypatch):
    with SiloServer(rows[:10], auth="bearer", secret=SECRET) as s:
        monkeypatch.setenv("AIRFLOW_CONN_MPS_API_T4",
                           f'{{"conn_type": "http", "host": "{s.url}", "password": "{SECRET}"}}')
        conn = HttpConnector(HttpSettings.from_registration(
            {"conn_id": "mps_api_t4", "path": "licences", "fields": list(COLUMNS), "auth": "bearer"}), "mps_api")
        assert _pull(conn).num_rows == 10


def test_500_for_a_while_then_recovery_completes_with_backoff(silo, rows, caplog):
    silo.faults.error_at_page, silo.faults.error_times = 4, 3
    sleeps = []
    table = _pull(_connector(silo.url, sleeps))
    assert table.num_rows == len(rows)
    assert [r[2] for r in silo.log.requests].count(500) == 3
    assert len(sleeps) == 3 and all(0 <= s <= 0.01 * 2 ** i for i, s in enumerate(sleeps))
    assert "page 4" in caplog.text and "HTTP 500" in caplog.text


def test_500_for_too_long_fails_with_the_page_and_the_fix(silo):
    silo.faults.error_at_page, silo.faults.error_times, silo.faults.error_status = 2, 99, 503
    conn = _connector(silo.url, attempts=3)
    with pytest.raises(SourceError, match=r"source mps_api: page 2 of GET .*/licences: still failing "
                                          r"after 3 attempts \(HTTP 503"):
        list(conn.batches())
    assert conn.requests == 4


def test_rate_limits_honour_retry_after(silo, rows):
    silo.faults.rate_limit_every, silo.faults.retry_after = 3, "2"
    sleeps = []
    assert _pull(_connector(silo.url, sleeps)).num_rows == len(rows)
    assert sleeps and all(s >= 2 for s in sleeps), sleeps
    assert [r[2] for r in silo.log.requests].count(429) == len(sleeps)


def test_a_retry_after_beyond_the_limit_fails_instead_of_waiting(silo):
    silo.faults.rate_limit_every, silo.faults.retry_after = 1, "3600"
    with pytest.raises(SourceError, match="Retry-After 3600s"):
        list(_connector(silo.url).batches())


def test_the_connection_cut_mid_answer_is_retried(silo, rows):
    silo.faults.drop_at_page, silo.faults.drop_times = 5, 2
    assert _pull(_connector(silo.url)).num_rows == len(rows)
    assert [r[2] for r in silo.log.requests].count("cut") == 2


def test_a_server_that_goes_down_fails_clearly(silo):
    silo.faults.down = True
    with pytest.raises(SourceError, match=r"page 1 of GET .* still failing after 2 attempts \(ConnectionError"):
        list(_connector(silo.url, attempts=2).batches())


def test_a_malformed_page_is_refused_naming_source_and_page(silo):
    silo.faults.bad_json_at_page, silo.faults.bad_json_times = 3, 1
    with pytest.raises(DataError, match=r"source mps_api.*page 3 is not valid JSON"):
        list(_connector(silo.url).batches())


def test_a_page_of_the_wrong_shape_names_the_field(silo):
    silo.faults.wrong_shape_at_page = 2
    with pytest.raises(DataError, match=r"source mps_api.*page 2 record 0 has no field 'TYSHXYDM'"):
        list(_connector(silo.url).batches())


def test_a_records_field_that_is_missing_is_named(silo):
    with pytest.raises(DataError, match=r"page 1 has no field 'items'"):
        list(_connector(silo.url, records="items").batches())


def test_slow_answers_time_out_and_the_loop_is_bounded(silo):
    silo.faults.slow = 0.5
    with pytest.raises(SourceError, match="ReadTimeout"):
        list(_connector(silo.url, read_timeout=0.1, attempts=2).batches())
    silo.faults.slow = 0
    with pytest.raises(SourceError, match="more than max_pages=3 pages"):
        list(_connector(silo.url, max_pages=3).batches())


def test_incremental_pull_sends_since_and_reports_the_newest(silo, rows):
    since = sorted(r["GXSJ"] for r in rows)[-40]
    conn = _connector(silo.url, watermark="GXSJ", key="ID")
    conn = HttpConnector(HttpSettings(**{**conn.settings.__dict__, "since": since}), "mps_api")
    table = _pull(conn)
    assert table.num_rows == 39
    assert conn.high_water == max(r["GXSJ"] for r in rows)
    assert all("updated_since=" in r[1] for r in silo.log.requests)
