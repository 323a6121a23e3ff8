"""Normalised match keys and date parsing, vectorised over Arrow arrays.

The original text is kept in the record; these keys are only for matching and checks.
"""
from __future__ import annotations

import calendar
import functools
import re
import unicodedata
from typing import NamedTuple

import numpy as np
import opencc
import pyarrow as pa
import pyarrow.compute as pc

from base.errors import DataError

# Whitespace (what str.isspace() accepts) plus zero-width characters.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
              + "\u2028\u2029\u202f\u205f\u3000")
ZERO_WIDTH = "\u180e\u200b\u200c\u200d\u2060\ufeff"
_INVISIBLE = WHITESPACE + ZERO_WIDTH
_RE2_INVISIBLE = "[" + "".join(f"\\x{{{ord(c):04X}}}" for c in _INVISIBLE) + "]+"
_PY_INVISIBLE = re.compile("[" + re.escape(_INVISIBLE) + "]+")

OPEN_ENDED = ("长期", "长期有效", "永久", "无固定期限", "長期", "長期有效", "無固定期限")
# One pattern for RE2 (Arrow) and Python re; applied after NFKC and removal of whitespace.
DATE_PATTERN = (r"^(?P<y>\d{4})(?:(?P<m1>\d{2})(?P<d1>\d{2})"
                r"|-(?P<m2>\d{1,2})-(?P<d2>\d{1,2})"
                r"|/(?P<m3>\d{1,2})/(?P<d3>\d{1,2})"
                r"|\.(?P<m4>\d{1,2})\.(?P<d4>\d{1,2})"
                r"|年(?P<m5>\d{1,2})月(?P<d5>\d{1,2})日?)"
                r"(?:T?\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")  # a time of day is ignored
_PY_DATE = re.compile(DATE_PATTERN, re.ASCII)
# Dates in Chinese numerals, an ordinary form in older registers (二〇一八年三月九日, 二零一八年
# 十二月三十一日, 廿 for 二十): rewritten to the 年月日 form above, value by value (cn2an).
_CN_NUMERAL = "[〇零一二三四五六七八九十廿卅]"       # RE2 (Arrow) and Python re alike
_PY_CN_DATE = re.compile("^([0-9〇零一二三四五六七八九]{4})年([〇零一二三四五六七八九十]{1,3})月"
                         "([〇零一二三四五六七八九十廿卅]{1,3})日?$")
FORMS = "20200102, 2020-01-02, 2020/1/2, 2020年1月2日, 二〇二〇年一月二日"
_OPENCC_ROWS = 1_000_000  # values per OpenCC call (keeps the joined text well under 2 GiB)


class DateParse(NamedTuple):
    dates: pa.Date32Array
    open_ended: pa.BooleanArray
    invalid: pa.BooleanArray


def as_string_array(arr) -> pa.Array:
    """Any string-like input (list, Array, ChunkedArray) as one pa.string() array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    if not isinstance(arr, pa.Array):
        arr = pa.array(arr, pa.string())
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


# UTF-8 lead bytes after which NFKC or the removal of invisible characters may change a
# value. ASCII and U+4000-U+9FFF (CJK ideographs, lead bytes E4-E9) are NFKC-stable and
# compose with nothing, so a value of only those (the bulk of names, codes and dates) is
# left alone and the costly kernels run only on the rest.
_MAY_CHANGE = np.zeros(256, bool)
_MAY_CHANGE[0xC0:0xE4] = _MAY_CHANGE[0xEA:] = True
_MAY_CHANGE[[c.encode()[0] for c in _INVISIBLE]] = True


def _rows_with_bytes(arr: pa.StringArray, table: np.ndarray) -> np.ndarray:
    """Boolean per value: does it hold a byte marked in `table` (256 booleans)?"""
    offsets = np.frombuffer(arr.buffers()[1], np.int32, len(arr) + 1, arr.offset * 4)
    rows = np.zeros(len(arr), bool)
    if arr.buffers()[2] is None or offsets[-1] == offsets[0]:
        return rows
    data = np.frombuffer(arr.buffers()[2], np.uint8, offsets[-1] - offsets[0], offsets[0])
    at = np.flatnonzero(np.take(table, data)) + offsets[0]
    rows[np.searchsorted(offsets, at, side="right") - 1] = True
    return rows


def _visible_nfkc(arr: pa.StringArray) -> pa.StringArray:
    return pc.replace_substring_regex(pc.utf8_normalize(arr, "NFKC"), _RE2_INVISIBLE, "")


def nfkc_visible(arr) -> pa.StringArray:
    """NFKC without whitespace or zero-width characters, computed only where it can change a value."""
    arr = as_string_array(arr)
    some = _rows_with_bytes(arr, _MAY_CHANGE)
    count = int(some.sum())
    if count == 0:
        return arr
    if count > len(arr) // 4:
        return _visible_nfkc(arr)
    mask = pa.array(some)
    return pc.replace_with_mask(arr, mask, _visible_nfkc(arr.filter(mask)))


def code_key(arr) -> pa.StringArray:
    """Key for codes: NFKC, no whitespace or zero-width characters, upper case."""
    arr = as_string_array(arr)
    return pc.utf8_upper(nfkc_visible(arr))


def code_key_scalar(text: str | None) -> str | None:
    if text is None:
        return None
    return _PY_INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).upper()


@functools.lru_cache(maxsize=4)
def _converter(config: str):
    return opencc.OpenCC(config)


def opencc_convert(arr, config: str = "t2s") -> pa.StringArray:
    """OpenCC over a whole array in one call: join on "\\n", convert, split back.

    Values must not contain "\\n" (callers remove whitespace first). Null stays null.
    """
    arr = as_string_array(arr)
    if len(arr) > _OPENCC_ROWS:
        return pa.concat_arrays([opencc_convert(arr.slice(i, _OPENCC_ROWS), config)
                                 for i in range(0, len(arr), _OPENCC_ROWS)])
    if len(arr) == 0:
        return arr
    filled = pc.fill_null(arr, "")
    lists = pa.ListArray.from_arrays(pa.array([0, len(filled)], pa.int32()), filled)
    joined = pc.binary_join(lists, "\n")[0].as_py()
    parts = pc.split_pattern(pa.array([_converter(config).convert(joined)]), "\n").flatten()
    if len(parts) != len(arr):
        raise DataError(f"OpenCC {config} returned {len(parts)} values for {len(arr)}: "
                        "a value contains a newline; remove whitespace before converting")
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.string()), parts)


def name_key(arr) -> pa.StringArray:
    """Key for names: NFKC, no whitespace or zero-width characters, simplified characters."""
    arr = as_string_array(arr)
    return opencc_convert(nfkc_visible(arr), "t2s")


def name_key_scalar(text: str | None) -> str | None:
    return None if text is None else name_key([text])[0].as_py()


# "Blank", defined once for every required field: null, empty or only whitespace and zero-width
# characters; a null marker that databases and spreadsheets export (compared after NFKC,
# whitespace removal and lower-casing); or text with no letter or digit at all (CJK ideographs
# are letters).
NULL_MARKERS = ("null", "none", "nil", "nan", "nat", "na", "n/a", "#n/a", "<na>", "(null)", "\\n",
                "#null!", "undefined", "-", "--", "—", "/", "无", "無", "空", "暂无", "暫無", "不详",
                "不詳", "未知")
_LETTER_OR_DIGIT = r"[\p{L}\p{N}]"


def _not_in_any_marker() -> str:
    """RE2 class of NFKC-stable letters and digits no null marker holds: a value with one of
    them is not blank (most names and codes are answered by this one cheap match)."""
    used = set("".join(NULL_MARKERS))
    ascii_ = [c for c in "0123456789abcdefghijklmnopqrstuvwxyz" if c not in used]
    ascii_ += [c.upper() for c in ascii_ if c.isalpha()]
    cjk, start = [], 0x4E00
    for cut in sorted(ord(c) for c in used if 0x4E00 <= ord(c) <= 0x9FFF) + [0xA000]:
        if cut > start:
            cjk.append(f"\\x{{{start:04X}}}-\\x{{{cut - 1:04X}}}")
        start = cut + 1
    return "[" + "".join(ascii_) + "".join(cjk) + "]"


_SURELY_NOT_BLANK = _not_in_any_marker()


def is_blank(arr) -> pa.BooleanArray:
    """Per value: is it blank (see NULL_MARKERS above)? Null is blank. Normalises only the
    values that hold no letter or digit outside the markers' (a handful)."""
    arr = as_string_array(arr)
    sure = pc.fill_null(pc.match_substring_regex(arr, _SURELY_NOT_BLANK), False).to_numpy(zero_copy_only=False)
    out = ~sure
    rest = np.flatnonzero(out)
    if len(rest):
        key = pc.utf8_lower(nfkc_visible(arr.take(pa.array(rest))))
        blank = pc.or_(pc.is_in(key, value_set=pa.array(NULL_MARKERS)),
                       pc.invert(pc.match_substring_regex(key, _LETTER_OR_DIGIT)))
        out[rest] = pc.fill_null(blank, True).to_numpy(zero_copy_only=False)
    return pa.array(out)


def clean_text(arr) -> pa.StringArray:
    """Trim whitespace and zero-width characters at both ends; blank becomes null."""
    out = pc.utf8_trim(as_string_array(arr), _INVISIBLE)
    return pc.if_else(pc.equal(out, ""), pa.scalar(None, pa.string()), out)


def ymd_days(y, m, d) -> tuple[np.ndarray, np.ndarray]:
    """(is a real date, days since 1970-01-01) for integer arrays of year, month, day."""
    y, m, d = (np.asarray(v, np.int64) for v in (y, m, d))
    ok = (y >= 1) & (y <= 9999) & (m >= 1) & (m <= 12) & (d >= 1)
    months = ((np.where(ok, y, 1970) - 1970) * 12 + np.where(ok, m, 1) - 1).astype("datetime64[M]")
    first = months.astype("datetime64[D]")
    ok &= d <= ((months + 1).astype("datetime64[D]") - first).astype(np.int64)
    return ok, np.where(ok, first.astype(np.int64) + d - 1, 0)


def days_to_date32(days: np.ndarray, ok: np.ndarray) -> pa.Date32Array:
    return pa.array(days.astype("datetime64[D]"), pa.date32(), mask=~ok)


def _to_int(arr: pa.Array) -> np.ndarray:
    arr = pc.replace_substring_regex(pc.fill_null(arr, ""), "^$", "0")
    return pc.cast(arr, pa.int64()).to_numpy()


_SEPARATORS = ("/", ".", "年", "月")   # each becomes "-" (literal replacements: cheaper than a regex)
_TIME = r"T?\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$"
_YMD = r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"


def _int_field(parts, name: str) -> np.ndarray:
    return pc.fill_null(pc.cast(pc.struct_field(parts, name), pa.int64()), 0).to_numpy()


def chinese_date(text: str) -> str | None:
    """'二〇一八年三月九日' -> '2018年3月9日' (the calendar is checked later); None if `text`
    (NFKC, no whitespace) is not a date written in Chinese numerals."""
    m = _PY_CN_DATE.match(text)
    if m is None:
        return None
    import cn2an  # lazy: 0.2 s to import, only for dates in Chinese numerals

    y, mo, d = m.groups()
    try:
        year = y if y.isascii() else cn2an.cn2an(y, "direct")       # digit by digit
        month, day = (cn2an.cn2an(p.replace("廿", "二十").replace("卅", "三十"), "normal")
                      for p in (mo, d))
    except ValueError:            # 十十 and the like: no number
        return None
    return f"{year}年{month}月{day}日" if str(year).isdigit() else None


def _with_chinese_dates(s: pa.StringArray) -> pa.StringArray:
    """Values written in Chinese numerals rewritten to the 年月日 form (the rest untouched)."""
    cn = pc.fill_null(pc.match_substring_regex(s, _CN_NUMERAL), False)
    if not pc.any(cn).as_py():
        return s
    texts = s.filter(cn).to_pylist()
    return pc.replace_with_mask(s, cn, pa.array([chinese_date(t) or t for t in texts], pa.string()))


def parse_dates(arr) -> DateParse:
    """Parse the date forms silos use (FORMS); "长期" and the like are open-ended.

    The strict form check is one regex match (no captures: cheap); the parts are then read
    from a separator-unified copy. Arrow's strptime rolls 2020-02-30 over to 2020-03-01
    (measured with pyarrow 26), so the calendar check is done in numpy.
    """
    arr = as_string_array(arr)
    s = nfkc_visible(arr)
    blank = pc.fill_null(pc.equal(s, ""), True)
    open_ended = pc.fill_null(pc.is_in(s, pa.array(OPEN_ENDED)), False)
    s = _with_chinese_dates(s)
    matched = pc.fill_null(pc.match_substring_regex(s, DATE_PATTERN), False).to_numpy(zero_copy_only=False)
    timed = pc.any(pc.match_substring(s, ":")).as_py()            # a time needs a colon
    u = pc.replace_substring_regex(s, _TIME, "") if timed else s
    u = pc.replace_substring_regex(u, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    for sep in _SEPARATORS:
        u = pc.replace_substring(u, sep, "-")
    u = pc.replace_substring(u, "日", "")
    parts = pc.extract_regex(u, _YMD)
    ok, days = ymd_days(_int_field(parts, "y"), _int_field(parts, "m"), _int_field(parts, "d"))
    ok &= matched
    invalid = pc.and_not(pc.invert(pa.array(ok)), pc.or_(blank, open_ended))
    return DateParse(days_to_date32(days, ok), open_ended, invalid)


def date_problem(text: str | None) -> str | None:
    """Why `text` is not an acceptable date, or None (blank and "长期" are acceptable)."""
    if text is None:
        return None
    s = _PY_INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    if s == "" or s in OPEN_ENDED:
        return None
    m = _PY_DATE.match(chinese_date(s) or s)
    if m is None:
        return f"{text!r} is not a date; expected a form like {FORMS}, or 长期 for open-ended"
    g = m.groupdict()
    y = int(g["y"])
    mo = int(next(g[f"m{i}"] for i in range(1, 6) if g[f"m{i}"]))
    d = int(next(g[f"d{i}"] for i in range(1, 6) if g[f"d{i}"]))
    if y < 1:
        return f"{text!r}: year {y:04d} does not exist"
    if not 1 <= mo <= 12:
        return f"{text!r}: month {mo} does not exist"
    days_in_month = calendar.monthrange(y, mo)[1]
    if not 1 <= d <= days_in_month:
        return f"{text!r}: day {d} does not exist ({y}-{mo:02d} has {days_in_month} days)"
    return None
