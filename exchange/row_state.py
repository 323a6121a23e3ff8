"""Change detection: which of a run's silo rows are as they were when the dataset's current
version was published, so that only the others are conformed, validated and published.

The row state (`mirror/<source>.rows.arrow`, beside the mirror) holds one row per silo row of
the last published pull: a hash of the row's content (`row_hash`, 16 bytes), its conformed
licence number, whether it was accepted and whether its accepted state was withdrawn, and for a
quarantined row none of whose failures is dated, those failures (`reasons`: validate takes them
for the row, unchanged, instead of checking it again). Its
schema metadata names the `fingerprint` of what decides a row's outcome (the registration's
mapping and checks, the suite file, the certificate type, the extracted columns, the code that
conforms and checks: DECIDING, CODE) and the dataset `version` it was published as.

A run is a delta run when the row state's fingerprint and version are the current ones: a row
whose hash was accepted then is carried (its record is the current one); every other row (new,
changed, quarantined before) is conformed and validated (a quarantined one with known `reasons`
keeps them: validate does not check it again). A carried row whose
licence number another checked row has, or that a row gone or changed had, is checked too, so
uniqueness and withdrawals are decided as a full run decides them. Otherwise the run is full
(and still writes the row state for the next). The state is stamped with the version only
after publish (`commit`): a stale one does not match the current version, so it can only cost
work.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base import staging
from base.storage import Store
from catalog.signing.digests import sha256_many
from quality import suites
from quality.validate import incremental_blocker
from schemas.conform import ROW

CODE = 1                      # bump when conform or validate decide rows differently
ENV = "EXCHANGE_CHANGE_DETECTION"      # "0": every run full
HASH = pa.binary(16)
SCHEMA = pa.schema([("row_hash", HASH), ("licence_number", pa.string()), ("accepted", pa.bool_()),
                    ("withdrawn", pa.bool_()), ("reasons", pa.list_(pa.string()))])
# conform's hand-off `rows`: every extracted row in silo order; carried rows with their state
ROWS = pa.schema([("row_hash", HASH), ("carried", pa.bool_()), ("licence_number", pa.string()),
                  ("withdrawn", pa.bool_())])
WITHDRAWN = "withdrawn"


def state_key(source_id: str) -> str:
    return f"mirror/{source_id}.rows{staging.TRANSIENT_SUFFIX}"


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


# --- hashing ------------------------------------------------------------------------------
def _text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type):
        return column
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        encode = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True).encode
        return pa.array([None if v is None else encode(v) for v in column.to_pylist()], pa.string())


def row_hashes(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """(n, 16) uint8: SHA-256 of each row's content (every column but `_row`, in order), cut to
    16 bytes. Each value is written as its byte length, ':' and its text (null: 'n'), so no two
    rows' encodings are the same."""
    parts = []
    for name in batch.schema.names:
        if name == ROW:
            continue
        text = _text(batch.column(name))
        length = pc.cast(pc.binary_length(text), pa.string())
        parts.append(pc.fill_null(pc.binary_join_element_wise(length, text, ":"), "n"))
    if not parts:
        return np.zeros((batch.num_rows, 16), np.uint8)
    joined = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    return np.ascontiguousarray(sha256_many(joined)[:, :16])


def as_array(matrix: np.ndarray) -> pa.Array:
    """(n, 16) uint8 -> binary(16) array."""
    return pa.FixedSizeBinaryArray.from_buffers(HASH, len(matrix), [None, pa.py_buffer(np.ascontiguousarray(matrix))])


# --- the fingerprint ------------------------------------------------------------------------
DECIDING = ("schemas/*.py", "schemas/types/*.toml", "quality/arrow_checks.py", "quality/expectations.py",
            "quality/validate.py", "exchange/row_state.py")


@functools.lru_cache(maxsize=1)
def _code() -> str:
    """A hash of the code that conforms and checks rows (and pyarrow's version): a deployment
    that changes it makes the next run full, as a bump of CODE does."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{CODE} {pa.__version__}".encode())
    for path in sorted({p for pattern in DECIDING for p in root.glob(pattern)}):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def fingerprint(reg, extracted: pa.Schema) -> str:
    """A hash of everything that decides a silo row's conformed form and its checks' outcome."""
    ct = reg.ctype
    suite = suites.suite_path(ct.name)
    body = json.dumps({
        "code": _code(), "dataset": reg.dataset, "mapping": reg.mapping, "constants": reg.constants,
        "status_map": reg.status_map, "checks": list(reg.checks),
        "type": [ct.name, ct.version, ct.type_code, ct.title, repr(ct.fields), repr(ct.rules)],
        "suite": suite.read_text("utf-8") if suite.exists() else None,
        "columns": [[f.name, str(f.type)] for f in extracted if f.name != ROW],
    }, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _meta(schema: pa.Schema) -> dict:
    raw = (schema.metadata or {}).get(b"row_state")
    return json.loads(raw) if raw else {}


def read_meta(store: Store, key: str) -> dict:
    """The row state's fingerprint and version (empty if it is unreadable)."""
    try:
        with store.open_input(key) as f:
            return _meta(pa.ipc.open_file(f).schema)
    except (OSError, pa.ArrowInvalid, ValueError):
        return {}


# --- the decision ----------------------------------------------------------------------------
@dataclass
class Plan:
    mode: str                         # delta | full
    reason: str                       # why full
    fingerprint: str
    state: Path | None = None         # the row state on this machine (delta)

    def as_dict(self) -> dict:
        return {"mode": self.mode, **({"reason": self.reason} if self.mode == "full" else {})}


def plan(reg, store: Store, current_version: int | None, extracted: pa.Schema, scratch: Path,
         sources: int = 1) -> Plan:
    """Delta or full, and why full. `sources`: how many sources feed the dataset (several take
    turns moving its version, and publish at once: their runs are full)."""
    fp = fingerprint(reg, extracted)

    def full(reason: str) -> Plan:
        return Plan("full", reason, fp)

    if not enabled():
        return full(f"{ENV}=0")
    if reg.partitioned:
        return full("split run")
    if sources > 1:
        return full(f"dataset fed by {sources} sources")
    blocker = incremental_blocker(reg.ctype, reg.checks)
    if blocker:
        return full(blocker)
    key = state_key(reg.id)
    if not store.exists(key):
        return full("no row state")
    meta = read_meta(store, key)
    if meta.get("fingerprint") != fp:
        return full("mapping, checks, suite or silo columns changed")
    if current_version is None or meta.get("version") != current_version:
        return full(f"row state of version {meta.get('version')}, dataset at {current_version}")
    return Plan("delta", "", fp, store.local_file(key, scratch))


# --- the run's rows ---------------------------------------------------------------------------
class Matcher:
    """Each extracted batch's hashes, matched against the row state's accepted rows."""

    def __init__(self, state: Path | None):
        if state is None:
            self.hashes, self.licences, self.withdrawn = pa.array([], HASH), pa.array([], pa.string()), None
            self.empty = True
            return
        table = staging.read_table(state)
        acc = table.filter(pc.fill_null(table.column("accepted"), False))
        self.hashes = acc.column("row_hash").combine_chunks()
        self.licences = acc.column("licence_number").combine_chunks()
        self.withdrawn = acc.column("withdrawn").combine_chunks()
        self.state = table
        self.empty = len(self.hashes) == 0

    def index(self, hashes: np.ndarray) -> np.ndarray:
        """Each row's index among the state's accepted rows (-1: not carried)."""
        if self.empty or not len(hashes):
            return np.full(len(hashes), -1, np.int64)
        idx = pc.index_in(as_array(hashes), value_set=self.hashes)
        return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def scope(m: Matcher, hashes: np.ndarray, idx: np.ndarray, checked_licences: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(positions of carried rows that must be checked after all, the delta's licence numbers).
    A carried row is checked when its licence number is a checked row's, another carried row's,
    or a state row's that is not carried (changed, gone or quarantined): uniqueness and
    withdrawals are then decided over all of them. The delta's licence numbers
    (log_version.Delta) are those of the state's rows, accepted or not, that no carried row
    matches: the records a delta run may change, hold or withdraw."""
    carried = np.flatnonzero(idx >= 0)
    if not len(carried):
        return carried, pa.array([], pa.string())
    lic = m.licences.take(pa.array(idx[carried]))
    kept = pc.fill_null(pc.is_in(m.state.column("row_hash"), value_set=as_array(hashes[carried])), False)
    gone = m.state.column("licence_number").filter(pc.invert(kept)).combine_chunks().drop_null()
    counts = pc.value_counts(lic.drop_null())
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    wanted = pa.chunked_array([checked_licences.drop_null(), repeated, gone], pa.string()).combine_chunks()
    hit = pc.fill_null(pc.is_in(lic, value_set=wanted), False)
    licences = pa.chunked_array([gone, lic.filter(hit).drop_null()], pa.string()).combine_chunks()
    return carried[hit.to_numpy(zero_copy_only=False)], pc.unique(licences)


def rows_table(hashes: np.ndarray, idx: np.ndarray, m: Matcher) -> pa.Table:
    """conform's `rows` hand-off: every extracted row, carried ones with their state's licence
    number and withdrawn flag (the checked ones get theirs in validate)."""
    carried = idx >= 0
    take = pa.array(np.where(carried, idx, 0), pa.int64(), mask=~carried)
    if m.empty:
        lic, wd = pa.nulls(len(idx), pa.string()), pa.nulls(len(idx), pa.bool_())
    else:
        lic, wd = m.licences.take(take), m.withdrawn.take(take)
    return pa.table([as_array(hashes), pa.array(carried), lic, wd], schema=ROWS)


def new_state(rows: pa.Table, checked: pa.Table, quarantined_rows: pa.Array, fp: str,
              kept: pa.Table | None = None) -> pa.Table:
    """The run's row state: carried rows as they were, checked rows (`checked`: the conformed
    rows' _row, licence_number, status) with their outcome; `kept` (_row, reasons): the
    quarantined rows whose row-level failures cannot change with time, and those failures."""
    n = rows.num_rows
    pos = pc.subtract(checked.column(ROW), 1).to_numpy(zero_copy_only=False).astype(np.int64)
    at = np.full(n, -1, np.int64)
    at[pos] = np.arange(len(pos))
    here = at >= 0
    take = pa.array(np.where(here, at, 0), pa.int64(), mask=~here)
    bad = np.zeros(n, bool)
    if len(quarantined_rows):
        bad[pc.subtract(quarantined_rows, 1).to_numpy(zero_copy_only=False).astype(np.int64)] = True
    checked_lic = checked.column("licence_number").combine_chunks().take(take)
    checked_wd = pc.equal(checked.column("status").combine_chunks().take(take), WITHDRAWN)
    carried = rows.column("carried").combine_chunks()
    licence = pc.if_else(carried, rows.column("licence_number").combine_chunks(), checked_lic)
    accepted = pc.or_(carried, pa.array(here & ~bad))
    withdrawn = pc.fill_null(pc.if_else(carried, rows.column("withdrawn").combine_chunks(),
                                        pc.and_(checked_wd, pa.array(~bad))), False)
    meta = {b"row_state": json.dumps({"fingerprint": fp}).encode()}
    return pa.table([rows.column("row_hash").combine_chunks(), licence, accepted, withdrawn, _reasons(n, kept)],
                    schema=SCHEMA.with_metadata(meta))


# --- quarantined rows not checked again (validate) ----------------------------------------------
# A quarantined row's `reasons`: the row-level expectations it failed, when none of them depends
# on "today" (a row in the future now may not be later). Such a row, unchanged, fails them again:
# validate takes them from here instead of checking it (uniqueness is still decided over it).
def _reasons(n: int, kept: pa.Table | None) -> pa.Array:
    if kept is None or not kept.num_rows:
        return pa.nulls(n, pa.list_(pa.string()))
    at = np.full(n, -1, np.int64)
    at[pc.subtract(kept.column(ROW), 1).to_numpy(zero_copy_only=False).astype(np.int64)] = np.arange(kept.num_rows)
    here = at >= 0
    return kept.column("reasons").combine_chunks().take(pa.array(np.where(here, at, 0), pa.int64(), mask=~here))


def known_reasons(state: Path, hashes: pa.Array) -> pa.Array:
    """Each row's (of `hashes`) failures as the row state holds them (null: to be checked)."""
    table = staging.read_table(state)
    if "reasons" not in table.schema.names:
        return pa.nulls(len(hashes), pa.list_(pa.string()))
    table = table.filter(pc.is_valid(table.column("reasons")))
    idx = pc.index_in(hashes, value_set=table.column("row_hash").combine_chunks())
    return table.column("reasons").combine_chunks().take(idx)


def commit(store: Store, source_id: str, handoff: str, version: int | None, scratch: Path) -> None:
    """After publish: the run's row state (hand-off `handoff`) becomes the source's, stamped with
    the version it was published as. Idempotent: the hand-off is deleted last."""
    if not store.exists(handoff):
        return
    if version is None:
        store.delete(handoff)
        return
    local = store.local_file(handoff, scratch)
    table = staging.read_table(local)
    meta = {**_meta(table.schema), "version": version}
    out = scratch / f"rows.{version}{staging.TRANSIENT_SUFFIX}"
    with staging.transient_writer(out, table.schema.with_metadata({b"row_state": json.dumps(meta).encode()})) as w:
        for batch in table.to_batches(max_chunksize=262_144):
            w.write_batch(batch)
    del table
    store.put_file(out, state_key(source_id), move=True)
    store.delete(handoff)
