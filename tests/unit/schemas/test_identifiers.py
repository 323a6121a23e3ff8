from datetime import date, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from base.errors import DataError
from schemas.identifiers import (
    holder_code_type,
    ric_check_char,
    ric_problem,
    ric_region_note,
    ric_valid,
    uscc_check_char,
    uscc_check_chars,
    uscc_problem,
    uscc_valid,
)
from schemas.normalize import code_key

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
TODAY = date(2025, 6, 1)


# Independent implementations, straight from the standards.
def gb32100_check(first17):
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = 0
    for i in range(17):
        total += ALPHABET.index(first17[i]) * weights[i]
    c = 31 - total % 31
    if c == 31:
        c = 0
    return ALPHABET[c]


def gb11643_check(first17):
    total = 0
    for i in range(17):
        total += int(first17[i]) * (2 ** (17 - i) % 11)
    c = (12 - total % 11) % 11
    return "X" if c == 10 else str(c)


uscc17 = st.text(alphabet=ALPHABET, min_size=17, max_size=17)


@settings(deadline=None)
@given(uscc17)
def test_uscc_check_char_matches_the_standard(first17):
    code = first17 + gb32100_check(first17)
    assert uscc_check_char(first17) == code[17]
    assert uscc_problem(code) is None
    assert uscc_valid([code]).to_pylist() == [True]
    wrong = [first17 + c for c in ALPHABET if c != code[17]]
    assert not any(uscc_valid(wrong).to_pylist())


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=ALPHABET + "IOZSVx中 ", min_size=16, max_size=19),
                          uscc17.map(lambda s: s + gb32100_check(s))), max_size=40))
def test_uscc_vector_agrees_with_scalar(codes):
    assert uscc_valid(codes).to_pylist() == [c is not None and uscc_problem(c) is None for c in codes]


@settings(deadline=None)
@given(st.text(alphabet="0123456789", min_size=8, max_size=8),
       st.text(alphabet=ALPHABET, min_size=10, max_size=10))
def test_uscc_agrees_with_stdnum_for_digit_led_codes(head, tail):
    code = head + tail
    assert uscc_valid([code])[0].as_py() == stdnum_uscc.is_valid(code)


@pytest.mark.parametrize("first17", ["N2330106MA27XR0TT", "Y1110105MA01ABCDE", "A1440300MA5FNH3Q2"])
def test_uscc_letter_led_is_valid_where_stdnum_refuses(first17):
    code = first17 + gb32100_check(first17)
    assert uscc_valid([code]).to_pylist() == [True]
    assert uscc_problem(code) is None
    assert not stdnum_uscc.is_valid(code)  # the python-stdnum 2.2 shortfall we wrap


def test_uscc_known_code_and_reasons():
    assert uscc_problem("91110000600037341L") is None
    assert uscc_problem("91110000600037341") == "must be 18 characters, got 17"
    assert uscc_problem("9111I000600037341L") == "character 'I' at position 5 is not allowed in a USCC"
    assert uscc_problem("91110000600037341X") == "check character should be 'L', found 'X'"
    assert "code_key" in uscc_problem("91110000600037341l")
    with pytest.raises(DataError):
        uscc_check_char("9111000060003734I")


def test_uscc_normalised_forms_and_nulls():
    raw = ["９１１１００００６０００３７３４１Ｌ", " 9111 0000\u3000600037341l\u200b", None, "", "91110000600037341L"]
    assert uscc_valid(code_key(raw)).to_pylist() == [True, True, False, False, True]
    chunked = pa.chunked_array([raw[:2], raw[2:]])
    assert uscc_valid(code_key(chunked)).to_pylist() == [True, True, False, False, True]
    sliced = pa.array(["x" * 18, "91110000600037341L", "91110000600037341M"]).slice(1)
    assert uscc_valid(sliced).to_pylist() == [True, False]
    assert uscc_valid(pa.array(["中文中文中文"])).to_pylist() == [False]  # 18 bytes, not ASCII


def test_uscc_check_chars_vectorised():
    assert uscc_check_chars(["91110000600037341", "N2330106MA27XR0TT", "short", None]).to_pylist() == [
        "L", gb32100_check("N2330106MA27XR0TT"), None, None]


birth = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
ric17 = st.tuples(st.text(alphabet="0123456789", min_size=6, max_size=6), birth,
                  st.text(alphabet="0123456789", min_size=3, max_size=3)).map(
    lambda t: t[0] + t[1].strftime("%Y%m%d") + t[2])


@settings(deadline=None)
@given(ric17)
def test_ric_check_char_matches_the_standard(first17):
    code = first17 + gb11643_check(first17)
    assert ric_check_char(first17) == code[17]
    assert ric_problem(code, today=TODAY) is None
    assert ric_valid([code], today=TODAY).to_pylist() == [True]
    wrong = [first17 + c for c in "0123456789X" if c != code[17]]
    assert not any(ric_valid(wrong, today=TODAY).to_pylist())


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="0123456789Xx", min_size=17, max_size=19),
                          ric17.map(lambda s: s + gb11643_check(s))), max_size=40))
def test_ric_vector_agrees_with_scalar(codes):
    got = ric_valid(codes, today=TODAY).to_pylist()
    assert got == [c is not None and ric_problem(c, today=TODAY) is None for c in codes]


def make_ric(region, born, seq="001"):
    first17 = region + born + seq
    return first17 + gb11643_check(first17)


def test_ric_lower_case_x_after_code_key():
    first17 = next(f for f in (f"11010519491231{s:03d}" for s in range(100)) if gb11643_check(f) == "X")
    lower = first17 + "x"
    assert ric_valid([lower]).to_pylist() == [False]
    assert ric_valid(code_key([lower, " " + lower.replace("1", "１")])).to_pylist() == [True, True]


def test_ric_dates_and_reasons():
    future = (TODAY + timedelta(days=1)).strftime("%Y%m%d")
    codes = [make_ric("110105", "19900230"), make_ric("110105", future), make_ric("110105", "18991231"),
             make_ric("110105", TODAY.strftime("%Y%m%d"))]
    assert ric_valid(codes, today=TODAY).to_pylist() == [False, False, False, True]
    assert ric_problem(codes[0], TODAY) == "birth date 19900230 at positions 7-14 is not a real date"
    assert ric_problem(codes[1], TODAY) == f"birth date {future} is in the future"
    assert ric_problem(codes[2], TODAY) == "birth date 18991231 is before 1900"
    assert ric_problem("11010519900101001") == "must be 18 characters, got 17"
    bad = codes[3][:17] + ("0" if codes[3][17] != "0" else "1")
    assert ric_problem(bad, TODAY) == f"check character should be {codes[3][17]!r}, found {bad[17]!r}"
    assert ric_valid([None]).to_pylist() == [False]


def test_ric_region_is_not_a_rule():
    code = make_ric("620201", "19900101", "123")
    assert ric_valid([code]).to_pylist() == [True]
    with pytest.raises(KeyError):  # python-stdnum 2.2 raises instead of answering False
        stdnum_ric.is_valid(code)
    assert "620201" in ric_region_note(code)
    assert ric_region_note(make_ric("110101", "19900307")) is None


def test_faker_ids_are_valid():
    from faker import Faker
    fake = Faker("zh_CN")
    fake.seed_instance(3)
    ids = [fake.ssn(max_age=90) for _ in range(500)]
    assert all(ric_valid(ids).to_pylist())


def test_holder_code_type():
    ric = make_ric("110105", "19491231")
    uscc = "91110000600037341L"
    letter = "N2330106MA27XR0TT" + gb32100_check("N2330106MA27XR0TT")
    got = holder_code_type([ric, uscc, letter, "abc", None, "91110000600037341I"]).to_pylist()
    assert got == ["111", "001", "001", None, None, None]


# Any spelling a silo uses for a holder code normalises to the same key (and stays valid).
_SPACES = st.sampled_from([" ", "\u3000", "\u00a0", "\u200b", "\u200c", "\ufeff", "\t", "\u2009"])


def _respell(code, data):
    out = []
    for c in code:
        if data.draw(st.booleans()):
            c = c.lower()
        if c.isdigit() and data.draw(st.booleans()):
            c = chr(0xFF10 + int(c))
        if data.draw(st.integers(0, 4)) == 0:
            c = data.draw(_SPACES) + c
        out.append(c)
    return "".join(out) + (data.draw(_SPACES) if data.draw(st.booleans()) else "")


@settings(deadline=None)
@given(st.data(), uscc17, st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_every_spelling_of_a_holder_code_has_one_key(data, u17, r17):
    for code, valid in ((u17 + gb32100_check(u17), uscc_valid), (r17 + gb11643_check(r17), None)):
        spelled = _respell(code, data)
        assert code_key([spelled]).to_pylist() == [code]
        if valid is not None:
            assert valid(code_key([spelled])).to_pylist() == [True]
