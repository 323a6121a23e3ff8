import datetime as dt
import json

import pyarrow as pa
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.signing.canonical import canonical_json
from trust.canonical import canonical_bytes, sort_keys, to_json_record, to_json_value


def rows_of(table):
    return [canonical_bytes(table.slice(i, 1).to_pylist()[0]) for i in range(table.num_rows)]


def test_rfc8785_key_ordering_example():
    # RFC 8785 §3.2.3: sorting by UTF-16 code units, including a surrogate pair (U+1F600).
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    expected = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert sort_keys(keys) == expected
    table = pa.table({k: [f"{k} value"] for k in keys})
    got = canonical_json(table)[0].as_py()
    assert got == rfc8785.dumps({k: f"{k} value" for k in keys})
    assert list(json.loads(got)) == expected


def test_rfc8785_string_escaping():
    # RFC 8785 §3.2.2.2: short escapes, \u00xx lowercase for other controls, the rest raw UTF-8.
    s = "\u20ac$\u000f\nA'\u0042\u0022\u005c\\\"/\b\f\r\t\u001f中\u2028\U0001f600"
    got = canonical_json(pa.table({"s": [s]}))[0].as_py()
    assert got == rfc8785.dumps({"s": s})
    assert got == ('{"s":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/\\b\\f\\r\\t\\u001f中\u2028😀"}').encode()


def test_types_and_nulls():
    table = pa.table({
        "s": pa.array(["a", None, ""], pa.large_string()),
        "i8": pa.array([-128, None, 127], pa.int8()),
        "i64": pa.array([2**53 - 1, -(2**53 - 1), None], pa.int64()),
        "d": pa.array([dt.date(2020, 1, 2), None, dt.date(1, 1, 1)], pa.date32()),
        "b": pa.array([True, False, None]),
        "dict": pa.array(["x", "y", None]).dictionary_encode(),
    })
    out = canonical_json(table)
    assert out.to_pylist() == rows_of(table)
    assert out[1].as_py() == b'{"b":false,"d":null,"dict":"y","i64":-9007199254740991,"i8":null,"s":null}'


def test_multiple_chunks_and_slices():
    t = pa.table({"a": ["x\n", "y"], "n": [1, 2]})
    t = pa.concat_tables([t, t, t]).slice(1, 4)
    assert canonical_json(t).to_pylist() == rows_of(t)


def test_empty_table_and_no_columns():
    assert len(canonical_json(pa.table({"a": pa.array([], pa.string())}))) == 0
    assert canonical_json(pa.table({"a": [1, 2]}).select([])).to_pylist() == [b"{}", b"{}"]


def test_floats_are_refused():
    with pytest.raises(ValueError, match="floats are not allowed"):
        to_json_value(1.5)
    with pytest.raises(ValueError, match="floats are not allowed"):
        canonical_bytes({"x": 1.0})
    with pytest.raises(ValueError, match="'price'.*floats are not allowed"):
        canonical_json(pa.table({"price": [1.5]}))


def test_out_of_range_and_unsupported():
    with pytest.raises(ValueError):
        to_json_value(2**53)
    with pytest.raises(ValueError, match="'big'"):
        canonical_json(pa.table({"big": [2**53]}))
    with pytest.raises(ValueError, match="'ts'.*unsupported"):
        canonical_json(pa.table({"ts": pa.array([0], pa.timestamp("s"))}))
    with pytest.raises(ValueError):
        to_json_value(dt.datetime(2020, 1, 1))
    with pytest.raises(ValueError):
        to_json_record({"l": [1]})


def test_to_json_record():
    assert to_json_record({"d": dt.date(2020, 1, 2), "b": True, "n": None, "i": 3}) == \
        {"d": "2020-01-02", "b": True, "n": None, "i": 3}


# -- property: every row of canonical_json equals rfc8785.dumps of the row ------------------
_TEXT = st.text(alphabet=st.one_of(
    st.sampled_from(list('"\\/\b\f\n\r\t\x00\x1f\x7f\u2028\u2029 中文證照') + ["\U0001f600", "\U00020000"]),
    st.characters(codec="utf-8"),
), max_size=12)
_TYPES = {
    "string": (pa.string(), _TEXT),
    "large_string": (pa.large_string(), _TEXT),
    "int64": (pa.int64(), st.integers(-(2**53 - 1), 2**53 - 1)),
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "date32": (pa.date32(), st.dates()),
    "bool": (pa.bool_(), st.booleans()),
}


@st.composite
def tables(draw):
    n = draw(st.integers(0, 12))
    names = draw(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
                          min_size=1, max_size=6, unique=True))
    cols = {}
    for name in names:
        typ, values = _TYPES[draw(st.sampled_from(sorted(_TYPES)))]
        cols[name] = pa.array(draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n)), typ)
    return pa.table(cols)


@settings(max_examples=300, deadline=None)
@given(tables())
def test_property_rows_equal_rfc8785(table):
    out = canonical_json(table)
    assert pa.types.is_binary(out.type) or pa.types.is_large_binary(out.type)
    assert out.to_pylist() == [rfc8785.dumps(to_json_record(r)) for r in table.to_pylist()]
    assert out.to_pylist() == rows_of(table)


# -- RFC 8785's own examples, where they apply to flat records -----------------------------
def test_rfc8785_section_3_2_2_sample_string_and_literals():
    # The "string" and "literals" members of the §3.2.2 input, and their output in §3.2.4
    # (the "numbers" member holds floats, which records refuse).
    spec_input = r'''{"string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
                      "literal_null": null, "literal_true": true, "literal_false": false}'''
    record = json.loads(spec_input)
    want = ('{"literal_false":false,"literal_null":null,"literal_true":true,'
            r'''"string":"€$\u000f\nA'B\"\\\\\"/"}''').encode()
    assert canonical_bytes(record) == want
    table = pa.table({"string": [record["string"]], "literal_null": pa.array([None], pa.string()),
                      "literal_true": [True], "literal_false": [False]})
    assert canonical_json(table)[0].as_py() == want


def test_rfc8785_section_3_2_3_sorting_example_exactly():
    spec_input = r'''{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
                      "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
                      "\u00f6": "Latin Small Letter O With Diaeresis"}'''
    record = json.loads(spec_input)
    want = ('{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
            '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
            '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}').encode()
    assert canonical_bytes(record) == want
    assert canonical_json(pa.table({k: [v] for k, v in record.items()}))[0].as_py() == want


def test_rfc8785_appendix_b_integers_that_apply():
    # Appendix B: 0 serialises as "0"; ±9007199254740992 (2**53) are the first integers past
    # the safe range, which records refuse rather than risk a rounded number.
    assert canonical_json(pa.table({"n": [0, 9007199254740991, -9007199254740991]})).to_pylist() == \
        [b'{"n":0}', b'{"n":9007199254740991}', b'{"n":-9007199254740991}']
    for n in (2**53, -(2**53)):
        with pytest.raises(ValueError, match="outside"):
            canonical_json(pa.table({"n": [n]}))
        with pytest.raises(ValueError):
            canonical_bytes({"n": n})


@settings(max_examples=150, deadline=None)
@given(tables(), st.integers(0, 12), st.integers(0, 12))
def test_property_chunked_sliced_and_prefixed(table, cut, start):
    """Tables as batches leave them (several chunks, offsets into buffers), with the leaf
    prefix: each row is 0x00 + its RFC 8785 bytes."""
    start = min(start, table.num_rows)
    cut = min(cut, table.num_rows - start)
    piece = table.slice(start)
    chunked = pa.concat_tables([piece.slice(0, cut), piece.slice(cut)])
    want = [b"\x00" + rfc8785.dumps(to_json_record(r)) for r in piece.to_pylist()]
    assert canonical_json(chunked, prefix=b"\x00").to_pylist() == want


def test_escapes_found_in_any_chunk_and_row():
    rows = ["plain", 'a"b', "c\\d", "e\nf", "中文", "\x1f", ""] * 3
    arr = pa.chunked_array([pa.array(rows[:5]), pa.array(rows[5:]).slice(1)])
    table = pa.table({"s": arr})
    assert canonical_json(table).to_pylist() == [rfc8785.dumps({"s": r}) for r in rows[:5] + rows[6:]]


def test_all_null_columns_and_prefix():
    table = pa.table({"a": pa.array([None, None], pa.string()), "b": [1, 2],
                      "c": pa.array([None, None], pa.date32())})
    assert canonical_json(table, prefix=b"\x00").to_pylist() == \
        [b'\x00{"a":null,"b":1,"c":null}', b'\x00{"a":null,"b":2,"c":null}']
    only_nulls = pa.table({"a": pa.array([None], pa.string())})
    assert canonical_json(only_nulls).to_pylist() == [b'{"a":null}']
    with pytest.raises(ValueError, match="float"):     # an all-null float column is still refused
        canonical_json(pa.table({"f": pa.array([None], pa.float64())}))
