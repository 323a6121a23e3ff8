"""Every certificate type has what it needs (in the style of datasette's test_docs.py): a
quality suite, a sample silo mapping, synthetic data, an API model and a documentation page.
Adding a type without them fails here. Also: versioned definitions refuse incompatible change."""
from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from base.errors import ConfigError, UnknownName
from schemas import types as types_mod
from schemas.types import all_types, load_type

TYPES = sorted(all_types())
TODAY = date(2025, 6, 1)
DERIVED = {"licence_name", "licence_type_code", "holder_code_type", "licence_id"}  # conform fills these


def missing_artifacts(name: str) -> list[str]:
    """What a type lacks of: suite, sample registration, synthetic data, API model, docs page."""
    from api.models import record_model
    from demo.synth_types import sample_registration, silo_table
    from schemas import docs

    ctype, missing = types_mod.get_type(name), []
    try:
        reg = sample_registration(name)
    except UnknownName:
        return ["sample registration in demo/registrations/"]
    unmapped = [f.name for f in ctype.fields if f.required and f.name not in DERIVED
                and f.name not in reg.mapping and f.name not in reg.constants]
    if unmapped:
        missing.append(f"sample mapping of required fields {unmapped}")
    try:
        table, manifest, _ = silo_table(name, 300, seed=3, today=TODAY)
        if table.column_names != ["ID", *reg.mapping.values()] or not manifest["bad_holder_check"]:
            missing.append("synthetic silo with the registration's columns and planted defects")
    except Exception as exc:   # noqa: BLE001 - reported as what is missing
        missing.append(f"synthetic data ({exc})")
    from quality import suites
    if not suites.suite_path(name).exists() or suites.suite_path(name).read_text("utf-8") != suites.render(ctype):
        missing.append(f"current quality suite quality/suites/{name}.json (run python -m quality.suites)")
    page = docs.DOCS / "types" / f"{name}.md"
    if not page.exists() or page.read_text("utf-8") != docs.render_type(ctype):
        missing.append(f"documentation page {page.name} (run python -m schemas.docs)")
    if set(record_model(name).model_fields) != {*ctype.field_names, "record_id"}:
        missing.append("API model")
    return missing


def test_at_least_ten_types_from_six_departments():
    types = all_types()
    assert len(types) >= 10
    assert len({t.department for t in types.values()}) >= 6
    assert len({t.type_code for t in types.values()}) == len(types), "type codes are unique"


@pytest.mark.parametrize("name", TYPES)
def test_every_type_has_its_artifacts(name):
    assert missing_artifacts(name) == []


@pytest.fixture(scope="module")
def gx_context():
    from quality.gx_context import Gx
    return Gx()


@pytest.mark.parametrize("name", TYPES)
def test_suite_file_loads_into_gx_with_the_definitions_rules(name, gx_context):
    from quality import suites

    ctype = types_mod.get_type(name)
    data = suites.read(name)
    rows, wide = suites.to_gx(data, version_wide=False), suites.to_gx(data, version_wide=True)
    kinds = {(e.expectation_type, getattr(e, "column", None)) for e in rows.expectations}
    for f in ctype.fields:
        if f.required:
            assert ("expect_column_values_to_not_be_null", f.name) in kinds
        if f.check:
            assert (f"expect_column_values_to_be_valid_{f.check}", f.name) in kinds
        if f.not_future:
            assert ("expect_column_values_to_not_be_in_the_future", f.name) in kinds
    assert ("expect_column_values_to_not_be_blank_when_normalised", "holder_name") in kinds
    assert {e.column for e in wide.expectations} == {f.name for f in ctype.fields if f.unique}
    assert rows.name == f"{name}.v{ctype.version}"


def test_a_stale_suite_file_is_reported(monkeypatch, tmp_path):
    from quality import suites

    stale = tmp_path / "diploma.json"
    stale.write_text(suites.render(types_mod.get_type("diploma")).replace("holder_name", "holder"), "utf-8")
    monkeypatch.setattr(suites, "suite_path", lambda name: tmp_path / f"{name}.json")
    assert any("quality suite" in m for m in missing_artifacts("diploma"))


def test_common_metadata_heads_every_type_and_follows_the_holder_kind():
    common = [f.name for f in types_mod.common_fields()]
    assert len(common) == 15
    for t in all_types().values():
        assert t.field_names[:15] == common
        check, code_type = types_mod.HOLDER_KINDS[t.holder_kind]
        assert t.field("holder_code").check == check
        assert t.field("holder_code_type").in_set == (code_type,)
        assert t.unrecorded_fields == [], f"record new fields of {t.name} under [history]"


def test_docs_index_and_items_page_are_current():
    from schemas import docs

    for path, text in docs.pages().items():
        assert path.read_text("utf-8") == text, f"{path.name} is stale: run python -m schemas.docs"


def test_a_type_without_its_artifacts_is_caught(tmp_path, monkeypatch):
    src = types_mod.TYPES_DIR / "diploma.toml"
    text = src.read_text("utf-8").replace('name = "diploma"', 'name = "fishing_permit"').replace(
        'type_code = "5001"', 'type_code = "9901"')          # a type code of its own
    shutil.copytree(types_mod.TYPES_DIR, tmp_path / "types")
    (tmp_path / "types" / "fishing_permit.toml").write_text(text, "utf-8")
    monkeypatch.setattr(types_mod, "TYPES_DIR", tmp_path / "types")
    types_mod.all_types.cache_clear()
    try:
        assert "fishing_permit" in all_types()
        assert missing_artifacts("fishing_permit") == ["sample registration in demo/registrations/"]
    finally:
        types_mod.all_types.cache_clear()


# --- versions ------------------------------------------------------------------------------

def _variant(tmp_path: Path, edit) -> Path:
    path = tmp_path / "diploma.toml"
    path.write_text(edit((types_mod.TYPES_DIR / "diploma.toml").read_text("utf-8")), "utf-8")
    return path


def test_adding_a_field_is_compatible(tmp_path):
    t = load_type(_variant(tmp_path, lambda s: s.replace(
        "[[rules]]", '[[fields]]\nname = "thesis_title"\ntype = "string"\n\n[[rules]]', 1)))
    assert t.version == 1 and t.unrecorded_fields == ["thesis_title:string"]


def test_removing_or_retyping_a_field_needs_a_new_version(tmp_path):
    removed = _variant(tmp_path, lambda s: s.replace('name = "major"', 'name = "subject"'))
    with pytest.raises(ConfigError, match=r"major:string removed.*set version = 2"):
        load_type(removed)
    retyped = _variant(tmp_path, lambda s: s.replace(
        'name = "enrolment_date"\ntype = "date"', 'name = "enrolment_date"\ntype = "string"'))
    with pytest.raises(ConfigError, match="enrolment_date:date retyped to enrolment_date:string"):
        load_type(retyped)


def test_a_version_bump_with_its_history_is_accepted(tmp_path):
    def bump(s):
        s = s.replace('name = "major"', 'name = "subject"').replace("version = 1", "version = 2")
        fields = [f.signature for f in all_types()["diploma"].fields]
        fields[fields.index("major:string")] = "subject:string"
        return s + "2 = [" + ", ".join(f'"{x}"' for x in fields) + "]\n"

    t = load_type(_variant(tmp_path, bump))
    assert t.version == 2 and "major:string" in t.fields_of(1) and t.unrecorded_fields == []


def test_an_unrecorded_version_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="version 2 is not recorded under \\[history\\]"):
        load_type(_variant(tmp_path, lambda s: s.replace("version = 1", "version = 2")))


def test_unknown_keys_and_holder_kinds_are_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown keys \\['colour'\\]"):
        load_type(_variant(tmp_path, lambda s: 'colour = "red"\n' + s))
    with pytest.raises(UnknownName, match="organisation, person"):
        load_type(_variant(tmp_path, lambda s: s.replace('holder_kind = "person"', 'holder_kind = "robot"')))
    with pytest.raises(ConfigError, match="defined twice"):
        load_type(_variant(tmp_path, lambda s: s.replace('name = "major"', 'name = "status"')))


def test_api_model_accepts_a_record_and_refuses_a_bad_status():
    from pydantic import ValidationError

    from api.models import record_model

    model = record_model("marriage_certificate")
    row = {"licence_name": "结婚证", "licence_type_code": "4001", "licence_number": "J1-2020-1",
           "holder_name": "张三", "holder_code": "X", "holder_code_type": "111", "issuer_name": "民政局",
           "issue_date": "2020-01-02", "valid_from": "2020-01-02", "status": "valid",
           "spouse_name": "李四", "spouse_id_number": "Y", "registration_date": "2020-01-02", "record_id": "r"}
    assert model(**row).issue_date == date(2020, 1, 2)
    with pytest.raises(ValidationError):
        model(**{**row, "status": "expired"})


def test_conformed_synthetic_rows_match_the_arrow_schema():
    from demo.synth_types import silo_table
    from schemas.conform import ROW, conform

    for name in TYPES:
        table, _, reg = silo_table(name, 200, seed=4, today=TODAY)
        batch = table.append_column(ROW, pa.array(range(1, 201), pa.int64())).to_batches()[0]
        out = conform(batch, reg.source_map)
        for f in types_mod.get_type(name).arrow_schema():
            assert out.schema.field(f.name).type == f.type
        assert out.column("licence_id").null_count == 0
