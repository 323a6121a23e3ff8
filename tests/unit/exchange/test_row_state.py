"""Row hashes of change detection (exchange/row_state.py): the content of a silo row, every
column but `_row`, told apart however its values are split, nulls from empty text."""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from exchange import row_state


def _hashes(columns: dict) -> list[bytes]:
    return [bytes(r) for r in row_state.row_hashes(pa.table(columns))]


def test_equal_rows_hash_equal_and_the_row_number_is_not_content():
    a = _hashes({"A": ["x", "y"], "B": ["1", "1"], "_row": [1, 2]})
    b = _hashes({"A": ["x", "y"], "B": ["1", "1"], "_row": [7, 9]})
    assert a == b and a[0] != a[1] and all(len(h) == 16 for h in a)


def test_values_are_told_apart_however_they_are_split():
    rows = {"A": ["ab", "a", "", None, "a:b", "1:a"], "B": ["c", "bc", None, "", "c", "b"]}
    assert len(set(_hashes(rows))) == 6


def test_the_hash_is_sha256_of_the_length_prefixed_values():
    got = _hashes({"A": ["路1"], "B": [None], "C": [12]})[0]
    assert got == hashlib.sha256("4:路1n2:12".encode()).digest()[:16]


def test_many_rows_hash_as_few_do():     # DataFusion's path (>= 512 rows) and hashlib's agree
    values = [f"v{i}" for i in range(1_200)]
    many = row_state.row_hashes(pa.table({"A": values}))
    few = np.concatenate([row_state.row_hashes(pa.table({"A": values[i:i + 100]})) for i in range(0, 1_200, 100)])
    assert (many == few).all()


def test_suites_whose_outcome_is_not_row_by_row_are_checked_in_full():
    from quality.validate import incremental_blocker
    from schemas.types import get_type

    licence = get_type("business_licence")
    assert incremental_blocker(licence) is None
    assert "property_unit_number" in incremental_blocker(get_type("real_estate_title"))
    compound = {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["holder_code", "address"]}}
    assert "not row by row" in incremental_blocker(licence, [compound])
    later = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "valid_to", "min_value": {
        "$PARAMETER": "today"}}}
    assert "today" in incremental_blocker(licence, [later])
