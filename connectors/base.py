"""A connector is one small class with one required method: batches().

Optional, for incremental pulls: a `watermark` column in its settings, `since` (the committed
watermark, set by connectors.state) and `high_water` (the newest value seen, after a pull).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import pyarrow as pa


class Connector(Protocol):
    source_id: str

    def columns(self) -> list[str]:
        """The silo's column names, as the silo spells them."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every row of the silo, as Arrow record batches of strings (the original text)."""


def string_schema(columns: Iterable[str]) -> pa.Schema:
    return pa.schema([(c, pa.string()) for c in columns])


def batch_from_rows(rows: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    """Rows of str/None (already text) into one record batch."""
    cols = list(zip(*rows)) if rows else [()] * len(schema)
    return pa.RecordBatch.from_arrays([pa.array(c, pa.string()) for c in cols], schema=schema)


def as_text(value) -> str | None:
    """A silo value as text: None stays null, floats that are whole lose '.0' (Excel)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text[:-9] if text.endswith("T00:00:00") else text
    return str(value)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Never let a credential reach a log line or an error message."""
    for s in secrets:
        if s and len(s) >= 3:
            text = text.replace(s, "***")
    return text
