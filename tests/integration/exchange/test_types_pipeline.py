"""Several certificate types through the whole path in-process, each from a SQLite silo made
by the definition-driven generator: reconciliation, planted defects quarantined with the
right rule, derived licence identifiers, type versions recorded, and holders found by any
spelling through Catalog.lookup."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from base.settings import get_settings
from demo.synth_types import make_silo
from exchange import stages
from schemas.licence_id import problem
from schemas.normalize import code_key_scalar
from schemas.types import get_type
from tests.conftest import TODAY, register_sample

TYPES = ("food_business_licence", "diploma", "marriage_certificate", "social_insurance_record")
N = 1_500


def expected_reason(kind: str, ctype) -> str:
    return {
        "bad_holder_check": f"expect_column_values_to_be_valid_{ctype.field('holder_code').check}(holder_code)",
        "blank_holder_name": "expect_column_values_to_not_be_null(holder_name)",
        "validity_inverted": "expect_column_pair_values_a_to_be_greater_than_b(valid_to,valid_from)",
        "duplicate_licence_number": "expect_column_values_to_be_unique(licence_number)",
        "bad_date": "expect_column_values_to_be_parsable_dates(issue_date)",
        "issue_date_future": "expect_column_values_to_not_be_in_the_future(issue_date)",
        "unknown_status": "expect_column_values_to_be_in_set(status)",
    }[kind]


@pytest.fixture(scope="module")
def silos(tmp_path_factory):
    d = tmp_path_factory.mktemp("silos")
    return {t: (d / f"{t}.db", make_silo(t, d / f"{t}.db", N, seed=21, today=TODAY)) for t in TYPES}


def _ledger():
    from base.settings import get_settings
    from catalog.ledger.service import Ledger

    return Ledger(get_settings().catalog_url)


def _catalog():
    from catalog.service import Catalog
    s = get_settings()
    return Catalog(s.catalog_url, s.store)


def test_types_run_reconcile_and_quarantine_exactly_the_planted_defects(home, silos):
    for name in TYPES:
        silo, manifest = silos[name]
        ctype, reg = get_type(name), register_sample(home, name, silo)
        result = stages.run_all(reg.id, "r1", TODAY)
        run = _ledger().runs(reg.id)[0]
        assert run["extracted"] == N == run["accepted"] + run["quarantined"], name
        assert result["state"] == "published" and result["tree_size"] == run["accepted"]
        q = pq.read_table(get_settings().store.local_path(stages.handoff(reg.id, "r1", "quarantine"))).to_pylist()
        by_id = {int(r["raw"]["ID"]): r["reasons"] for r in q}
        planted = set()
        for kind, ids in manifest.items():
            if kind == "cosmetic":
                continue
            assert ids, (name, kind)
            planted |= set(ids)
            for i in ids:
                assert expected_reason(kind, ctype) in by_id.get(i, []), (name, kind, i, by_id.get(i))
        assert set(by_id) == planted, f"{name}: only planted defects are quarantined"
        cosmetic = set(manifest["cosmetic"]) - planted
        assert cosmetic and not cosmetic & set(by_id), f"{name}: cosmetic variants are accepted"


def test_records_carry_derived_ids_and_the_type_version(home, silos):
    for name in TYPES[:2]:
        reg = register_sample(home, name, silos[name][0])
        stages.run_all(reg.id, "r1", TODAY)
    with _catalog().engine.connect() as c:
        rows = c.execute(sa.text("select d.certificate_type, d.type_version, v.type_version, v.path "
                                 "from datasets d join dataset_versions v on v.dataset_id = d.id")).all()
    assert len(rows) == 2
    for ctype_name, d_version, v_version, path in rows:
        assert d_version == v_version == get_type(ctype_name).version
        records = get_settings().store.local_path(f"{path}/records.parquet")
        ids = pq.read_table(records, columns=["licence_id"]).column(0).to_pylist()
        assert ids and all(problem(i) is None for i in ids)
        assert len(set(ids)) == len(ids)


def test_a_holder_is_found_by_any_spelling_across_types(home, silos):
    for name in TYPES[1:]:          # person types share the synthetic population
        reg = register_sample(home, name, silos[name][0])
        stages.run_all(reg.id, "r1", TODAY)
    catalog = _catalog()
    with catalog.engine.connect() as c:
        holder = c.scalar(sa.text(
            "select holder_key from records group by holder_key "
            "having count(distinct dataset_id) >= 2 order by (substr(holder_key, 18) = 'X') desc, "
            "holder_key limit 1"))
    assert holder, "some person holds records of two types"
    found = catalog.lookup(holder)
    assert len({r["dataset"] for r in found}) >= 2
    full_width = holder.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    spellings = [holder.lower(), f" {holder[:6]}\u3000{holder[6:14]}\u200b{holder[14:]} ",
                 full_width, f"\ufeff{holder}\n", holder[:9] + "\u00a0" + holder[9:]]
    for spelling in spellings:
        assert catalog.lookup(code_key_scalar(spelling)) == found, repr(spelling)
