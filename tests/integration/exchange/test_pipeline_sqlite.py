"""The whole path in-process on a real SQLite silo: reconciliation, quarantine reasons of the
planted defects, idempotent re-runs, and faults that must leave nothing published."""
from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base.errors import PublishError, SourceError
from base.settings import get_settings
from exchange import stages
from tests.conftest import register_demo_source
from trust.verify import verify_bundle

EXPECTED_REASON = {
    "bad_uscc_check": "expect_column_values_to_be_valid_uscc(holder_code)",
    "blank_holder_name": "expect_column_values_to_not_be_null(holder_name)",
    "validity_inverted": "expect_column_pair_values_a_to_be_greater_than_b(valid_to,valid_from)",
    "duplicate_licence_number": "expect_column_values_to_be_unique(licence_number)",
    "bad_date": "expect_column_values_to_be_parsable_dates(issue_date)",
    "issue_date_future": "expect_column_values_to_not_be_in_the_future(issue_date)",
}


def _ledger():
    from base.settings import get_settings
    from catalog.ledger.service import Ledger

    return Ledger(get_settings().catalog_url)


def _catalog():
    from catalog.service import Catalog
    s = get_settings()
    return Catalog(s.catalog_url, s.store)


def _silo_ids(quarantine_path, extracted_rows) -> dict[int, list[str]]:
    q = pq.read_table(quarantine_path).to_pylist()
    return {int(r["raw"]["ID"]): r["reasons"] for r in q}


def test_run_reconciles_and_quarantines_every_planted_defect(home, silo_2k):
    silo, manifest = silo_2k
    register_demo_source(home, silo)
    extracted = stages.extract("smr_business_licence", "r1")
    stages.conform("smr_business_licence", "r1")
    validated = stages.validate("smr_business_licence", "r1")
    assert extracted["rows"] == 2_000
    assert validated["extracted"] == validated["accepted"] + validated["quarantined"] == 2_000

    by_id = _silo_ids(validated["quarantine_path"], extracted["rows"])
    for kind, reason in EXPECTED_REASON.items():
        assert manifest[kind], f"the silo planted no {kind}"
        for silo_id in manifest[kind]:
            assert reason in by_id.get(silo_id, []), (kind, silo_id, by_id.get(silo_id))
    planted = {i for k in EXPECTED_REASON for i in manifest[k]}
    assert set(by_id) == planted, "only planted defects are quarantined"
    cosmetic = set(manifest["cosmetic"]) - planted
    assert cosmetic and not cosmetic & set(by_id), "normalisation accepts cosmetic variants"

    q = pq.read_table(validated["quarantine_path"]).to_pylist()
    bad_date = next(r for r in q if EXPECTED_REASON["bad_date"] in r["reasons"])
    assert json.loads(bad_date["values"])["issue_date"], "the offending value is kept"

    result = stages.publish("smr_business_licence", "r1")
    assert result["state"] == "published" and result["version"] == 1
    assert result["tree_size"] == validated["accepted"]
    run = _ledger().runs("smr_business_licence")[0]
    assert (run["extracted"], run["accepted"], run["quarantined"]) == (
        2_000, validated["accepted"], validated["quarantined"])
    assert run["reasons"][EXPECTED_REASON["bad_uscc_check"]] == len(manifest["bad_uscc_check"])


def test_published_records_are_found_by_any_spelling_and_verify(home, silo_2k):
    silo, manifest = silo_2k
    register_demo_source(home, silo)
    stages.run_all("smr_business_licence", "r1")
    catalog = _catalog()
    holder = catalog.sample_holder("business_licence.market_regulation")
    found = catalog.lookup(holder)
    assert found and all(r["holder_name"] for r in found)
    import pyarrow as pa

    from schemas.normalize import code_key
    spelled = " " + holder.lower().translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert code_key(pa.array([spelled])).to_pylist()[0] == holder
    bundle = catalog.bundle(found[0]["record_id"])
    jwks = json.loads(get_settings().jwks_path.read_text())
    assert verify_bundle(bundle, jwks).head["version"] == 1


def test_rerunning_the_same_run_publishes_nothing_twice(home, silo_2k):
    silo, _ = silo_2k
    register_demo_source(home, silo)
    first = stages.run_all("smr_business_licence", "same")
    again = stages.run_all("smr_business_licence", "same")
    assert first["version"] == again["version"] == 1
    later = stages.run_all("smr_business_licence", "next-day")
    assert later["state"] == "unchanged" and later["version"] == 1
    datasets = _catalog().datasets()
    assert datasets[0]["version"] == 1
    with _catalog().engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from dataset_versions")) == 1
        assert c.scalar(sa.text("select count(*) from records")) == first["tree_size"]


def test_a_crash_mid_publish_leaves_no_partial_state(home, silo_2k, monkeypatch):
    silo, _ = silo_2k
    register_demo_source(home, silo)
    from catalog import service

    def boom(*a, **k):
        raise RuntimeError("disk full while indexing")

    with monkeypatch.context() as m:
        m.setattr(service, "_insert_index", boom)
        with pytest.raises(PublishError, match="nothing of it was kept"):
            stages.run_all("smr_business_licence", "r1")
    with _catalog().engine.connect() as c:
        assert c.scalar(sa.text("select count(*) from dataset_versions")) == 0
        assert c.scalar(sa.text("select count(*) from records")) == 0
        assert c.scalar(sa.text("select state from runs")) == "failed"
    assert get_settings().store.list("store/business_licence.market_regulation") == []
    assert stages.publish("smr_business_licence", "r1")["version"] == 1


def test_a_silo_that_goes_away_fails_the_run_and_publishes_nothing(home, silo_2k, tmp_path):
    silo, _ = silo_2k
    copy = tmp_path / "copy.db"
    shutil.copy(silo, copy)
    register_demo_source(home, copy)
    copy.unlink()
    with pytest.raises(SourceError, match="smr_business_licence"):
        stages.run_all("smr_business_licence", "r1")
    assert _catalog().datasets()[0]["version"] is None
    assert _ledger().runs()[0]["state"] == "failed"


def test_extract_numbers_rows_in_silo_order_across_batches(home, silo_2k, tmp_path):
    """Many small batches read on a few threads: `_row` runs 1..n in the silo's rowid order."""
    import sqlite3

    import pyarrow as pa

    silo, _ = silo_2k
    register_demo_source(home, silo)
    sources = get_settings().sources_dir
    toml = sources / "smr_business_licence.toml"
    toml.write_text(toml.read_text("utf-8").replace('table = "yyzz_djxx"', 'table = "yyzz_djxx"\nbatch_rows = 300'),
                    "utf-8")
    from tests.conftest import stored
    stored(toml)
    out = stages.extract("smr_business_licence", "r1")
    with get_settings().store.open_input(out["key"]) as f:
        reader = pa.ipc.open_file(f)
        batches = reader.num_record_batches
        table = reader.read_all()
    with sqlite3.connect(silo) as db:
        ids = [str(i) for (i,) in db.execute("select ID from yyzz_djxx order by rowid")]
    assert batches >= 2_000 // 300
    assert table.column("_row").to_pylist() == list(range(1, 2_001))
    assert table.column("ID").to_pylist() == ids
