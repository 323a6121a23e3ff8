"""Holder identifiers: USCC (GB 32100) and resident identity number (GB 11643).

Vectorised checks take normalised input (see normalize.code_key); null is never valid.

python-stdnum 2.2 falls short in two places, so only its check-character arithmetic is used:
- cn.uscc.validate() demands digits in positions 1-8, so it rejects valid codes led by a
  registration-authority letter (N..., Y...); its calc_check_digit() is right for them.
- cn.ric.validate() checks the region against a historical database (rejected 64 % of
  Faker's valid numbers) and raises KeyError on region 620201; a region is not a rule here.
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from stdnum.cn import ric as _stdnum_ric
from stdnum.cn import uscc as _stdnum_uscc

from base import clock
from base.errors import DataError
from schemas.normalize import as_string_array, ymd_days

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], np.int64)
RIC_WEIGHTS = np.array([2 ** (17 - i) % 11 for i in range(17)], np.int64)
CODE_TYPE_USCC, CODE_TYPE_RIC = "001", "111"  # GB/T 36903 holder code types

USCC_VALUES = np.full(256, -1, np.int64)  # byte -> alphabet value, -1 if not allowed
USCC_VALUES[np.frombuffer(USCC_ALPHABET.encode(), np.uint8)] = np.arange(31)
_USCC_CHARS = np.frombuffer(USCC_ALPHABET.encode(), np.uint8)
_MIN_BIRTH = (date(1900, 1, 1) - date(1970, 1, 1)).days


def fixed_bytes(arr, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(has exactly `width` bytes, uint8 matrix n x width; zero rows elsewhere)."""
    arr = as_string_array(arr)
    ok = pc.fill_null(pc.equal(pc.binary_length(arr), width), False).to_numpy(zero_copy_only=False)
    mat = np.zeros((len(arr), width), np.uint8)
    sel = arr.filter(pa.array(ok))
    if len(sel):  # selected values are contiguous in the filtered data buffer
        start = np.frombuffer(sel.buffers()[1], np.int32, 1, sel.offset * 4)[0]
        mat[ok] = np.frombuffer(sel.buffers()[2], np.uint8, len(sel) * width, start).reshape(-1, width)
    return ok, mat


def strings_from_bytes(mat: np.ndarray) -> pa.StringArray:
    """A string array from an n x width ASCII byte matrix (the inverse of fixed_bytes)."""
    n, width = mat.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(mat, np.uint8)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


# --- USCC -------------------------------------------------------------------------------

def uscc_check_values(values17: np.ndarray) -> np.ndarray:
    """Check-character values (0..30) for an n x 17 matrix of alphabet values."""
    return (31 - (values17 @ USCC_WEIGHTS) % 31) % 31


def uscc_check_char(first17: str) -> str:
    if len(first17) != 17 or any(c not in USCC_ALPHABET for c in first17):
        raise DataError(f"a USCC check character needs 17 characters from {USCC_ALPHABET}, "
                        f"got {first17!r}", rule="uscc")
    return _stdnum_uscc.calc_check_digit(first17)


def uscc_problem(code: str | None) -> str | None:
    """Why `code` is not a valid USCC, or None."""
    if code is None:
        return "is missing"
    if len(code) != 18:
        return f"must be 18 characters, got {len(code)}"
    for i, c in enumerate(code, 1):
        if c not in USCC_ALPHABET:
            hint = " (upper-case it: normalise with code_key)" if c.upper() in USCC_ALPHABET else ""
            return f"character {c!r} at position {i} is not allowed in a USCC{hint}"
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        return f"check character should be {expected!r}, found {code[17]!r}"
    return None


def _uscc_mask(arr, fixed=None) -> tuple[np.ndarray, np.ndarray]:
    """(every character in the alphabet, check character right)."""
    ok, mat = fixed if fixed is not None else fixed_bytes(arr, 18)
    values = USCC_VALUES[mat]
    shape = ok & (values >= 0).all(axis=1)
    return shape, shape & (uscc_check_values(values[:, :17]) == values[:, 17])


def uscc_valid(arr) -> pa.BooleanArray:
    return pa.array(_uscc_mask(arr)[1])


def uscc_check_chars(first17) -> pa.StringArray:
    """Vectorised uscc_check_char: null where a value is not 17 alphabet characters."""
    ok, mat = fixed_bytes(first17, 17)
    values = USCC_VALUES[mat]
    ok &= (values >= 0).all(axis=1)
    chars = strings_from_bytes(_USCC_CHARS[uscc_check_values(values)][:, None])
    return pc.if_else(pa.array(ok), chars, pa.scalar(None, pa.string()))


# --- resident identity number -------------------------------------------------------------

def ric_check_char(first17: str) -> str:
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise DataError(f"a resident ID check character needs 17 digits, got {first17!r}",
                        rule="resident_id")
    return _stdnum_ric.calc_check_digit(first17 + "0")  # stdnum drops the last character


def _today_days(today: date | None) -> int:
    return ((today or clock.today()) - date(1970, 1, 1)).days


def ric_problem(code: str | None, today: date | None = None) -> str | None:
    """Why `code` is not a valid resident identity number, or None. The region is not checked."""
    if code is None:
        return "is missing"
    if len(code) != 18:
        return f"must be 18 characters, got {len(code)}"
    for i, c in enumerate(code[:17], 1):
        if c not in "0123456789":
            return f"character {c!r} at position {i} must be a digit"
    if code[17] not in "0123456789X":
        hint = " (upper-case it: normalise with code_key)" if code[17] == "x" else ""
        return f"check character {code[17]!r} at position 18 must be a digit or X{hint}"
    expected = ric_check_char(code[:17])
    if code[17] != expected:
        return f"check character should be {expected!r}, found {code[17]!r}"
    ok, days = ymd_days([int(code[6:10])], [int(code[10:12])], [int(code[12:14])])
    if not ok[0]:
        return f"birth date {code[6:14]} at positions 7-14 is not a real date"
    if days[0] < _MIN_BIRTH:
        return f"birth date {code[6:14]} is before 1900"
    if days[0] > _today_days(today):
        return f"birth date {code[6:14]} is in the future"
    return None


def ric_region_note(code: str) -> str | None:
    """A warning (never a rule) when python-stdnum does not know the region for the birth year."""
    try:
        _stdnum_ric.get_birth_place(code)
    except Exception:  # stdnum raises KeyError as well as InvalidComponent here
        return f"region {code[:6]} is not in python-stdnum's table for that birth year"
    return None


def _ric_mask(arr, today: date | None, fixed=None) -> tuple[np.ndarray, np.ndarray]:
    """(17 digits + digit or X, check character right and birth date real and plausible).

    `fixed`: fixed_bytes(arr, 18) when the caller has it already."""
    ok, mat = fixed if fixed is not None else fixed_bytes(arr, 18)
    digits = mat.astype(np.int64) - 48
    last = np.where(mat[:, 17] == ord("X"), 10, digits[:, 17])
    shape = ok & ((digits[:, :17] >= 0) & (digits[:, :17] <= 9)).all(axis=1) & (last >= 0) & (last <= 10)
    rows = np.flatnonzero(shape)                 # the rest cannot be valid: not read further
    digits, last = digits[rows], last[rows]
    valid = (12 - (digits[:, :17] @ RIC_WEIGHTS) % 11) % 11 == last
    y = digits[:, 6:10] @ np.array([1000, 100, 10, 1])
    real, days = ymd_days(y, digits[:, 10:12] @ [10, 1], digits[:, 12:14] @ [10, 1])
    out = np.zeros(len(shape), bool)
    out[rows] = valid & real & (days >= _MIN_BIRTH) & (days <= _today_days(today))
    return shape, out


def ric_valid(arr, today: date | None = None) -> pa.BooleanArray:
    return pa.array(_ric_mask(arr, today)[1])


def holder_code_type(arr) -> pa.StringArray:
    """"111" resident ID or "001" USCC by shape; a passing check decides when both shapes fit."""
    fixed = fixed_bytes(arr, 18)
    ric_shape, ric_ok = _ric_mask(arr, None, fixed)
    uscc_shape, uscc_ok = _uscc_mask(arr, fixed)
    is_ric = ric_ok | (ric_shape & ~uscc_ok)
    out = np.where(is_ric, 1, np.where(uscc_shape, 2, 0))
    return pa.array([None, CODE_TYPE_RIC, CODE_TYPE_USCC], pa.string()).take(pa.array(out))
