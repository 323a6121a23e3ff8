"""The suite file is what runs (a steward's edit takes effect); a registration's own checks and
gates are checked when it is read; drift and size gates decide as documented."""
from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from base.errors import ConfigError, UnknownName
from quality import suites
from quality.gates import SchemaDrift, SizeGate, drift, refuse_retyped
from quality.validate import validate
from registration import checks
from tests.unit.quality.test_validate_split import CASES, TODAY, _write
from tests.unit.schemas.test_conform import REG

IN_SET = "expect_column_values_to_be_in_set(status)"


def test_a_stewards_edit_of_the_suite_file_changes_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(suites, "SUITES_DIR", tmp_path / "suites")
    shutil.copytree(suites.Path(suites.__file__).with_name("suites"), tmp_path / "suites")
    path = suites.suite_path("business_licence")
    data = json.loads(path.read_text("utf-8"))
    data["expectations"] = [e for e in data["expectations"]
                            if not (e["type"] == "expect_column_values_to_be_in_set"
                                    and e["kwargs"]["column"] == "status")]
    data["expectations"].append({"type": "expect_column_value_lengths_to_be_between",
                                 "kwargs": {"column": "address", "min_value": 200}, "meta": {}})
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    _write(tmp_path)
    out = validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                   tmp_path, TODAY, docs=False)
    assert IN_SET not in out.reasons, "the removed expectation no longer runs"
    assert out.reasons["expect_column_value_lengths_to_be_between(address)"] == len(CASES)
    assert out.accepted == 0 and out.docs_path is None


def test_the_checked_in_suite_quarantines_an_unknown_status_and_writes_data_docs(tmp_path):
    _write(tmp_path)
    out = validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                   tmp_path, TODAY)
    assert out.reasons[IN_SET] == 1
    assert out.docs_path == tmp_path / "data_docs" / "index.html" and out.docs_path.exists()
    keys = pq.read_table(out.quarantine_path).column("key").to_pylist()
    assert len(set(keys)) == len(keys) == out.quarantined and all(keys)


def test_source_checks_are_refused_with_the_known_names():
    fields = REG.ctype.field_names
    ok = checks.parse([{"type": "expect_column_values_to_match_regex", "column": "licence_number",
                        "regex": "^9"}], fields, "x.toml")
    assert ok == ({"type": "expect_column_values_to_match_regex",
                   "kwargs": {"column": "licence_number", "regex": "^9"}},)
    with pytest.raises(UnknownName, match="expect_column_values_to_match_regex"):
        checks.parse([{"type": "expect_magic", "column": "licence_number"}], fields, "x.toml")
    with pytest.raises(UnknownName, match="licence_number"):
        checks.parse([{"type": "expect_column_values_to_not_be_null", "column": "nope"}], fields, "x")
    with pytest.raises(ConfigError, match=r"needs \['regex'\]"):
        checks.parse([{"type": "expect_column_values_to_match_regex", "column": "address"}], fields, "x")
    with pytest.raises(ConfigError, match="size_change"):
        checks.parse_gates({"size_change": -1}, "x.toml")
    assert checks.parse_gates({}, "x") == {"size_change": 0.30}


@pytest.mark.parametrize("previous,accepted,held", [
    (None, 10, False), (1000, 1300, False), (1000, 1301, True), (1000, 700, False),
    (1000, 699, True), (1000, 0, True)])
def test_size_gate_holds_beyond_its_limit_either_way(previous, accepted, held):
    assert SizeGate(previous, accepted, 0.30).holds is held


def test_drift_names_retyped_mapped_columns_and_reports_new_unmapped_ones():
    before = {"ZCH": "TEXT", "ZCZB": "TEXT", "OLD": "TEXT"}
    now = {"ZCH": "TEXT", "ZCZB": "REAL", "OLD": "TEXT", "LXDH": "TEXT", "_row": "BIGINT"}
    d = drift(before, now, {"ZCH", "ZCZB"})
    assert d.unmapped == ["OLD", "LXDH"] and d.new == ["LXDH"]
    with pytest.raises(SchemaDrift, match="'ZCZB' changed type from TEXT to REAL"):
        refuse_retyped(d, "src")
    first = drift(None, now, {"ZCH", "ZCZB"})
    assert first.new == [] and first.retyped == {}
    refuse_retyped(first, "src")


def test_a_name_of_only_spaces_and_invisible_characters_is_blank():
    import pandas as pd

    from quality.gx_context import Gx
    from quality.suites import to_gx

    suite = to_gx({"name": "t", "expectations": [{"type": "expect_column_values_to_not_be_blank_when_normalised",
                                                  "kwargs": {"column": "holder_name"}}]},
                  version_wide=False)
    frame = pd.DataFrame({"holder_name": ["杭州某某有限公司", "\u3000\u200b\u2003", " ", None, "Ａ"]})
    result = Gx().validate(frame, suite).results[0].result
    assert result["unexpected_index_list"] == [1, 2]
