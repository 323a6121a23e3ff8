import json
import sqlite3
import time
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from demo.synth import COLUMNS, DATE_COLUMNS, DEFECTS, business_licences, make_business_licence_silo, write_sqlite
from schemas.identifiers import uscc_valid
from schemas.normalize import clean_text, code_key, name_key, parse_dates

TODAY = date(2025, 6, 1)
N = 10_000


@pytest.fixture(scope="module")
def silo():
    start = time.perf_counter()
    table, manifest = business_licences(N, seed=7, today=TODAY)
    return table, manifest, time.perf_counter() - start


def ids_where(table, mask) -> set[int]:
    return set(table["ID"].filter(mask).to_pylist())


def test_shape_and_speed(silo):
    table, manifest, seconds = silo
    assert table.column_names == list(COLUMNS) and table.num_rows == N
    assert table["ID"].to_pylist() == list(range(1, N + 1))
    assert seconds < 10
    assert set(manifest) == set(DEFECTS) | {"cosmetic"}
    defective = [i for kind in DEFECTS for i in manifest[kind]]
    assert len(defective) == len(set(defective))  # one defect per row
    assert 0.045 * N <= len(defective) <= 0.055 * N
    assert all(manifest[kind] for kind in DEFECTS) and manifest["cosmetic"]
    assert not set(manifest["cosmetic"]) & set(defective)
    assert all(v == sorted(v) for v in manifest.values())


def test_each_defect_is_exactly_where_the_manifest_says(silo):
    table, manifest, _ = silo
    uscc_ok = uscc_valid(code_key(table["TYSHXYDM"]))
    assert ids_where(table, pc.invert(uscc_ok)) == set(manifest["bad_uscc_check"])

    assert ids_where(table, pc.is_null(clean_text(table["QYMC"]))) == set(manifest["blank_holder_name"])
    assert ids_where(table, pc.equal(name_key(table["QYMC"]), "")) == set(manifest["blank_holder_name"])

    dates = {c: parse_dates(table[c]) for c in DATE_COLUMNS}
    assert ids_where(table, dates["FZRQ"].invalid) == set(manifest["bad_date"])
    for c in ("CLRQ", "YYQXZ", "YYQXZHI"):
        assert not any(dates[c].invalid.to_pylist())
    assert not any(any(dates[c].open_ended.to_pylist()) for c in ("CLRQ", "FZRQ", "YYQXZ"))
    open_share = np.mean(dates["YYQXZHI"].open_ended.to_numpy(zero_copy_only=False))
    assert 0.25 < open_share < 0.4
    inverted = pc.fill_null(pc.less(dates["YYQXZHI"].dates, dates["YYQXZ"].dates), False)
    assert ids_where(table, inverted) == set(manifest["validity_inverted"])
    future = pc.fill_null(pc.greater(dates["FZRQ"].dates, pa.scalar(TODAY)), False)
    assert ids_where(table, future) == set(manifest["issue_date_future"])
    before_est = pc.fill_null(pc.less(dates["FZRQ"].dates, dates["CLRQ"].dates), False)
    assert not any(before_est.to_pylist())

    zch = code_key(table["ZCH"])
    assert all(pc.match_substring_regex(zch, r"^\d{15}$").to_pylist())
    counts = pc.value_counts(zch)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    assert ids_where(table, pc.is_in(zch, repeated)) == set(manifest["duplicate_licence_number"])


def test_licence_numbers_carry_a_mod_11_10_check(silo):
    table, _, _ = silo

    def ok(number):  # ISO 7064 MOD 11,10, as in GS 15-2006
        p = 10
        for ch in number[:14]:
            p = ((p + int(ch)) % 10 or 10) * 2 % 11
        return (p + int(number[14])) % 10 == 1
    assert all(ok(z) for z in code_key(table["ZCH"]).to_pylist())


def test_cosmetic_rows_pass_and_match_the_plain_rows(silo):
    table, manifest, _ = silo
    plain, plain_manifest = business_licences(N, seed=7, today=TODAY, cosmetic_rate=0)
    assert plain_manifest["cosmetic"] == [] and {k: manifest[k] for k in DEFECTS} == {
        k: plain_manifest[k] for k in DEFECTS}
    rows = pa.array(np.array(manifest["cosmetic"]) - 1)
    got, want = table.take(rows), plain.take(rows)
    assert all(uscc_valid(code_key(got["TYSHXYDM"])).to_pylist())
    for c in ("ZCH", "TYSHXYDM"):
        assert code_key(got[c]).equals(code_key(want[c]))
    for c in ("QYMC", "FDDBR", "ZS"):
        assert name_key(got[c]).equals(name_key(want[c]))
    for c in DATE_COLUMNS:
        a, b = parse_dates(got[c]), parse_dates(want[c])
        assert a.dates.equals(b.dates) and a.open_ended.equals(b.open_ended)
        assert not any(a.invalid.to_pylist())
    for c in COLUMNS:
        if c not in ("ZCH", "TYSHXYDM", "QYMC", "FDDBR", "ZS") + DATE_COLUMNS:
            assert got[c].equals(want[c])
    changed = {c: sum(pc.fill_null(pc.not_equal(got[c], want[c]), False).to_pylist()) for c in COLUMNS}
    assert all(changed[c] for c in ("ZCH", "TYSHXYDM", "QYMC", "FDDBR", "ZS", "FZRQ"))
    text = "".join(got["TYSHXYDM"].to_pylist() + got["QYMC"].to_pylist())
    assert any("\uff10" <= ch <= "\uff19" for ch in text) and any(ch.islower() for ch in text)
    assert "\u200b" in "".join(x for c in COLUMNS[1:] for x in got[c].to_pylist())


def test_deterministic_for_a_seed():
    a, ma = business_licences(500, seed=11, today=TODAY)
    b, mb = business_licences(500, seed=11, today=TODAY)
    c, _ = business_licences(500, seed=12, today=TODAY)
    assert a.equals(b) and ma == mb
    assert not a.equals(c)


def test_defect_rate_is_configurable():
    table, manifest = business_licences(2000, seed=3, defect_rate=0.0, today=TODAY)
    assert all(manifest[k] == [] for k in DEFECTS)
    assert all(uscc_valid(code_key(table["TYSHXYDM"])).to_pylist())
    _, manifest = business_licences(2000, seed=3, defect_rate=0.3, today=TODAY)
    assert 590 <= sum(len(manifest[k]) for k in DEFECTS) <= 600
    with pytest.raises(ValueError):
        business_licences(10, defect_rate=1.5)


def test_write_sqlite_and_silo(tmp_path):
    path = tmp_path / "silo.db"
    path.write_text("old contents")
    manifest = make_business_licence_silo(path, 1000, seed=5)
    assert json.loads(path.with_suffix(".manifest.json").read_text()) == manifest
    with sqlite3.connect(path) as con:
        info = con.execute("PRAGMA table_info(yyzz_djxx)").fetchall()
        declared = [(r[1], r[2], r[5]) for r in info]
        assert declared == [("ID", "INTEGER", 1)] + [(c, "TEXT", 0) for c in COLUMNS[1:]]
        assert con.execute("SELECT count(*), min(ID), max(ID) FROM yyzz_djxx").fetchone() == (1000, 1, 1000)
        blank = con.execute("SELECT QYMC FROM yyzz_djxx WHERE ID = ?", (manifest["blank_holder_name"][0],))
        assert blank.fetchone()[0].strip("\u200b\u3000 ") == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silo.db", "silo.manifest.json"]

    table, _ = business_licences(300, seed=1, today=TODAY)
    write_sqlite(table, path, table_name="other")
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT * FROM other ORDER BY ID").fetchall()
    assert rows == [tuple(r.values()) for r in table.to_pylist()]
    with pytest.raises(ValueError):
        write_sqlite(table, path, table_name="x; drop")
