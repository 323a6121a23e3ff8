"""Licence identifiers in the structure of GB/T 36904, derived where a silo has none.

    1.2.156.3005.2.{type code}.{issuer code}.{serial}.{version}.{check}

- type code: the certificate type's `type_code`.
- issuer code: the issuing body's code (normalised, letters and digits only); "0" if unknown.
- serial: the licence number (as conforming normalised it: schemas.normalize.code_key) hashed
  with pandas' SipHash-2-4 (`hash_array`, fixed key) and written as 13 base-36 characters.
  Same type, issuer and number: same identifier, run after run; the number itself (which may
  hold Chinese text) never has to fit the form.
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
from schemas.normalize import as_string_array

PREFIX = "1.2.156.3005.2"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VERSION = "1"
HASH_KEY = "0123456789123456"   # pandas' default SipHash key, pinned: identifiers must not move
SERIAL_WIDTH = 13               # 36**13 > 2**64
_PAD = 36                       # value of left padding: leaves the state unchanged
_VALUES = np.full(256, 255, np.uint8)
_VALUES[np.frombuffer(ALPHABET.encode(), np.uint8)] = np.arange(36)
_VALUES[ord(" ")] = _PAD
_CHARS = np.frombuffer(ALPHABET.encode(), np.uint8)
_STATES = np.arange(36)
# ISO 7064 hybrid MOD 37,36 as a table: next state = _STEP[state, value]; padding keeps state
_STEP = np.empty((36, 37), np.uint8)
_STEP[:, :36] = ((np.where(_STATES == 0, 36, _STATES) * 2) % 37)[:, None] + np.arange(36)
_STEP[:, :36] %= 36
_STEP[:, _PAD] = _STATES
_START = 18                     # M/2


def check_char(body: str) -> str:
    """The MOD 37,36 check character of `body` (dots ignored)."""
    return mod_37_36.calc_check_digit(body.replace(".", ""))


def _run(state: np.ndarray, values: np.ndarray) -> np.ndarray:
    """States after reading each row of `values` (alphabet values, _PAD for padding)."""
    for col in np.asfortranarray(values).T:      # contiguous columns
        state = _STEP[state, col]
    return state


def _last(state: np.ndarray) -> np.ndarray:
    """The check character's value for each final state."""
    return (1 - (np.where(state == 0, 36, state).astype(np.int64) * 2) % 37) % 36


def _states(bodies: pa.Array, start: int) -> np.ndarray:
    """State after each upper-case alphanumeric body (dots ignored), from state `start`."""
    arr = pc.replace_substring(as_string_array(bodies), ".", "")
    width = max(1, int(pc.max(pc.binary_length(arr)).as_py() or 1))
    _, mat = fixed_bytes(pc.utf8_lpad(arr, width, " "), width)   # right-aligned, ' ' = padding
    values = _VALUES[mat]
    if (values == 255).any():
        raise ValueError("licence identifier bodies must be 0-9 A-Z and dots")
    return _run(np.full(len(arr), start, np.uint8), values)


def check_chars(bodies, start: int = _START) -> pa.StringArray:
    """Vectorised check_char over upper-case alphanumeric bodies (dots ignored).

    `start` is the state after a common prefix (see `_state`), so the prefix is not re-read.
    """
    return strings_from_bytes(_CHARS[_last(_states(as_string_array(bodies), start))][:, None])


def _state(prefix: str) -> int:
    state = _START
    for ch in prefix.replace(".", ""):
        state = int(_STEP[state, ALPHABET.index(ch)])
    return state


def _serial_digits(keys: pa.Array) -> np.ndarray:
    """n x 13 base-36 digit values of the SipHash of each key (most significant first)."""
    import pandas as pd  # lazy: 0.3 s to import, only to hash serials

    h = pd.util.hash_array(pc.fill_null(keys, "").to_numpy(zero_copy_only=False).astype(object),
                           encoding="utf8", hash_key=HASH_KEY, categorize=False).astype(np.uint64)
    digits = np.empty((len(h), SERIAL_WIDTH), np.uint8)
    for i in range(SERIAL_WIDTH - 1, -1, -1):
        digits[:, i] = h % np.uint64(36)
        h //= np.uint64(36)
    return digits


def serials(keys) -> pa.StringArray:
    """13 base-36 characters of the SipHash of each (normalised) number; null stays null."""
    keys = as_string_array(keys)
    out = strings_from_bytes(_CHARS[_serial_digits(keys)])
    return pc.if_else(pc.is_null(keys), pa.scalar(None, pa.string()), out)


def issuer_part(issuer_codes) -> pa.StringArray:
    part = pc.replace_substring_regex(pc.fill_null(as_string_array(issuer_codes), ""), "[^0-9A-Z]", "")
    return pc.if_else(pc.equal(part, ""), "0", part)


def derive(type_code: str, issuer_codes, licence_numbers) -> pa.StringArray:
    """GB/T 36904-shaped identifiers for whole arrays; null where the number is missing.

    Takes codes as conforming leaves them (code_key: NFKC, no spaces, upper case). The head
    and issuer part (few distinct issuers) are read once per issuer; each row then reads only
    its serial and version.
    """
    numbers = as_string_array(licence_numbers)
    issuers = pc.dictionary_encode(as_string_array(issuer_codes), null_encoding="encode")
    head = f"{PREFIX}.{type_code}."
    part = issuer_part(issuers.dictionary)
    prefixes = pc.binary_join_element_wise(head, part, ".", "")     # per distinct issuer
    rows = issuers.indices.to_numpy()
    digits = _serial_digits(numbers)
    state = _run(_states(part, _state(head))[rows], digits)
    state = _STEP[state, _VALUES[ord(VERSION)]]
    n = len(numbers)
    tail = np.empty((n, SERIAL_WIDTH + 4), np.uint8)       # serial . version . check
    tail[:, :SERIAL_WIDTH] = _CHARS[digits]
    tail[:, SERIAL_WIDTH:SERIAL_WIDTH + 3] = np.frombuffer(f".{VERSION}.".encode(), np.uint8)
    tail[:, -1] = _CHARS[_last(state)]
    tails = pc.if_else(pc.is_null(numbers), pa.scalar(None, pa.string()), strings_from_bytes(tail))
    return pc.binary_join_element_wise(prefixes.take(issuers.indices), tails, "")


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
