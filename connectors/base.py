"""A connector is one small class with one required method: batches()."""
from __future__ import annotations

from typing import Iterator, Protocol

import pyarrow as pa


class Connector(Protocol):
    source_id: str

    def columns(self) -> list[str]:
        """The silo's column names, as the silo spells them."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every row of the silo, as Arrow record batches of strings (the original text)."""
