"""Issue #19 across three exchanges on 127.0.0.1 (tests/federation/conftest.py): the province and
the city mirror the district. The tests run in file order on one set of exchanges: the
province's story first (found, verified offline, materials held, revoked within one sync,
access reported at the origin), then the city's (no agreement, real Airflow DAG, a rewritten
version refused, an unpinned key refused, a real rotation followed)."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest
import requests

from demo.exchanges import PASSPHRASE, PURPOSE
from trust import cosign
from trust.heads import head_hash

pytestmark = [pytest.mark.federation, pytest.mark.timeout(600)]


def _peer(fed, at, name: str) -> None:
    """`at` pins the district's key by fingerprint and keeps its peer key in an Airflow connection."""
    out = at.peer_add("district", fed.district, fed.keys[f"district/{name}-ex"])
    assert out["name"] == "district" and [k["kid"] for k in out["keys"]] == [fed.district.kid()]


def _sync(at, expect: int = 0) -> dict:
    summary = at.sync("district")
    assert summary["exit"] == expect, summary
    return summary


def _datasets(at) -> dict[str, dict]:
    return {d["dataset"]: d for d in at.run("datasets", json=True)}


def _mirror(at, dataset: str) -> dict:
    peer = next(p for p in at.run("peers", "list", json=True) if p["name"] == "district")
    return next(m for m in peer["mirrors"] if m["dataset"] == dataset)


def _post(ex, path: str, key: str, body: dict, purpose: str = PURPOSE) -> dict:
    r = requests.post(ex.url + path, params={"purpose": purpose}, json=body,
                      headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- the province ----------------------------------------------------------------------------
def test_the_province_mirrors_both_datasets_under_the_agreement(exchanges):
    fed, province = exchanges, exchanges.province
    _peer(fed, province, "province")
    summary = _sync(province)
    got = {d["dataset"]: d for d in summary["datasets"]}
    assert summary["outcome"] == "ok"
    for kind in ("unconditional", "conditional"):
        assert (got[fed.datasets[kind]]["to"], got[fed.datasets[kind]]["state"]) == (1, "ok")
    here, there = _datasets(province), _datasets(fed.district)
    for ds in fed.datasets.values():
        assert (here[ds]["version"], here[ds]["records"], here[ds]["root_hash"], here[ds]["sharing"]) == \
               (there[ds]["version"], there[ds]["records"], there[ds]["root_hash"], there[ds]["sharing"])
    for ds in fed.datasets.values():     # the province's own grants decide who sees them there
        province.grant("province-market", ds)


def test_a_district_record_is_found_at_the_province_and_verifies_with_the_district_keys_only(exchanges, tmp_path):
    fed, province = exchanges, exchanges.province
    key = fed.keys["province/province-market"]
    records = [r for r in province.lookup(key, fed.holder)["records"] if r["dataset"] == fed.datasets["unconditional"]]
    assert len(records) == 1 and records[0]["status"] == "valid"
    bundle = province.export(key, records[0]["record_id"], tmp_path / "bundle.json")
    head = json.loads(bundle.read_text("utf-8"))["signed_tree_head"]
    district_head = fed.district.run("consistency", fed.datasets["unconditional"], "--from", "1", "--to", "1",
                                     json=True)["first_checkpoint"]["signed_tree_head"]
    assert head == district_head            # not signed again: the district's own head
    ok = province.verify(bundle, *fed.district.key_material(tmp_path))
    assert ok.returncode == 0 and json.loads(ok.stdout)["verified"] is True, ok.stdout + ok.stderr
    mine = province.verify(bundle, *province.key_material(tmp_path))
    assert mine.returncode == 8, mine.stdout + mine.stderr


def test_the_materials_check_at_the_province_counts_the_district_licence_as_held(exchanges):
    fed, province = exchanges, exchanges.province
    answer = _post(province, f"/v1/items/{PURPOSE}/materials-check", fed.keys["province/province-market"],
                   {"holder_id": fed.holder})
    held = [m for m in answer["materials"] if m.get("dataset") == fed.datasets["unconditional"]]
    assert len(held) == 1 and held[0]["answer"] == "held", answer


def test_the_district_access_report_shows_the_provinces_request_for_its_consumer(exchanges):
    fed = exchanges
    summary = _sync(fed.province)                       # the sync delivers the reports owed
    assert summary["reports"] >= 2
    report = _post(fed.district, "/v1/holders/access-report", fed.keys["district/district-audit"],
                   {"holder_id": fed.holder})
    peer = [a for a in report["accesses"] if a["department"] == "province-ex" and a["action"].startswith("peer_")]
    assert {a["action"] for a in peer} >= {"peer_lookup", "peer_bundle"}
    assert all(a["purpose"] == PURPOSE and a["on_behalf_of"] == "province-market" for a in peer), peer


def test_a_revocation_at_the_district_reaches_the_province_in_one_sync(exchanges):
    fed, district, province = exchanges, exchanges.district, exchanges.province
    holder = district.revoke_licence("district_smr", fed.holder)
    assert district.publish("district_smr")["version"] == 2
    summary = _sync(province)
    assert {d["dataset"]: d["to"] for d in summary["datasets"]}[fed.datasets["unconditional"]] == 2
    found = province.lookup(fed.keys["province/province-market"], holder)["records"]
    assert [r["status"] for r in found if r["dataset"] == fed.datasets["unconditional"]] == ["revoked"]


def test_the_province_publishes_cosignatures_that_verify(exchanges):
    fed = exchanges
    r = fed.province.get("/v1/federation/cosignatures", dataset=fed.datasets["unconditional"])
    body = r.json()
    assert r.status_code == 200 and [c["version"] for c in body["cosignatures"]] == [2, 1]
    for c in body["cosignatures"]:
        assert cosign.verify_cosignature(c["checkpoint"], c["cosignature"], body["verifier_key"]) > 0
        assert c["checkpoint"].startswith(f"{fed.district.origin}/{fed.datasets['unconditional']}\n")


# --- the city --------------------------------------------------------------------------------
def test_without_an_agreement_the_city_never_gets_the_conditional_dataset(exchanges):
    fed, city = exchanges, exchanges.city
    _peer(fed, city, "city")
    if "faketime" in os.environ.get("LD_PRELOAD", ""):
        _sync(city)     # Airflow under libfaketime is unreliable (./run): the moved-clock pass syncs by hand
    else:
        city.airflow_dags_test("peer__district")         # the mirror's own DAG, under real Airflow
    here = _datasets(city)
    assert here[fed.datasets["unconditional"]]["version"] == 2
    assert fed.datasets["conditional"] not in here
    refused = city.get(f"/v1/federation/datasets/{fed.datasets['conditional']}/versions/1")
    assert refused.status_code in (401, 403)              # nor may anyone ask the city for it
    r = fed.district.get(f"/v1/federation/datasets/{fed.datasets['conditional']}/versions/1",
                         key=fed.keys["district/city-ex"])
    assert r.status_code == 403, r.text


def _district_db(fed) -> sqlite3.Connection:
    return sqlite3.connect(fed.district.home / "catalog.db")


def _resign(fed, dataset: str, version: int, keys) -> tuple[str, str]:
    """The district's stored head of `version`, signed again by `keys` with another issued_at:
    what a district rewriting a published version serves. Returns (old JWS, old head hash)."""
    from trust.verify import head_payload_unverified

    with _district_db(fed) as db:
        jws, hh = db.execute("SELECT signed_tree_head, head_hash FROM dataset_versions WHERE dataset_id=? "
                             "AND version=?", (dataset, version)).fetchone()
        payload = dict(head_payload_unverified(jws))
        payload["issued_at"] = "2020-01-01T00:00:00Z"
        new = keys.sign_tree_head(payload)
        db.execute("UPDATE dataset_versions SET signed_tree_head=?, head_hash=?, kid=? WHERE dataset_id=? "
                   "AND version=?", (new, head_hash(new), keys.signer().kid, dataset, version))
    return jws, hh


def _restore(fed, dataset: str, version: int, jws: str, hh: str, kid: str) -> None:
    with _district_db(fed) as db:
        db.execute("UPDATE dataset_versions SET signed_tree_head=?, head_hash=?, kid=? WHERE dataset_id=? "
                   "AND version=?", (jws, hh, kid, dataset, version))


def _district_keys(fed):
    from catalog.signing.keys import KeyStore

    return KeyStore(fed.district.home / "keys", PASSPHRASE)


def test_a_district_rewriting_a_published_version_is_refused_and_the_city_keeps_its_last_good_state(exchanges):
    fed, city = exchanges, exchanges.city
    ds = fed.datasets["unconditional"]
    kid = fed.district.kid()
    old, hh = _resign(fed, ds, 2, _district_keys(fed))
    try:
        summary = _sync(city, expect=8)
        entry = {d["dataset"]: d for d in summary["datasets"]}[ds]
        assert entry["state"] == "refused" and ("rewrite" in entry["error"] or "split_view" in entry["error"])
        mirror = _mirror(city, ds)
        assert (mirror["version"], mirror["state"]) == (2, "refused") and mirror["head_hash"] == hh
        alerts = city.run("alerts", json=True)
        assert any(a["kind"] == "peer_refused" and a["dataset_id"] == ds for a in alerts), alerts
        assert _datasets(city)[ds]["version"] == 2        # still served as verified
    finally:
        _restore(fed, ds, 2, old, hh, kid)
    assert _sync(city)["outcome"] == "ok" and _mirror(city, ds)["state"] == "ok"


def test_a_version_signed_by_an_unpinned_key_is_refused(exchanges, tmp_path):
    from catalog.signing.keys import KeyStore

    fed, city = exchanges, exchanges.city
    ds = fed.datasets["unconditional"]
    fed.district.change_licence("district_smr", fed.district.holders("district_smr")[1], QYMC="改名后的企业有限公司")
    assert fed.district.publish("district_smr")["version"] == 3
    rogue = KeyStore(tmp_path / "rogue-keys", "rogue passphrase")
    rogue.create()
    old, hh = _resign(fed, ds, 3, rogue)
    try:
        summary = _sync(city, expect=8)
        entry = {d["dataset"]: d for d in summary["datasets"]}[ds]
        assert entry["state"] == "refused" and "unknown_key" in entry["error"], entry
        assert _mirror(city, ds)["version"] == 2
    finally:
        _restore(fed, ds, 3, old, hh, fed.district.kid())
    summary = _sync(city)
    assert {d["dataset"]: d["to"] for d in summary["datasets"]}[ds] == 3


def test_a_rotation_at_the_district_is_followed_through_its_signed_key_status(exchanges):
    fed, city = exchanges, exchanges.city
    ds = fed.datasets["unconditional"]
    before = fed.district.kid()
    fed.district.run("keys", "rotate")
    after = fed.district.kid()
    assert after != before
    fed.district.change_licence("district_smr", fed.district.holders("district_smr")[2], QYMC="再次改名有限公司")
    assert fed.district.publish("district_smr")["version"] == 4
    summary = _sync(city)
    assert {d["dataset"]: d["to"] for d in summary["datasets"]}[ds] == 4
    peer = next(p for p in city.run("peers", "list", json=True) if p["name"] == "district")
    assert {k["kid"]: k["pinned_by"] for k in peer["keys"]} == {before: "fingerprint", after: before}
