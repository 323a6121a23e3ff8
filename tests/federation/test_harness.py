"""The harness itself: three exchanges that are really apart (own keys, own logs), and the
district's published data reachable and verifiable against its own keys only."""
from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.federation, pytest.mark.timeout(300)]


def test_three_apis_answer_with_three_different_key_sets(exchanges):
    sets = [ex.jwks() for ex in exchanges.all]
    kids = [{k["kid"] for k in s["keys"]} for s in sets]
    assert all(kids) and len({frozenset(k) for k in kids}) == 3
    assert [ex.kid() in k for ex, k in zip(exchanges.all, kids, strict=True)] == [True] * 3


def test_the_district_published_version_1_of_both_datasets(exchanges):
    listed = {d["dataset"]: d for d in exchanges.district.run("datasets", json=True)}
    for kind, sharing in (("unconditional", "unconditional"), ("conditional", "conditional")):
        ds = listed[exchanges.datasets[kind]]
        assert (ds["version"], ds["sharing"]) == (1, sharing)
    assert exchanges.city.run("datasets", json=True) == []


def test_a_holder_lookup_at_the_district_finds_a_record(exchanges):
    found = exchanges.district.lookup(exchanges.keys["district/district-tax"], exchanges.holder)
    records = [r for r in found["records"] if r["dataset"] == exchanges.datasets["unconditional"]]
    assert len(records) == 1 and records[0]["status"] == "valid"


def test_an_exported_bundle_verifies_with_the_district_keys_only(exchanges, tmp_path):
    district, province = exchanges.district, exchanges.province
    key = exchanges.keys["district/district-tax"]
    record_id = district.lookup(key, exchanges.holder)["records"][0]["record_id"]
    bundle = district.export(key, record_id, tmp_path / "bundle.json")

    ok = district.verify(bundle, *district.key_material(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified"] is True

    wrong = district.verify(bundle, *province.key_material(tmp_path))
    assert wrong.returncode == 8, wrong.stdout + wrong.stderr
