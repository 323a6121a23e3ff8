"""The accepted/quarantined split: every row leaves one way, with reasons and values."""
from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from base import staging
from base.errors import ReconciliationError
from quality.validate import validate
from schemas.conform import conform
from tests.unit.schemas.test_conform import REG, USCC, silo_batch

TODAY = date(2026, 11, 21)
CASES = {   # silo overrides -> the expectation that must catch it (None: accepted)
    "clean": ({}, None),
    "bad check": ({"TYSHXYDM": USCC[:-1] + ("0" if USCC[-1] != "0" else "1")},
                  "expect_column_values_to_be_valid_uscc(holder_code)"),
    "blank name": ({"QYMC": "\u3000 \u200b"}, "expect_column_values_to_not_be_null(holder_name)"),
    "inverted": ({"YYQXZ": "2022-01-01", "YYQXZHI": "2021-12-31"},
                 "expect_column_pair_values_a_to_be_greater_than_b(valid_to,valid_from)"),
    "bad date": ({"FZRQ": "2021-02-30"}, "expect_column_values_to_be_parsable_dates(issue_date)"),
    "future": ({"FZRQ": "2030-01-01"}, "expect_column_values_to_not_be_in_the_future(issue_date)"),
    "unknown status": ({"DJZT": "歇业"}, "expect_column_values_to_be_in_set(status)"),
}


def _write(tmp_path, extra_raw_rows=0):
    rows = []
    for i, (overrides, _) in enumerate(CASES.values(), start=1):
        b = silo_batch(ID=str(i), ZCH=f"33010600012{i:04d}", **overrides)
        rows.append(b.set_column(b.schema.get_field_index("_row"), "_row", pa.array([i], pa.int64())))
    raw = pa.Table.from_batches(rows)
    conformed = pa.Table.from_batches([conform(b, REG.source_map) for b in rows])
    if extra_raw_rows:
        raw = pa.concat_tables([raw, raw.slice(0, extra_raw_rows)])
    pq.write_table(raw, tmp_path / "extracted.parquet")
    pq.write_table(conformed, tmp_path / "conformed.parquet")


def test_each_defect_is_quarantined_with_its_rule_value_and_raw_row(tmp_path):
    _write(tmp_path)
    out = validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                   tmp_path, TODAY)
    assert (out.extracted, out.accepted, out.quarantined) == (len(CASES), 1, len(CASES) - 1)
    q = {r["_row"]: r for r in pq.read_table(out.quarantine_path).to_pylist()}
    for row, (name, (_overrides, reason)) in enumerate(CASES.items(), start=1):
        if reason is None:
            assert row not in q, name
            continue
        assert reason in q[row]["reasons"], (name, q[row]["reasons"])
        assert q[row]["raw"]["ID"] == str(row), "the silo's own row is kept"
    assert json.loads(q[5]["values"])["issue_date"] == "2021-02-30"
    assert json.loads(q[7]["values"])["status"] == "歇业"
    accepted = staging.read_table(out.accepted_path)
    assert accepted.column("_row").to_pylist() == [1]
    assert out.reasons["expect_column_values_to_be_valid_uscc(holder_code)"] == 1
    assert json.loads(out.results_path.read_text())["rows"] == len(CASES)


def test_duplicated_licence_numbers_quarantine_every_copy(tmp_path):
    rows = [silo_batch(ID=str(i), ZCH="330106000999999" if i in (2, 3) else f"3301060001{i:05d}")
            for i in (1, 2, 3)]
    rows = [b.set_column(b.schema.get_field_index("_row"), "_row", pa.array([i + 1], pa.int64()))
            for i, b in enumerate(rows)]
    pq.write_table(pa.Table.from_batches(rows), tmp_path / "extracted.parquet")
    pq.write_table(pa.Table.from_batches([conform(b, REG.source_map) for b in rows]), tmp_path / "conformed.parquet")
    out = validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                   tmp_path, TODAY)
    assert out.quarantined == 2 and out.accepted == 1
    assert out.reasons == {"expect_column_values_to_be_unique(licence_number)": 2}


def test_rows_lost_between_stages_fail_reconciliation_and_write_no_outputs(tmp_path):
    _write(tmp_path, extra_raw_rows=2)
    with pytest.raises(ReconciliationError, match="nothing will be published"):
        validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                 tmp_path, TODAY)
    assert not (tmp_path / "accepted.arrow").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_quarantined_rows_sharing_a_licence_number_are_told_apart_by_their_content(tmp_path):
    same = "330106000999999"
    rows = [silo_batch(ID=i, ZCH=same, ZS=addr) for i, addr in (("1", "甲"), ("2", "乙"), ("1", "甲"))]
    rows = [b.set_column(b.schema.get_field_index("_row"), "_row", pa.array([n], pa.int64()))
            for n, b in enumerate(rows, start=1)]
    pq.write_table(pa.Table.from_batches(rows), tmp_path / "extracted.parquet")
    pq.write_table(pa.Table.from_batches([conform(b, REG.source_map) for b in rows]), tmp_path / "conformed.parquet")
    out = validate(tmp_path / "conformed.parquet", tmp_path / "extracted.parquet", REG.ctype,
                   tmp_path, TODAY, batch_rows=2)
    q = pq.read_table(out.quarantine_path).to_pylist()
    assert [r["key"] for r in q] == [same] * 3
    first, other, copy = (r["row_hash"] for r in q)
    assert len({first, other, copy}) == 3 and copy == f"{first}/2", "a copy word for word: /2"
    assert len(first) == 32


def test_reason_counts_keep_one_order_whatever_the_hash_seed(tmp_path):
    """Tied counts (a bad date fails "not null" and "parsable" alike) come in the same order in
    every process: a row's reasons were counted through a set, ordered by string hashes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    code = ("import sys, pathlib; from tests.unit.quality.test_validate_split import _write, TODAY, REG; "
            "from quality.validate import validate; p = pathlib.Path(sys.argv[1]); _write(p); "
            "print(list(validate(p / 'conformed.parquet', p / 'extracted.parquet', REG.ctype, p, TODAY, "
            "docs=False).reasons))")
    orders = set()
    for seed in range(6):
        out = tmp_path / str(seed)
        out.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        orders.add(subprocess.run([sys.executable, "-c", code, str(out)], cwd=root, env=env, check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1])
    assert len(orders) == 1, orders
