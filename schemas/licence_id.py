"""Licence identifiers in the structure of GB/T 36904, derived where a silo has none.

    1.2.156.3005.2.{type code}.{issuer code}.{serial}.{version}.{check}

- type code: the certificate type's `type_code`.
- issuer code: the issuing body's code (normalised, letters and digits only); "0" if unknown.
- serial: the licence number's code key hashed with pandas' SipHash-2-4 (`hash_array`, fixed
  key) and written as 13 base-36 characters. Same type, issuer and number: same identifier,
  run after run; the number itself (which may hold Chinese text) never has to fit the form.
- version: "1" (the licence's own version; a silo that tracks versions maps `licence_id`).
- check: ISO 7064 MOD 37,36 (hybrid system, alphabet 0-9A-Z) over every character of the
  identifier before it, dots removed. python-stdnum's `iso7064.mod_37_36` is the scalar
  reference; `check_chars` is the same recurrence over a numpy matrix.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from stdnum.iso7064 import mod_37_36

from schemas.identifiers import fixed_bytes, strings_from_bytes
from schemas.normalize import as_string_array, code_key

PREFIX = "1.2.156.3005.2"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VERSION = "1"
HASH_KEY = "0123456789123456"   # pandas' default SipHash key, pinned: identifiers must not move
SERIAL_WIDTH = 13               # 36**13 > 2**64
_VALUES = np.full(256, -1, np.int64)
_VALUES[np.frombuffer(ALPHABET.encode(), np.uint8)] = np.arange(36)
_CHARS = np.frombuffer(ALPHABET.encode(), np.uint8)


def check_char(body: str) -> str:
    """The MOD 37,36 check character of `body` (dots ignored)."""
    return mod_37_36.calc_check_digit(body.replace(".", ""))


def check_chars(bodies) -> pa.StringArray:
    """Vectorised check_char over an array of upper-case alphanumeric bodies (dots ignored)."""
    arr = pc.replace_substring(as_string_array(bodies), ".", "")
    width = max(1, int(pc.max(pc.binary_length(arr)).as_py() or 1))
    _, mat = fixed_bytes(pc.utf8_lpad(arr, width, " "), width)   # right-aligned, ' ' = padding
    values = _VALUES[mat]
    if ((values < 0) & (mat != ord(" "))).any():
        raise ValueError("licence identifier bodies must be 0-9 A-Z and dots")
    check = np.full(len(arr), 18, np.int64)          # ISO 7064 hybrid: start at M/2
    for col in values.T:
        step = ((np.where(check == 0, 36, check) * 2) % 37 + col) % 36
        check = np.where(col >= 0, step, check)
    last = (1 - (np.where(check == 0, 36, check) * 2) % 37) % 36
    return strings_from_bytes(_CHARS[last][:, None])


def serials(licence_numbers) -> pa.StringArray:
    """13 base-36 characters of the SipHash of each number's code key; null stays null."""
    import pandas as pd

    keys = code_key(licence_numbers)
    h = pd.util.hash_array(pc.fill_null(keys, "").to_numpy(zero_copy_only=False).astype(object),
                           encoding="utf8", hash_key=HASH_KEY, categorize=False).astype(np.uint64)
    powers = np.uint64(36) ** np.arange(SERIAL_WIDTH - 1, -1, -1, dtype=np.uint64)
    digits = (h[:, None] // powers) % np.uint64(36)
    out = strings_from_bytes(_CHARS[digits.astype(np.int64)])
    return pc.if_else(pc.is_null(keys), pa.scalar(None, pa.string()), out)


def issuer_part(issuer_codes) -> pa.StringArray:
    part = pc.replace_substring_regex(pc.fill_null(code_key(issuer_codes), ""), "[^0-9A-Z]", "")
    return pc.if_else(pc.equal(part, ""), "0", part)


def derive(type_code: str, issuer_codes, licence_numbers) -> pa.StringArray:
    """GB/T 36904-shaped identifiers for whole arrays; null where the number is missing."""
    serial = serials(licence_numbers)
    n = len(serial)
    body = pc.binary_join_element_wise(pa.array([PREFIX] * n), pa.array([type_code] * n),
                                       issuer_part(issuer_codes), serial, pa.array([VERSION] * n), ".")
    return pc.binary_join_element_wise(body, check_chars(pc.fill_null(body, "0")), ".")


def problem(identifier: str | None) -> str | None:
    """Why `identifier` is not a well-formed GB/T 36904-style identifier, or None."""
    if identifier is None:
        return "is missing"
    if not identifier.startswith(PREFIX + "."):
        return f"must start with {PREFIX}."
    parts = identifier[len(PREFIX) + 1:].split(".")
    if len(parts) != 5 or not all(parts):
        return "must have five parts after the prefix: type code, issuer, serial, version, check"
    body, check = identifier.rsplit(".", 1)
    if any(c not in ALPHABET for c in body.replace(".", "")):
        return "may hold only 0-9, A-Z and dots"
    expected = check_char(body)
    return None if check == expected else f"check character should be {expected!r}, found {check!r}"
