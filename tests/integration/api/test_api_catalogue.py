"""Catalogue, DCAT-AP, public keys, input checks; and the API on PostgreSQL."""
from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

ITEM = "DJ-SCJG-0003"


def _client(settings, dept="cat-reader"):
    from api.app import create_app

    app = create_app(settings, rate=10_000, burst=10_000, cache_ttl=0)
    access = app.state.consumer.access
    access.add_department(dept, "Catalogue reader")
    return TestClient(app), {"Authorization": f"Bearer {access.issue_credential(dept)['key']}"}, app


def test_catalogue_dcat_keys_and_input_checks(published):
    client, h, _ = _client(published)
    ds = client.get("/v1/datasets", params={"purpose": ITEM}, headers=h).json()
    assert ds[0]["sharing"] and ds[0]["steward"] and ds[0]["fresh"] is True and ds[0]["records"] > 0
    assert ds[0]["freshness"] == "fresh" and ds[0]["due_at"] > ds[0]["last_refresh"]
    doc = client.get("/v1/catalogue.jsonld", params={"purpose": "case:CAT-0001"}, headers=h)
    assert doc.headers["content-type"].startswith("application/ld+json")
    d = doc.json()
    assert d["@type"] == "dcat:Catalog" and d["dcat:dataset"][0]["dct:accrualPeriodicity"]["@id"].endswith("DAILY")
    jwks = client.get("/.well-known/jwks.json")          # public: no key, no purpose
    assert jwks.status_code == 200 and json.loads(jwks.content)["keys"]
    assert client.get("/v1/keys/key-status.jws").status_code == 200
    bad = client.post("/v1/holders/records", params={"purpose": ITEM}, headers=h, json={"holder_id": "123"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    big = client.post("/v1/holders/records", params={"purpose": ITEM}, headers=h,
                      content=b'{"holder_id": "' + b"9" * 20_000 + b'"}')
    assert big.status_code == 413
    assert client.get("/v1/records/not-hex/bundle", params={"purpose": ITEM}, headers=h).status_code == 422
    assert client.get("/v1/records/" + "0" * 32 + "/bundle", params={"purpose": ITEM}, headers=h).status_code == 404


def test_status_of_a_copy_never_published_is_unknown(published):
    """A leaf hash or a version the exchange never published for the record: 404, not an answer
    about some other copy ("superseded") or about the record in general ("valid")."""
    client, h, _ = _client(published, "status-reader")
    engine = sa.create_engine(published.catalog_url)
    with engine.connect() as c:
        rid = c.execute(sa.text("select record_id from records where status = 'valid' "
                                "and valid_to is null order by leaf_index limit 1")).scalar_one()
    engine.dispose()
    b = client.get(f"/v1/records/{rid}/bundle", params={"purpose": ITEM}, headers=h).json()

    def status(**q):
        return client.get(f"/v1/records/{rid}/status", params={"purpose": ITEM, **q}, headers=h)

    for q in ({"version": 1, "leaf_hash": b["leaf_hash"]}, {"version": 1}, {"leaf_hash": b["leaf_hash"]}, {}):
        r = status(**q)
        assert (r.status_code, r.json()["status"]) == (200, "valid"), (q, r.text)
    never = ("ab" if b["leaf_hash"][:2] != "ab" else "cd") + b["leaf_hash"][2:]
    for q in ({"leaf_hash": never}, {"version": 1, "leaf_hash": never}, {"version": 2},
              {"version": 2, "leaf_hash": b["leaf_hash"]}):
        r = status(**q)
        assert r.status_code == 404, (q, r.text)
        body = r.json()
        assert body["type"] == "urn:exchange:problem:UnknownCopy" and "unknown" in body["detail"], body


@pytest.fixture
def pg_url():
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    name = f"exchange_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'create database "{name}"'))
    except Exception as exc:   # noqa: BLE001
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 not reachable: {exc}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from catalog.db.engine import engine_for
    engine_for.cache_clear()
    with admin.connect() as c:
        c.execute(sa.text(f'drop database if exists "{name}" with (force)'))


@pytest.mark.integration
def test_api_on_postgresql(home, silo_2k, pg_url, monkeypatch):
    from base.settings import get_settings, reset_settings
    from catalog.serving import audit
    from exchange import stages
    from tests.conftest import register_demo_source

    monkeypatch.setenv("EXCHANGE_CATALOG_URL", pg_url)
    reset_settings()
    register_demo_source(home, silo_2k[0])
    stages.run_all("smr_business_licence", "pg-1")
    client, h, app = _client(get_settings(), "pg-reader")
    engine = app.state.consumer.engine
    with engine.connect() as c:
        holder = c.execute(sa.text("select holder_key from records where status = 'valid' limit 1")).scalar_one()
    r = client.post("/v1/holders/records", params={"purpose": ITEM}, headers=h, json={"holder_id": holder})
    assert r.status_code == 200 and r.json()["records"]
    rid = r.json()["records"][0]["record_id"]
    b = client.get(f"/v1/records/{rid}/bundle", params={"purpose": ITEM}, headers=h).json()
    assert b["verifiable"] and b["record_id"] == rid
    assert client.get(f"/v1/records/{rid}/bundle", headers=h).status_code == 422
    report = audit.verify_chain(engine)
    assert report.ok and report.entries >= 5
    with engine.begin() as c:
        c.execute(sa.text("update audit_log set outcome = 'allowed' where outcome like 'refused%'"))
    assert not audit.verify_chain(engine).ok
