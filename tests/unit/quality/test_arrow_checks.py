"""The Arrow fast path against stock GX: same frame with planted defects, same suite (the
checked-in one plus extra checks of every kind, some only GX knows); the same unexpected
counts, percentages, partial lists and success per expectation, and the same failing rows."""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from demo.synth import business_licences
from quality import arrow_checks, suites
from quality.validate import label, validate
from schemas.conform import ROW, conform
from tests.unit.schemas.test_conform import REG

TODAY = date(2026, 11, 21)
EXTRA = [   # beyond the type's suite: every fast kind, and some only GX runs
    ("expect_column_values_to_match_regex", {"column": "licence_number", "regex": r"^\d{15}$"}),
    ("expect_column_values_to_not_match_regex", {"column": "address", "regex": "9"}),
    ("expect_column_values_to_not_be_in_set", {"column": "enterprise_type", "value_set": ["个人独资企业"]}),
    ("expect_column_value_lengths_to_equal", {"column": "licence_number", "value": 15, "mostly": 0.9}),
    ("expect_column_value_lengths_to_be_between", {"column": "holder_name", "min_value": 8, "max_value": 14}),
    ("expect_column_values_to_be_between", {"column": "capital", "min_value": 10, "max_value": 5000,
                                            "strict_max": True}),
    ("expect_column_values_to_be_in_set", {"column": "status", "value_set": ["valid"], "mostly": 0.5}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "issue_date", "column_B": "established_date", "or_equal": True}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "valid_to", "column_B": "issue_date", "ignore_row_if": "neither"}),
    ("expect_column_values_to_not_be_null", {"column": "valid_to"}),
    # no Arrow form: GX per batch, GX over the whole version
    ("expect_column_values_to_match_strftime_format", {"column": "_unparsed_valid_to", "strftime_format": "%Y"}),
    ("expect_column_values_to_be_json_parseable", {"column": "address"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["holder_code", "status"]}),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 10}),
]
COMPARED = ("element_count", "unexpected_count", "unexpected_percent", "missing_count",
            "missing_percent", "unexpected_percent_total", "unexpected_percent_nonmissing",
            "partial_unexpected_list", "partial_unexpected_index_list", "partial_unexpected_counts")


def _planted(tmp_path, n=400):
    silo, manifest = business_licences(n, seed=11, defect_rate=0.25, today=TODAY)
    silo = silo.append_column(ROW, pa.array(np.arange(1, n + 1), pa.int64()))
    rng = np.random.default_rng(5)
    conformed = pa.Table.from_batches([conform(b, REG.source_map) for b in silo.to_batches(max_chunksize=64)])
    capital = pa.array(rng.uniform(0, 6000, n))
    capital = pc.if_else(pa.array(rng.random(n) < 0.05), pa.scalar(None, pa.float64()), capital)
    capital = pc.if_else(pa.array(rng.random(n) < 0.03), pa.scalar(float("nan")), capital)
    numbers = conformed.column("licence_number").to_pylist()
    for i in rng.choice(n, 6, replace=False):       # full-width digits: \d still matches them
        numbers[i] = None if i % 3 == 0 else "３３" + (numbers[i] or "")[2:]
    conformed = conformed.set_column(conformed.schema.get_field_index("licence_number"),
                                     "licence_number", pa.array(numbers, pa.string()))
    conformed = conformed.append_column("capital", capital)
    pq.write_table(silo, tmp_path / "extracted.parquet", row_group_size=50)
    pq.write_table(conformed, tmp_path / "conformed.parquet", row_group_size=50)
    return conformed, manifest


@pytest.fixture
def suite_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(suites, "SUITES_DIR", tmp_path / "suites")
    shutil.copytree(suites.Path(suites.__file__).with_name("suites"), tmp_path / "suites")
    path = suites.suite_path("business_licence")
    data = json.loads(path.read_text("utf-8"))
    data["expectations"] += [{"type": t, "kwargs": kw, "meta": {}} for t, kw in EXTRA]
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return data


def test_fast_path_matches_stock_gx_per_expectation_and_per_row(tmp_path, suite_dir):
    conformed, manifest = _planted(tmp_path)
    out = validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                   tmp_path, TODAY, batch_rows=120)
    stock = _stock_gx(conformed.to_pandas(date_as_object=False), suites.to_gx(suite_dir))
    ours = {_key(r): r for r in out.result.results}
    assert len(ours) == len(stock.results) == len(suite_dir["expectations"])
    failing = 0
    for theirs in stock.results:
        name, mine = label(theirs.expectation_config), ours[_key(theirs)]
        assert mine.success == theirs.success, name
        for key in COMPARED:
            assert _plain(mine.result.get(key)) == _plain(theirs.result.get(key)), (name, key)
        failing += bool(theirs.result.get("unexpected_count"))
    assert failing >= 15, "the planted defects trip most expectations"
    assert out.result.statistics == stock.statistics

    expected = defaultdict(set)     # row -> labels, from stock GX's COMPLETE index lists
    rows = conformed.column(ROW).to_pylist()
    for r in stock.results:
        for i in r.result.get("unexpected_index_list") or []:
            expected[rows[i]].add(label(r.expectation_config))
    q = pq.read_table(out.quarantine_path).to_pylist()
    assert {r[ROW]: set(r["reasons"]) for r in q} == dict(expected)
    assert out.quarantined == len(expected) and out.accepted == len(rows) - len(expected)
    assert set(manifest["bad_uscc_check"]) <= set(expected), "planted defects are caught"
    assert out.docs_path.exists()


def test_expectations_without_an_arrow_form_are_left_to_gx(tmp_path, suite_dir):
    _planted(tmp_path, n=60)
    from quality.validate import _plan

    suite = suites.to_gx(suite_dir)
    plan = _plan(suite, {"today": TODAY.isoformat()}, pq.read_schema(tmp_path / "conformed.parquet"))
    gx_types = {plan.expectations[i].expectation_type for i in [*plan.gx_rows, *plan.gx_version]}
    assert gx_types == {"expect_column_values_to_match_strftime_format",
                        "expect_column_values_to_be_json_parseable",
                        "expect_compound_columns_to_be_unique", "expect_table_row_count_to_be_between"}
    assert set(plan.gx_version) == {i for i, e in enumerate(plan.expectations)
                                    if e.expectation_type in ("expect_compound_columns_to_be_unique",
                                                              "expect_table_row_count_to_be_between")}
    fast_types = {c.expectation.expectation_type for c in plan.fast.values()}
    assert "expect_column_values_to_be_valid_uscc" in fast_types
    assert "expect_column_values_to_be_unique" in fast_types
    with pytest.raises(arrow_checks.Unsupported):
        arrow_checks.fast_check(plan.expectations[-1], "x", pq.read_schema(tmp_path / "conformed.parquet"))


def _stock_gx(frame, suite):
    """Stock GX as the benchmark runs it: default settings, COMPLETE results."""
    import great_expectations as gx

    batch = (gx.get_context(mode="ephemeral").data_sources.add_pandas("stock")
             .add_dataframe_asset("rows").add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": frame}))
    return batch.validate(suite, result_format="COMPLETE",
                          expectation_parameters={"today": TODAY.isoformat()})


def _key(r):
    c = r.expectation_config
    kwargs = {k: v for k, v in c.kwargs.items() if k != "batch_id"}   # GX adds its batch's id
    return c.type, json.dumps(kwargs, sort_keys=True, default=str)


def _plain(v):
    """Values as JSON would carry them (NaN, NaT and None alike; numpy dates as text)."""
    from great_expectations.util import convert_to_json_serializable
    return json.loads(json.dumps(convert_to_json_serializable(v), default=str))


def test_a_broken_regex_is_reported_by_gx_naming_the_expectation(tmp_path, suite_dir):
    from base.errors import ConfigError

    _planted(tmp_path, n=60)
    suite_dir["expectations"].append({"type": "expect_column_values_to_match_regex",
                                      "kwargs": {"column": "address", "regex": "(unclosed"}, "meta": {}})
    suites.suite_path("business_licence").write_text(json.dumps(suite_dir, ensure_ascii=False), "utf-8")
    with pytest.raises(ConfigError, match=r"expect_column_values_to_match_regex\(address\) could not run"):
        validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                 tmp_path, TODAY, docs=False)
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "accepted.arrow").exists()
