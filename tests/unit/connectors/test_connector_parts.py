"""Connector parts without servers: retries, HMAC, text conversion, settings, encodings."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

import connectors
from base.errors import ConfigError, UnknownName
from connectors.base import as_text, redact
from connectors.http_auth import Hmac, signature, signed_message
from connectors.retry import RetryPolicy, retry_after_seconds


def test_backoff_is_exponential_with_full_jitter_and_capped():
    p = RetryPolicy(attempts=8, backoff=0.5, max_backoff=4)
    rng = random.Random(1)
    for attempt in range(8):
        d = [p.delay(attempt, rng) for _ in range(200)]
        cap = min(4, 0.5 * 2 ** attempt)
        assert 0 <= min(d) and max(d) <= cap
        assert max(d) > cap * 0.8, "jitter spreads over the whole window"


def test_retry_after_seconds_and_http_dates():
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_hmac_signs_the_body_or_the_path_and_query():
    import requests

    req = requests.Request("POST", "http://127.0.0.1/licences", data=b'{"page": 1}').prepare()
    Hmac("k3y", "X-Signature")(req)
    assert req.headers["X-Signature"] == signature("k3y", b'{"page": 1}')
    get = requests.Request("GET", "http://127.0.0.1/licences", params={"page": 2}).prepare()
    assert signed_message("GET", get.url, get.body) == b"/licences?page=2"
    assert signature("k3y", b"x") != signature("other", b"x")


@pytest.mark.parametrize("value,text", [(None, None), ("长期", "长期"), (20200102.0, "20200102"),
                                        (1.5, "1.5"), (7, "7"), (True, "true")])
def test_values_become_text(value, text):
    assert as_text(value) == text


def test_dates_become_iso_text():
    from datetime import date
    from datetime import datetime as dt
    assert as_text(date(2020, 1, 2)) == "2020-01-02"
    assert as_text(dt(2020, 1, 2)) == "2020-01-02"
    assert as_text(dt(2020, 1, 2, 3, 4, 5)) == "2020-01-02T03:04:05"


def test_redact_hides_secrets():
    assert redact("login failed for s3cret-pw at host", ["s3cret-pw", None]) == "login failed for *** at host"


@pytest.mark.parametrize("cfg,err", [
    ({"kind": "ftp"}, UnknownName),
    ({"kind": "sql", "table": "t"}, ConfigError),
    ({"kind": "sql", "url": "sqlite:///x", "table": "t", "passwd": "x"}, ConfigError),
    ({"kind": "sql", "url": "sqlite:///x", "table": "t", "watermark": "GXSJ"}, ConfigError),
    ({"kind": "http", "url": "http://127.0.0.1", "fields": ["a"], "pagination": "links"}, UnknownName),
    ({"kind": "http", "url": "http://127.0.0.1", "fields": ["a"], "auth": "basic"}, UnknownName),
    ({"kind": "http", "url": "http://127.0.0.1"}, ConfigError),
    ({"kind": "files", "path": "/tmp", "mode": "append"}, UnknownName),
    ({"kind": "files", "path": "/tmp", "mode": "delta"}, ConfigError),
])
def test_bad_connector_settings_are_refused_naming_what_is_known(cfg, err):
    with pytest.raises(err) as e:
        connectors.build(cfg, "s")
    assert "known" in str(e.value) or "needs" in str(e.value)


def test_since_is_given_only_to_incremental_connectors():
    sql = connectors.build({"kind": "sql", "url": "sqlite:///x", "table": "t", "watermark": "w", "key": "id"},
                           "s", since="2020-01-01")
    assert sql.settings.since == "2020-01-01" and sql.high_water == "2020-01-01"
    full = connectors.build({"kind": "sql", "url": "sqlite:///x", "table": "t"}, "s", since="2020-01-01")
    assert full.settings.since is None


def test_incremental_query_reads_a_closed_window():
    import sqlalchemy as sa

    from connectors.sql import SqlConnector
    from registration.connector import SqlSettings

    c = SqlConnector(SqlSettings(table="t", url="sqlite:///x", watermark="w", key="id", since="a"), "s")
    c.high_water = "b"
    sql = str(c.query({"id": sa.Integer(), "w": sa.Text()}).compile(compile_kwargs={"literal_binds": True}))
    assert "w > CAST('a' AS TEXT)" in sql and "w <= CAST('b' AS TEXT)" in sql


@pytest.mark.parametrize("encoding,expected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"),
                                               ("gbk", "gb18030"), ("gb18030", "gb18030")])
def test_encodings_are_detected(tmp_path, encoding, expected):
    from connectors.readers import detect_encoding

    text = "证照编号,持证主体,颁发机构\n" + "".join(
        f"{i},臺灣新竹縣張偉貿易有限公司{i},北京市海淀区市场监督管理局\n" for i in range(50))
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode(encoding))
    assert detect_encoding(path) == expected
