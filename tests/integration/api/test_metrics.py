"""GET /metrics: the catalogue's sources and datasets for Prometheus, behind its own token."""
from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-token-for-tests"


def _samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_off_without_a_token_and_refused_without_the_right_one(published):
    from api.app import create_app

    off = TestClient(create_app(published, rate=10_000, burst=10_000, cache_ttl=0))
    r = off.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and "EXCHANGE_METRICS_TOKEN" in r.json()["detail"]
    on = TestClient(create_app(dataclasses.replace(published, metrics_token=TOKEN), rate=10_000, burst=10_000))
    assert on.get("/metrics").status_code == 401
    assert on.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_metrics_report_the_latest_run_and_freshness_from_the_catalogue(published):
    from api.app import create_app

    client = TestClient(create_app(dataclasses.replace(published, metrics_token=TOKEN), rate=10_000, burst=10_000))
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = _samples(r.text)
    with sa.create_engine(published.catalog_url).connect() as c:
        run = c.execute(sa.text("select state, extracted, accepted, quarantined from runs "
                                "where source_id = 'smr_business_licence' order by id desc limit 1")).one()
    src = ("source", "smr_business_licence")
    assert got[("exchange_source_last_run_state", (src, ("state", run.state)))] == 1.0
    assert got[("exchange_source_last_run_state", (src, ("state", "failed")))] == 0.0
    for kind in ("extracted", "accepted", "quarantined"):
        assert got[("exchange_source_last_run_rows", (("kind", kind), src))] == getattr(run, kind)
    assert run.quarantined > 0          # the silo plants defects: the figure is not a default zero
    ds = ("dataset", "business_licence.market_regulation")
    assert got[("exchange_dataset_freshness", (ds, ("state", "fresh")))] == 1.0
    assert got[("exchange_dataset_freshness", (ds, ("state", "stale")))] == 0.0
    refreshed = got[("exchange_dataset_last_refresh_timestamp_seconds", (ds,))]
    assert got[("exchange_dataset_due_timestamp_seconds", (ds,))] > refreshed > 0


def test_metrics_count_api_requests_by_route_template_and_status(published):
    from api.app import create_app

    app = create_app(dataclasses.replace(published, metrics_token=TOKEN), rate=10_000, burst=10_000, cache_ttl=0)
    client = TestClient(app)
    app.state.consumer.access.add_department("metrics-reader", "指标读者")
    key = app.state.consumer.access.issue_credential("metrics-reader")["key"]
    for _ in range(3):
        assert client.get("/v1/datasets", params={"purpose": "DJ-SCJG-0003"},
                          headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/v1/datasets", params={"purpose": "DJ-SCJG-0003"}).status_code == 401
    assert client.get("/v1/records/" + "0" * 32 + "/bundle", params={"purpose": "DJ-SCJG-0003"},
                      headers={"Authorization": f"Bearer {key}"}).status_code == 404
    got = _samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text)
    def requests(route, status):
        return got.get(("exchange_api_requests_total",
                        (("method", "GET"), ("route", route), ("status", status))))
    assert requests("/v1/datasets", "200") == 3 and requests("/v1/datasets", "401") == 1
    assert requests("/v1/records/{record_id}/bundle", "404") == 1     # the template, not the id
    assert got[("exchange_api_request_duration_seconds_count",
                (("method", "GET"), ("route", "/v1/datasets")))] == 4
