"""The origin side of federation over HTTP (/v1/federation/*): what a peer exchange department
may mirror (unconditional, agreed conditional; never not_shared, never a mirrored dataset), the
version files as stored with the digests the version JSON gives, the roles kept apart, the
access reports a peer sends shown in the holder's access report, the hook that queues reports
for a mirrored dataset's origin, and the public cosignatures."""
from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from base import clock
from base.errors import InvalidRequest
from catalog.db.models import Mirror, Peer, PeerAccessReport
from catalog.federation import access_reports, cosignatures
from catalog.serving import audit

pytestmark = pytest.mark.federation
DATASET = "business_licence.market_regulation"
ITEM = "DJ-SCJG-0003"


@pytest.fixture(scope="module")
def env(tmp_path_factory, silo_2k):
    from api.app import create_app
    from base.settings import Settings
    from exchange import stages
    from tests.conftest import home_env, register_demo_source

    home = tmp_path_factory.mktemp("fed-origin") / "home"
    with home_env(home):
        register_demo_source(home, silo_2k[0])
        stages.run_all("smr_business_licence", "fed-r1")
    settings = Settings(home=home, catalog_url=f"sqlite:///{home / 'catalog.db'}", sources_dir=home / "sources")
    app = create_app(settings, rate=10_000, burst=10_000, cache_ttl=0)
    access = app.state.consumer.access
    access.add_department("city-ex", "市级平台", "exchange")
    access.add_department("other-ex", "另一平台", "exchange")
    access.add_department("tax", "税务局", "consumer")
    access.add_department("audit-office", "审计局", "auditor")
    keys = {d: access.issue_credential(d)["key"] for d in ("city-ex", "other-ex", "tax", "audit-office")}
    engine = app.state.consumer.engine
    with engine.connect() as c:
        rid, holder = c.execute(sa.text("select record_id, holder_key from records where status='valid' "
                                        "and superseded_in is null order by leaf_index limit 1")).one()
    with TestClient(app) as client:
        yield app, client, keys, engine, rid, holder


def _h(key):
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def sharing(env, value):
    app, _, _, engine, _, _ = env
    with engine.begin() as c:
        c.execute(sa.text("update datasets set sharing = :s where id = :d"), {"s": value, "d": DATASET})
    app.state.consumer.access.clear()
    try:
        yield
    finally:
        with engine.begin() as c:
            c.execute(sa.text("update datasets set sharing = 'unconditional' where id = :d"), {"d": DATASET})
        app.state.consumer.access.clear()


@contextmanager
def mirrored(engine, peer="district"):
    """DATASET as if it were mirrored here from `peer` (a peers row and a mirrors row)."""
    with engine.begin() as c:
        c.execute(sa.insert(Peer.__table__).values(name=peer, url="http://127.0.0.1:9", fingerprint="x" * 43,
                                                   keys=[], added_at=clock.now()))
        c.execute(sa.insert(Mirror.__table__).values(dataset_id=DATASET, peer=peer, source_id=f"peer.{peer}.x",
                                                     state="ok"))
    try:
        yield
    finally:
        with engine.begin() as c:
            c.execute(sa.delete(Mirror.__table__))
            c.execute(sa.delete(PeerAccessReport.__table__))
            c.execute(sa.delete(Peer.__table__))


def _listed(client, key):
    r = client.get("/v1/federation/datasets", headers=_h(key))
    assert r.status_code == 200, r.text
    return {d["dataset"]: d for d in r.json()["datasets"]}


def test_a_peer_lists_unconditional_and_agreed_datasets_only(env):
    app, client, keys, engine, _, _ = env
    body = client.get("/v1/federation/datasets", headers=_h(keys["city-ex"])).json()
    assert body["exchange"] == app.state.settings.log_origin
    meta = body["datasets"][0]
    assert meta["dataset"] == DATASET and meta["sharing"] == "unconditional"
    assert set(meta) == {"dataset", "title", "certificate_type", "type_version", "department", "department_name",
                         "sharing", "update_cycle", "steward", "description", "version", "log_from", "tree_size"}
    version = meta["version"]
    fed = app.state.federation
    with sharing(env, "conditional"):
        assert DATASET not in _listed(client, keys["city-ex"])
        for path in (f"/v1/federation/datasets/{DATASET}/versions/{version}",
                     f"/v1/federation/datasets/{DATASET}/versions/{version}/records.parquet"):
            r = client.get(path, headers=_h(keys["city-ex"]))
            assert r.status_code == 403 and "共享协议" in r.json()["detail"], r.text
        with pytest.raises(InvalidRequest, match="not a peer exchange"):
            fed.add_agreement("tax", DATASET)
        gid = fed.add_agreement("city-ex", DATASET, days=30)
        assert [a["id"] for a in fed.agreements()] == [gid]
        assert DATASET in _listed(client, keys["city-ex"])
        assert DATASET not in _listed(client, keys["other-ex"])      # the agreement is city-ex's alone
        assert client.get(f"/v1/federation/datasets/{DATASET}/versions/{version}",
                          headers=_h(keys["city-ex"])).status_code == 200
        fed.revoke_agreement(gid)
        assert DATASET not in _listed(client, keys["city-ex"])
    with sharing(env, "not_shared"):
        assert DATASET not in _listed(client, keys["city-ex"])
        with pytest.raises(InvalidRequest, match="not shared"):
            fed.add_agreement("city-ex", DATASET)
        assert client.get(f"/v1/federation/datasets/{DATASET}/versions/{version}",
                          headers=_h(keys["city-ex"])).status_code == 403
    with pytest.raises(InvalidRequest, match="no agreement needed"):
        fed.add_agreement("city-ex", DATASET)
    with mirrored(engine):          # a mirrored dataset is never served on (no transitive mirrors)
        assert DATASET not in _listed(client, keys["city-ex"])
        r = client.get(f"/v1/federation/datasets/{DATASET}/versions/{version}", headers=_h(keys["city-ex"]))
        assert r.status_code == 403 and "mirrored" in r.json()["detail"]
    assert audit.verify_chain(engine).ok


def test_version_files_stream_as_stored_with_the_digests_of_the_version(env):
    _, client, keys, engine, _, _ = env
    meta = _listed(client, keys["city-ex"])[DATASET]
    base = f"/v1/federation/datasets/{DATASET}/versions/{meta['version']}"
    info = client.get(base, headers=_h(keys["city-ex"])).json()
    assert info["tree_size"] == meta["tree_size"] and info["first_leaf"] == 0
    assert info["signed_tree_head"].count(".") == 2 and info["checkpoint"] and info["head_hash"]
    for name, digest in (("records.parquet", info["records_sha256"]), ("holders.parquet", info["holders_sha256"])):
        r = client.get(f"{base}/{name}", headers=_h(keys["city-ex"]))
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.parquet"
        assert hashlib.sha256(r.content).hexdigest() == digest
        table = pq.read_table(io.BytesIO(r.content))
        if name == "holders.parquet":
            assert table.column_names == ["holder_key"]
        assert table.num_rows == info["record_count"]
    assert client.get(f"{base}/tree.bin", headers=_h(keys["city-ex"])).status_code == 422
    assert client.get(f"/v1/federation/datasets/{DATASET}/versions/99",
                      headers=_h(keys["city-ex"])).status_code == 404
    with engine.connect() as c:
        actions = set(c.scalars(sa.text("select action from audit_log where department = 'city-ex' "
                                        "and purpose = 'mirror'")))
    assert {"mirror_list", "mirror_version", "mirror_file"} <= actions


def test_roles_are_kept_apart(env):
    _, client, keys, engine, _, holder = env
    r = client.get("/v1/federation/datasets", headers=_h(keys["tax"]))
    assert r.status_code == 403 and "peer exchanges only" in r.json()["detail"]
    r = client.post("/v1/federation/access", headers=_h(keys["tax"]), json={"reports": []})
    assert r.status_code == 403
    r = client.post("/v1/holders/records", params={"purpose": ITEM}, headers=_h(keys["city-ex"]),
                    json={"holder_id": holder})
    assert r.status_code == 403 and "/v1/federation/" in r.json()["detail"]
    assert client.get("/v1/federation/datasets").status_code == 401
    with engine.connect() as c:
        refused = c.execute(sa.text("select department, action from audit_log where outcome = 'refused:403' "
                                    "and department in ('tax', 'city-ex')")).all()
    assert ("tax", "mirror_list") in refused and ("city-ex", "lookup") in refused


def test_access_reports_from_a_peer_show_in_the_holders_access_report(env):
    app, client, keys, engine, rid, holder = env
    report = {"id": 7, "at": "2026-03-01T10:00:00+08:00", "department": "province-tax", "purpose": ITEM,
              "action": "lookup", "holder": holder, "datasets": [DATASET], "records": [rid]}
    r = client.post("/v1/federation/access", headers=_h(keys["city-ex"]), json={"reports": [report]})
    assert r.status_code == 200 and r.json() == {"accepted": 1}, r.text
    bad = {**report, "datasets": ["no_such.dataset"]}
    r = client.post("/v1/federation/access", headers=_h(keys["city-ex"]), json={"reports": [report, bad]})
    assert r.status_code == 403 and "no_such.dataset" in r.json()["detail"]
    consumer = app.state.consumer
    auditor = consumer.access.authenticate(keys["audit-office"])
    rows = consumer.access_report(auditor, ITEM, holder)["accesses"]
    peer = [a for a in rows if a["action"] == "peer_lookup"]
    assert len(peer) == 1
    assert peer[0]["department"] == "city-ex" and peer[0]["purpose"] == ITEM
    assert peer[0]["on_behalf_of"] == "province-tax" and peer[0]["datasets"] == [DATASET]
    with engine.connect() as c:
        detail = c.scalar(sa.text("select detail from audit_log where action = 'peer_lookup'"))
    assert '"peer_report": 7' in detail and '"via": "peer"' in detail


def test_an_answer_from_a_mirrored_dataset_queues_one_report_for_its_origin(env):
    app, client, keys, engine, rid, holder = env
    with mirrored(engine):
        r = client.post("/v1/holders/records", params={"purpose": ITEM}, headers=_h(keys["tax"]),
                        json={"holder_id": holder})
        assert r.status_code == 200 and r.json()["records"]
        due = access_reports.due(engine, "district", now=clock.now())
        assert len(due) == 1
        got = due[0]
        assert (got["department"], got["purpose"], got["action"], got["holder"], got["datasets"]) == \
            ("tax", ITEM, "lookup", holder, [DATASET])
        assert rid in got["records"] or got["records"]
        consumer = app.state.consumer            # the CLI's way: no API batch, written at once
        consumer.bundle(consumer.access.authenticate(keys["tax"]), ITEM, rid)
        due = access_reports.due(engine, "district", now=clock.now())
        assert [d["action"] for d in due] == ["lookup", "bundle"] and due[1]["records"] == [rid]
        assert access_reports.delivered(engine, [due[0]["id"]]) == 1
        assert access_reports.failed(engine, [due[1]["id"]], "peer down") == 1
        assert access_reports.due(engine, "district", now=clock.now()) == []     # the failed one waits
    with engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(PeerAccessReport)) == 0


def test_cosignatures_are_public(env):
    app, client, _, engine, _, _ = env
    now = clock.now()
    assert cosignatures.add(engine, "smr.district", 3, "district", "note\n", "— w sig", "kid1", now)
    assert not cosignatures.add(engine, "smr.district", 3, "district", "other\n", "— w other", "kid1", now)
    r = client.get("/v1/federation/cosignatures", params={"dataset": "smr.district"})
    assert r.status_code == 200
    body = r.json()
    name = app.state.settings.log_origin
    assert body["witness"] == name and body["verifier_key"].startswith(f"{name}+")
    assert [(c["dataset"], c["version"], c["checkpoint"]) for c in body["cosignatures"]] == \
        [("smr.district", 3, "note\n")]
    assert client.get("/v1/federation/cosignatures", params={"dataset": "x.y"}).json()["cosignatures"] == []
