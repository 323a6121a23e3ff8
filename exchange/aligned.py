"""A delta run's extracted rows matched to the source's mirror by position, before hashing.

The mirror (connectors/state.py) is the last published run's extracted rows and the row state
(exchange/row_state.py) holds their hashes in the same order, when both come from the same
pull: extract stamps its hand-off with a token of its own (`PULL`), conform carries it into
the `rows` hand-off and the row state keeps it. A row of this run equal in every column to the
mirror's row at its position then has the state's hash at that position: only the other rows
are hashed. Stamps that differ, other columns or counts: every row is hashed (`open`: None).
A pull whose rows moved (a watermark or file drop merged onto the mirror) just finds fewer
equal rows.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base import staging
from base.storage import Store
from connectors.state import mirror_key
from exchange import row_state
from schemas.conform import ROW

PULL = b"pull"        # extract's hand-off's schema metadata: its token


def token(key: str) -> str:
    """A token of one extract of run `key` (an extract run again gets another)."""
    return f"{key}:{uuid.uuid4().hex}"


def pull_of(schema: pa.Schema) -> str | None:
    raw = (schema.metadata or {}).get(PULL)
    return raw.decode() if raw else None


def mirror_pull(store: Store, source_id: str) -> str | None:
    """The token of the pull the source's mirror is (None: none, or not stamped)."""
    path = store.local_path(mirror_key(store, source_id))
    return pull_of(staging.read_schema(path)) if path is not None and path.exists() else None


class Aligned:
    """The mirror and the row state's hashes, memory-mapped, read by position."""

    def __init__(self, mirror: pa.Table, hashes: pa.ChunkedArray, release):
        self.mirror, self.hashes, self.release = mirror, hashes, release
        self.names = [n for n in mirror.schema.names if n != ROW]

    @classmethod
    def open(cls, store: Store, source_id: str, state: Path, pull: str | None,
             extracted: pa.Schema) -> Aligned | None:
        """`state`: the row state on this machine, stamped `pull`; None unless the source's
        mirror is that pull's, in place on this machine, with this run's columns."""
        key = mirror_key(store, source_id)
        path = store.local_path(key)
        if pull is None or not key.endswith(staging.TRANSIENT_SUFFIX) or path is None or not path.exists():
            return None
        mirror, release = staging.map_table(path)        # the stamps read from the files mapped
        table = staging.read_table(state, ["row_hash"])
        if pull_of(mirror.schema) != pull or json.loads((table.schema.metadata or {}).get(
                b"row_state", b"{}")).get("pull") != pull:
            return None
        hashes = table.column(0)
        if (mirror.num_rows != len(hashes) or hashes.null_count
                or not mirror.schema.remove_metadata().equals(extracted.remove_metadata())):
            return None
        return cls(mirror, hashes, release)

    def same(self, batch: pa.RecordBatch, start: int) -> np.ndarray:
        """Which of `batch`'s rows (the run's rows from position `start`) equal the mirror's
        row at their position in every column (nulls equal nulls)."""
        out = np.zeros(batch.num_rows, bool)
        n = min(batch.num_rows, self.mirror.num_rows - start)
        if n <= 0:
            return out
        there = self.mirror.slice(start, n)
        eq = None
        try:
            for name in self.names:
                a, b = batch.column(name).slice(0, n), _one(there.column(name))
                if _same_bytes(a, b):
                    continue
                if not pa.types.is_string(a.type):     # compared as hashed: -0.0 is not 0.0
                    a, b = row_state._text(a), row_state._text(b)
                e = pc.fill_null(pc.equal(a, b), False)
                if a.null_count or b.null_count:
                    e = pc.or_(e, pc.and_(pc.is_null(a), pc.is_null(b)))
                eq = e if eq is None else pc.and_(eq, e)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):      # a type compare cannot take
            return out
        out[:n] = True if eq is None else eq.to_numpy(zero_copy_only=False)
        return out

    def state_hashes(self, positions: np.ndarray) -> np.ndarray:
        """(len(positions), 16) uint8: the state's hashes at `positions` (ascending)."""
        if not len(positions):
            return np.zeros((0, 16), np.uint8)
        lo = int(positions[0])
        part = self.hashes.slice(lo, int(positions[-1]) - lo + 1).combine_chunks()
        whole = np.frombuffer(part.buffers()[1], np.uint8)[part.offset * 16:(part.offset + len(part)) * 16]
        return whole.reshape(len(part), 16)[positions - lo]


def _one(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _same_bytes(a: pa.Array, b: pa.Array) -> bool:
    """Are two string columns the same values for certain (their nulls, value lengths and
    bytes the same: a memory compare, no kernel per row)? False: maybe not (compared by row)."""
    if (a.type != b.type or not (pa.types.is_string(a.type) or pa.types.is_binary(a.type))
            or a.null_count != b.null_count or len(a) != len(b)):
        return False
    if a.null_count and not pc.is_valid(a).equals(pc.is_valid(b)):
        return False
    ao, bo = (np.frombuffer(x.buffers()[1], np.int32)[x.offset:x.offset + len(x) + 1] for x in (a, b))
    if len(ao) and not np.array_equal(ao - ao[0], bo - bo[0]):
        return False
    da, db = (x.buffers()[2] for x in (a, b))
    if da is None or db is None:
        return da is db or int(ao[-1] - ao[0]) == 0
    return bool(da.slice(int(ao[0]), int(ao[-1] - ao[0])).equals(db.slice(int(bo[0]), int(bo[-1] - bo[0]))))
