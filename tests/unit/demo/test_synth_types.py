"""The definition-driven synthetic silos: shape, determinism, speed, and defects where the
manifest says (checked with the exchange's own validators, independently of the pipeline)."""
import time
from datetime import date

import numpy as np
import pyarrow.compute as pc
import pytest

from demo.synth_types import make_silo, silo_table
from schemas.identifiers import ric_valid, uscc_valid
from schemas.normalize import code_key, parse_dates
from schemas.types import all_types, get_type

TODAY = date(2025, 6, 1)


@pytest.mark.parametrize("name", sorted(all_types()))
def test_holder_codes_are_valid_except_where_planted(name):
    table, manifest, reg = silo_table(name, 1_000, seed=9, today=TODAY)
    check = get_type(name).field("holder_code").check
    valid = (ric_valid if check == "ric" else uscc_valid)(code_key(table.column(reg.mapping["holder_code"])))
    bad = set(np.flatnonzero(~valid.to_numpy(zero_copy_only=False)) + 1)
    assert bad == set(manifest["bad_holder_check"])


def test_planted_dates_and_determinism():
    table, manifest, reg = silo_table("diploma", 2_000, seed=9, today=TODAY)
    issue = parse_dates(table.column(reg.mapping["issue_date"]))
    invalid = set(np.flatnonzero(issue.invalid.to_numpy(zero_copy_only=False)) + 1)
    assert invalid == set(manifest["bad_date"])
    future = pc.fill_null(pc.greater(issue.dates, TODAY), False).to_numpy(zero_copy_only=False)
    assert set(np.flatnonzero(future) + 1) == set(manifest["issue_date_future"])
    again, manifest2, _ = silo_table("diploma", 2_000, seed=9, today=TODAY)
    assert again.equals(table) and manifest2 == manifest
    other, _, _ = silo_table("diploma", 2_000, seed=10, today=TODAY)
    assert not other.equals(table)


def test_fast_enough():
    silo_table("real_estate_title", 1_000, seed=1, today=TODAY)  # warm the Faker pools
    t0 = time.perf_counter()
    table, _, _ = silo_table("real_estate_title", 200_000, seed=1, today=TODAY)
    assert table.num_rows == 200_000 and time.perf_counter() - t0 < 10


def test_make_silo_writes_the_registration_table(tmp_path):
    import sqlite3
    manifest = make_silo("travel_agency_licence", tmp_path / "s.db", 300, seed=2, today=TODAY)
    with sqlite3.connect(tmp_path / "s.db") as con:
        assert con.execute("select count(*) from lxs_jyxk").fetchone() == (300,)
    assert (tmp_path / "s.manifest.json").exists() and manifest["duplicate_licence_number"]
