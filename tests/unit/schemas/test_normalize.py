from datetime import date

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base.errors import DataError
from schemas.normalize import (
    clean_text,
    code_key,
    code_key_scalar,
    date_problem,
    name_key,
    name_key_scalar,
    opencc_convert,
    parse_dates,
)

FW = str.maketrans("0123456789", "０１２３４５６７８９")


def test_code_key():
    raw = ["９１３３０１０６ｍａ２７ｘ", " 9133\u30000106\u200bMA\u200c27\u200d\u2060\ufeffx\n", "a\tb", None, ""]
    assert code_key(raw).to_pylist() == ["91330106MA27X", "91330106MA27X", "AB", None, ""]
    assert [code_key_scalar(v) for v in raw] == code_key(raw).to_pylist()


def test_name_key_traditional_and_simplified_agree():
    trad = ["杭州市西湖區 營業執照有限責任公司", "張　三", "龍華區\u200b鐵路街", None]
    simp = ["杭州市西湖区营业执照有限责任公司", "张三", "龙华区铁路街", None]
    assert name_key(trad).to_pylist() == name_key(simp).to_pylist() == simp
    assert name_key_scalar("（有限公司）") == "(有限公司)"  # NFKC makes brackets half-width
    assert name_key(pa.chunked_array([trad[:2], trad[2:]])).to_pylist() == simp
    assert name_key([]).to_pylist() == []


def test_opencc_convert_refuses_newlines_in_values():
    with pytest.raises(DataError):
        opencc_convert(["a\nb", "c"])
    assert opencc_convert(["营业执照"], "s2t").to_pylist() == ["營業執照"]


def test_clean_text_keeps_the_inside():
    raw = ["  杭州 西湖\u3000区 \u200b", "\u3000", " \u200b ", None, "x"]
    assert clean_text(raw).to_pylist() == ["杭州 西湖\u3000区", None, None, None, "x"]


FORMS = ["20200102", "2020-01-02", "2020/1/2", "2020.1.2", "2020年1月2日", "2020年01月02日",
         "2020/01/02", "２０２０年１月２日", " 2020 - 01 - 02 ", "2020\u200b0102", "2020-01-02 08:30:00",
         "2020-1-2"]


def test_parse_dates_every_form():
    got = parse_dates(FORMS)
    assert got.dates.to_pylist() == [date(2020, 1, 2)] * len(FORMS)
    assert not any(got.invalid.to_pylist()) and not any(got.open_ended.to_pylist())
    assert all(date_problem(f) is None for f in FORMS)


def test_parse_dates_open_ended_blank_and_invalid():
    raw = ["长期", "长期有效", "永久", "无固定期限", " 长 期 ", None, "", " \u3000", "2020-02-30", "2020-13-01",
           "abc", "2021-02-29", "20200230", "2020年2月30日", "2020-00-10", "0000-01-01"]
    got = parse_dates(raw)
    assert got.dates.to_pylist() == [None] * len(raw)
    assert got.open_ended.to_pylist() == [True] * 5 + [False] * 11
    assert got.invalid.to_pylist() == [False] * 8 + [True] * 8
    assert parse_dates(["2020-02-29"]).dates.to_pylist() == [date(2020, 2, 29)]


def test_date_problem_reasons():
    assert date_problem("2020-02-30") == "'2020-02-30': day 30 does not exist (2020-02 has 29 days)"
    assert date_problem("2020-13-01") == "'2020-13-01': month 13 does not exist"
    assert "is not a date" in date_problem("abc")
    assert date_problem("长期") is None and date_problem(None) is None and date_problem(" ") is None


@settings(deadline=None)
@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31)), st.sampled_from(range(5)),
       st.booleans())
def test_parse_dates_round_trip(d, form, full_width):
    text = [d.strftime("%Y%m%d"), d.isoformat(), f"{d.year}/{d.month}/{d.day}",
            f"{d.year}.{d.month:02d}.{d.day}", f"{d.year}年{d.month}月{d.day}日"][form]
    if full_width:
        text = text.translate(FW)
    got = parse_dates([text])
    assert got.dates.to_pylist() == [d] and got.invalid.to_pylist() == [False]


@settings(deadline=None)
@given(st.integers(1000, 9999), st.integers(0, 14), st.integers(0, 33))
def test_parse_dates_rejects_impossible_days(y, m, d):
    try:
        expected = date(y, m, d)
    except ValueError:
        expected = None
    got = parse_dates([f"{y}-{m}-{d}"])
    assert got.dates.to_pylist() == [expected]
    assert got.invalid.to_pylist() == [expected is None]
    assert (date_problem(f"{y}-{m}-{d}") is None) == (expected is not None)


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="0123456789-/.年月日长期 ", max_size=12)), max_size=30))
def test_date_problem_agrees_with_parse_dates(texts):
    assert parse_dates(texts).invalid.to_pylist() == [date_problem(t) is not None for t in texts]


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab中國１（） \t\n\u3000\u200b\ufeff\xa0\x85\u2028\u1680"
                                                      "\u180e\u2060é€e\u0301ㄱ\u1100\u1161가㈜ﬁ⑴가\uf900",
                                             max_size=8)), max_size=40), st.integers(0, 3))
def test_nfkc_visible_only_where_needed_changes_nothing(texts, cut):
    import pyarrow.compute as pc

    from schemas.normalize import _RE2_INVISIBLE, nfkc_visible
    arr = pa.array(texts, pa.string())
    arr = arr.slice(cut, max(0, len(arr) - 2 * cut))     # batches are slices of a file's data
    want = pc.replace_substring_regex(pc.utf8_normalize(arr, "NFKC"), _RE2_INVISIBLE, "")
    assert nfkc_visible(arr).equals(want)


def test_ascii_and_cjk_ideographs_are_nfkc_stable():
    import pyarrow.compute as pc
    # what lets nfkc_visible skip values of only these: checked against Arrow's own NFKC
    chars = [chr(c) for c in [*range(0x80), *range(0x4000, 0xA000)]]
    assert pc.utf8_normalize(pa.array(chars), "NFKC").to_pylist() == chars
    pairs = pa.array([a + b for a in "aZ0 中" for b in "\u4e00\u9fa5z9"])
    assert pc.utf8_normalize(pairs, "NFKC").equals(pairs)


CHINESE = {   # dates written in Chinese numerals, as older registers have them
    "二〇一八年三月九日": date(2018, 3, 9),
    "二零一八年三月九日": date(2018, 3, 9),
    "二〇一八年十二月三十一日": date(2018, 12, 31),
    "二〇一八年十月十日": date(2018, 10, 10),
    "二〇一八年十一月二十日": date(2018, 11, 20),
    "二〇〇九年二月廿八日": date(2009, 2, 28),
    "二〇二〇年二月廿九日": date(2020, 2, 29),
    "一九九九年一月一日": date(1999, 1, 1),
    "二〇一八年三月九": date(2018, 3, 9),
    "二〇一八年一〇月〇九日": date(2018, 10, 9),
    " 二〇一八年 三月 九日 ": date(2018, 3, 9),
    "二〇一八年十二月卅一日": date(2018, 12, 31),
    "2018年三月九日": date(2018, 3, 9),
}
NOT_DATES = ["二〇一八年二月三十日", "二〇一九年二月廿九日", "二〇一八年十三月一日", "二〇一八年三月三十二日",
             "二〇一八年〇月一日", "二〇一八年三月〇日", "二〇一八年三月", "二〇一八年", "一八年三月九日",
             "二〇一八年三月九日九", "二〇一八年十十月一日", "三月九日"]


def test_parse_dates_in_chinese_numerals():
    raw = list(CHINESE) + ["2020-01-02"]
    got = parse_dates(raw)
    assert got.dates.to_pylist() == list(CHINESE.values()) + [date(2020, 1, 2)]
    assert not any(got.invalid.to_pylist())
    assert all(date_problem(t) is None for t in CHINESE)


def test_impossible_dates_in_chinese_numerals_are_refused():
    got = parse_dates(NOT_DATES)
    assert got.dates.to_pylist() == [None] * len(NOT_DATES)
    assert got.invalid.to_pylist() == [True] * len(NOT_DATES)
    assert "day 30 does not exist" in date_problem("二〇一八年二月三十日")
    assert all(date_problem(t) for t in NOT_DATES), [t for t in NOT_DATES if not date_problem(t)]


def _blank_by_definition(text: str | None) -> bool:
    """The definition, written plainly: null, a null marker, or no letter or digit."""
    import re
    import unicodedata

    from schemas.normalize import NULL_MARKERS, WHITESPACE, ZERO_WIDTH
    if text is None:
        return True
    key = re.sub("[" + re.escape(WHITESPACE + ZERO_WIDTH) + "]", "", unicodedata.normalize("NFKC", text)).lower()
    return key in NULL_MARKERS or not any(unicodedata.category(c)[0] in "LN" for c in key)


def test_blank_values():
    from schemas.normalize import is_blank

    blank = ["", " ", "\u3000", "\u200b\ufeff", "\t\u00a0\n", "NULL", "null", "None", "N/A", "NA", "n/a",
             "#N/A", "-", "--", "—", "无", "空", "/", "\\N", "nan", "NaN", "ＮＵＬＬ", " n / a ", "***",
             "？？", "（）", "……", "暂无", None]
    kept = ["张三", "无锡市XX公司", "空港物流有限公司", "Dana", "0", "001", "valid", "A", "Ⅻ", "一", "null1",
            "NA-1", "Nan Jing", "9133010", "ｘ", "未知数科技"]
    assert is_blank(blank).to_pylist() == [True] * len(blank)
    assert is_blank(kept).to_pylist() == [False] * len(kept)


MARKERISH = st.sampled_from(["null", "NULL", "Ｎｕｌｌ", "n/a", "N/A", "#N/A", "无", "空", "-", "—", "nan",
                             "None", "undefined", "\\N", "na", "暂无", "不詳", "未知"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=8), MARKERISH,
                          st.builds(lambda a, m, b: a + m + b, st.sampled_from(["", " ", "\u3000", "\u200b"]),
                                    MARKERISH, st.sampled_from(["", " ", "\t", "\ufeff"]))), max_size=30))
def test_is_blank_is_the_definition(values):
    from schemas.normalize import is_blank

    assert is_blank(values).to_pylist() == [_blank_by_definition(v) for v in values]
