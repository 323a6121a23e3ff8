"""Blank-equivalent values (empty, whitespace of any kind, the null markers databases and
spreadsheets export, text with no letter or digit) are never published as data: in every
required field of every certificate type, each variant is quarantined with a reason naming
the field and the rule."""
from __future__ import annotations

import dataclasses
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.conform import ROW, Conformer
from schemas.types import all_types

TODAY = date(2026, 11, 21)
BLANKS = ["", " ", "\t\n", "\u3000", "\u200b", " \u3000\u200b\ufeff ", "\u00a0", "NULL", "null", "Null",
          "None", "N/A", "n/a", "NA", "#N/A", "-", "--", "—", "无", "空", "/", "\\N", "nan", "NaN",
          "ＮＵＬＬ", " n/a ", "***", "？", "……", "-- / --", "（）", "暂无", "<NA>", "(null)", "#NULL!",
          "undefined", "nil", "NaT", "None\u200b"]
BLANK_RULES = ("expect_column_values_to_not_be_null", "expect_column_values_to_not_be_blank_when_normalised")


def _required(ctype):
    return [f for f in ctype.fields if f.required]


def _date_text(v) -> str:
    return v.isoformat() if isinstance(v, date) else v


def _silo(type_name: str):
    """(silo table, registration mapping every required field to a silo column, cases):
    one clean row per case, the case's required field replaced by a blank variant, and a
    few clean rows left as they are."""
    from demo.synth_types import silo_table

    ctype = all_types()[type_name]
    cases = [(f.name, v) for f in _required(ctype) for v in BLANKS]
    n = len(cases) + 5
    table, _, reg = silo_table(type_name, n, seed=8, defect_rate=0.0, cosmetic_rate=0.0, today=TODAY)
    # the required fields a registration fills by constant or derivation get a column too
    clean = Conformer(reg.source_map)(table.append_column(ROW, pa.array(range(1, n + 1), pa.int64()))
                           .combine_chunks().to_batches()[0])
    mapping, constants = dict(reg.mapping), dict(reg.constants)
    for f in _required(ctype):
        if f.name not in mapping:
            column = f"X_{f.name.upper()}"
            table = table.append_column(column, pa.array(
                [_date_text(v) for v in clean.column(f.name).to_pylist()], pa.string()))
            mapping[f.name] = column
            constants.pop(f.name, None)
    reg = dataclasses.replace(reg, mapping=mapping, constants=constants)
    columns = {c: table.column(c).to_pylist() for c in table.column_names}
    for row, (field, value) in enumerate(cases):
        columns[mapping[field]][row] = value
    table = pa.table({c: pa.array(v, table.schema.field(c).type) for c, v in columns.items()})
    return table.append_column(ROW, pa.array(range(1, n + 1), pa.int64())), reg, cases


@pytest.mark.parametrize("type_name", sorted(all_types()))
def test_blank_variants_in_every_required_field_are_quarantined_naming_field_and_rule(tmp_path, type_name):
    from quality.validate import validate

    raw, reg, cases = _silo(type_name)
    conformed = pa.Table.from_batches([Conformer(reg.source_map)(b) for b in raw.combine_chunks().to_batches()])
    pq.write_table(raw, tmp_path / "extracted.parquet")
    pq.write_table(conformed, tmp_path / "conformed.parquet")
    out = validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", reg.ctype,
                   tmp_path, TODAY, docs=False)
    q = {r[ROW]: r["reasons"] for r in pq.read_table(out.quarantine_path, columns=[ROW, "reasons"]).to_pylist()}
    missed = []
    for row, (field, value) in enumerate(cases, start=1):
        named = [r for r in q.get(row, []) if r in {f"{rule}({field})" for rule in BLANK_RULES}]
        if not named:
            missed.append((field, value, q.get(row)))
    assert not missed, f"{type_name}: {len(missed)} blank values not caught as blank: {missed[:8]}"
    assert out.accepted == 5, "the clean rows pass"
