"""The whole path (exchange.stages.run_all) against silos that fail: a database or API going
down mid-pull, 500s for a while, rate limits, a malformed page. Each run either completes
with everything or fails with a clear reason publishing nothing; a re-run completes, and no
record is published twice."""
from __future__ import annotations


import pytest
import sqlalchemy as sa

from demo.silo_server import SiloServer
from demo.synth import COLUMNS, TABLE
from exchange import stages
from exchange.errors import DataError, SourceError
from tests.conftest import TODAY, catalog, register_source
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.integration


def _counts() -> tuple[int, int, int]:
    with catalog().engine.connect() as c:
        versions = c.scalar(sa.text("select count(*) from dataset_versions"))
        records = c.scalar(sa.text("select count(*) from records"))
        distinct = c.scalar(sa.text("select count(distinct record_id) from records"))
    return versions, records, distinct


def _nothing_published(source_id: str) -> None:
    assert _counts() == (0, 0, 0)
    run = catalog().runs(source_id)[0]
    assert run["state"] == "failed" and run["message"]


@pytest.mark.parametrize("silo", ["pg_silo", "maria_silo"])
def test_a_database_going_down_mid_pull_publishes_nothing_and_a_rerun_completes(home, request, silo, silo_rows):
    url = request.getfixturevalue(silo)
    proxy = FaultProxy(url.port)
    try:
        via = url.set(port=proxy.port).render_as_string(hide_password=False)
        register_source(home, "db_silo", {"kind": "sql", "url": via, "table": TABLE, "batch_rows": 500})
        proxy.cut_after = 400_000
        with pytest.raises(SourceError, match="source db_silo: lost the connection while reading"):
            stages.run_all("db_silo", "r1", TODAY)
        _nothing_published("db_silo")
        proxy.cut_after = None
        first = stages.run_all("db_silo", "r1", TODAY)
        again = stages.run_all("db_silo", "r1", TODAY)
        later = stages.run_all("db_silo", "r2", TODAY)
    finally:
        proxy.close()
    assert first["state"] == "published" and first["version"] == 1
    assert again["version"] == 1 and later["state"] == "unchanged"
    run = catalog().runs("db_silo")[1]
    assert run["extracted"] == silo_rows[0].num_rows
    assert _counts() == (1, first["tree_size"], first["tree_size"])


def _http_source(home, silo: SiloServer, **kw):
    cfg = {"kind": "http", "url": silo.url, "path": "/licences", "fields": list(COLUMNS),
           "page_size": 500, "backoff": 0.01, "attempts": 3, **kw}
    register_source(home, "api_silo", cfg)


@pytest.fixture(scope="module")
def api_rows(silo_rows):
    return silo_rows[0].slice(0, 3_000).to_pylist()


def test_an_api_answering_500_too_long_fails_then_the_rerun_completes(home, api_rows):
    with SiloServer(api_rows) as silo:
        _http_source(home, silo, pagination="cursor")
        silo.faults.error_at_page, silo.faults.error_times = 4, 5
        with pytest.raises(SourceError, match=r"source api_silo: page 4 of GET .* after 3 attempts"):
            stages.run_all("api_silo", "r1", TODAY)
        _nothing_published("api_silo")
        result = stages.run_all("api_silo", "r1", TODAY)   # 2 errors left: retried away
    assert result["state"] == "published"
    assert catalog().runs("api_silo")[0]["extracted"] == 3_000
    assert _counts() == (1, result["tree_size"], result["tree_size"])


def test_rate_limits_and_a_dropped_answer_still_complete_in_one_run(home, api_rows):
    with SiloServer(api_rows) as silo:
        _http_source(home, silo, pagination="offset", max_retry_after=5)
        silo.faults.rate_limit_every, silo.faults.retry_after = 4, "0"
        silo.faults.drop_at_page, silo.faults.drop_times = 2, 1
        result = stages.run_all("api_silo", "r1", TODAY)
        statuses = [r[2] for r in silo.log.requests]
    assert result["state"] == "published" and 429 in statuses and "cut" in statuses
    assert catalog().runs("api_silo")[0]["extracted"] == 3_000


def test_a_malformed_page_fails_the_run_and_the_rerun_completes(home, api_rows):
    with SiloServer(api_rows) as silo:
        _http_source(home, silo)
        silo.faults.bad_json_at_page, silo.faults.bad_json_times = 3, 1
        with pytest.raises(DataError, match="source api_silo.*page 3 is not valid JSON"):
            stages.run_all("api_silo", "r1", TODAY)
        _nothing_published("api_silo")
        assert "page 3 is not valid JSON" in catalog().runs("api_silo")[0]["message"]
        result = stages.run_all("api_silo", "r1", TODAY)
    assert result["version"] == 1
    assert _counts() == (1, result["tree_size"], result["tree_size"])
