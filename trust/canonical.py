"""RFC 8785 (JCS) canonical JSON of one record. Records are flat: strings, integers, dates,
booleans, null (the whole-table form is catalog/signing/canonical.py)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import rfc8785

MAX_SAFE_INT = 2**53 - 1
FLOAT_MSG = "floats are not allowed in records; use integers or decimal strings"


def to_json_value(v: object) -> str | int | bool | None:
    """One value as pyarrow's to_pylist gives it -> a JSON value."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if abs(v) > MAX_SAFE_INT:
            raise ValueError(f"integer {v} is outside ±(2**53-1); store it as a decimal string")
        return v
    if isinstance(v, float):
        raise ValueError(FLOAT_MSG)
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v.isoformat()
    raise ValueError(f"unsupported value type {type(v).__name__} in a record")


def to_json_record(row: Mapping[Any, object]) -> dict[str, str | int | bool | None]:
    return {str(k): to_json_value(v) for k, v in row.items()}


def canonical_bytes(record: Mapping[Any, object]) -> bytes:
    return rfc8785.dumps(to_json_record(record))


def sort_keys(names: Iterable[str]) -> list[str]:
    """RFC 8785 §3.2.3: by UTF-16 code units."""
    return sorted(names, key=lambda k: k.encode("utf-16-be"))
