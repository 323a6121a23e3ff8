"""Dataset versions: records.parquet and index.parquet (leaf order), tree.bin, head.jws.

A version is built (staged) in a local folder, then stored under `version_key` in the store
(base/storage.py); its readers take the version's folder as a Store (`store.sub(key)`) and read
only the ranges they need (a row group, a tree's nodes).

Staging streams the accepted rows in batches, on worker threads: record ids, canonical bytes
and leaf hashes per batch (SHA-256 over whole arrays, catalog/signing/digests.py), records and index
rows written as they come, so memory grows only by the leaf hashes (32 bytes a record).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from base import memory, staging
from base.errors import PublishError
from base.parallel import ordered_map
from base.storage import Store
from catalog.signing.canonical import canonical_json
from catalog.signing.digests import hex_strings, sha256_many
from catalog.signing.merkle import MerkleTree, leaf_hashes
from schemas.types import CertificateType
from trust.canonical import to_json_record
from trust.merkle import LEAF_PREFIX

DATASET_NAME = re.compile(r"(?=.{2,128}\Z)[a-z][a-z0-9_]{0,62}(\.[a-z][a-z0-9_]{0,62})?")
ROW_GROUP = 8_192            # small groups: reading one record decodes 8k rows, not 64k
BATCH = 2 * ROW_GROUP           # a multiple of ROW_GROUP (every row group but the last is full); small: a few in flight
INDEX_COLUMNS = ("record_id", "holder_key", "holder_code_type", "holder_name",
                 "licence_number", "status", "valid_to")


@dataclass(frozen=True)
class StagedVersion:
    directory: Path
    tree_size: int
    root: bytes
    content_digest: str        # SHA-256 of the sorted leaf hashes: same records, same digest

    @property
    def index_path(self) -> Path:
        return self.directory / "index.parquet"


VERSIONS = "store"         # the store's prefix of dataset versions: store/<dataset>/v000001


def version_key(dataset: str, version: int) -> str:
    """The store key of a dataset version's folder, whatever name it is handed (the registration
    refuses bad names first; this is the second lock)."""
    if not DATASET_NAME.fullmatch(dataset):
        raise PublishError(f"dataset {dataset!r}: the store writes only under a dataset name of "
                           "lower-case letters, digits, _ and one dot; nothing was written")
    return f"{VERSIONS}/{dataset}/v{version:06d}"


HOLDER_PREFIX = 12


def holder_prefix(holder_key: str) -> str:
    return hashlib.sha256(holder_key.encode()).hexdigest()[:HOLDER_PREFIX]


def record_id_bytes(dataset: str, holder_keys: pa.Array, licence_numbers: pa.Array) -> np.ndarray:
    """The 16 bytes a record id is the hex of: 6 of SHA-256(holder key) + 10 of
    SHA-256(dataset ‖ 0x1f ‖ licence number); (n, 16) uint8."""
    for name, values in (("holder_key", holder_keys), ("licence_number", licence_numbers)):
        if values.null_count:
            raise ValueError(f"{values.null_count} records have no {name}: a record id needs one")
    holder = sha256_many(holder_keys)[:, :HOLDER_PREFIX // 2]
    licence = sha256_many(licence_numbers, f"{dataset}\x1f".encode())[:, :10]
    return np.concatenate([holder, licence], axis=1)


def record_ids(dataset: str, holder_keys: pa.Array, licence_numbers: pa.Array) -> pa.Array:
    """12 hex of SHA-256(holder key) + 20 hex of SHA-256(dataset ‖ licence number)."""
    return hex_strings(record_id_bytes(dataset, holder_keys, licence_numbers))


def key_order(keys: np.ndarray) -> np.ndarray:
    """Indices that sort the rows of an (n, k) uint8 array bytewise (k a multiple of 8): on the
    first 8 bytes, then the rows whose first 8 bytes tie (usually few) on all of them."""
    words = np.ascontiguousarray(keys).view(">u8")
    first = words[:, 0].astype(np.uint64)     # native byte order: a faster sort
    order = np.argsort(first)
    first = first[order]
    tied = np.flatnonzero(first[1:] == first[:-1])
    if len(tied) and words.shape[1] > 1:
        at = np.union1d(tied, tied + 1)       # positions of whole tie groups, in sorted order
        rows = order[at]
        order[at] = rows[np.lexsort(words[rows].T[::-1])]
    return order


def _stage_batch(batch: pa.RecordBatch, dataset: str, record_cols: list[str], index_cols: list[str]):
    """One batch: records (with their ids), leaf hashes, index-only columns. Runs on a worker
    thread (DataFusion and Arrow release the GIL)."""
    table = pa.Table.from_batches([batch]).append_column("record_id", record_ids(
        dataset, batch.column("holder_key"), batch.column("licence_number")))
    records = table.select(record_cols)
    leaves = leaf_hashes(canonical_json(records, prefix=LEAF_PREFIX), prefixed=True)
    return records, leaves, table.select(index_cols)


def stage_version(accepted: Path | list[Path], dataset: str, ctype: CertificateType,
                  out_dir: Path) -> StagedVersion:
    """records.parquet, index.parquet (the index columns that are not record fields, in leaf
    order: the rest are read from the records when the index is inserted) and tree.bin.
    `accepted`: a file of records, or several (changes.publishable), in leaf order."""
    all_leaves = stage_files(accepted, dataset, ctype, out_dir)
    # memory: the leaves once (32 bytes a record), the tree's upper half, then the sort's
    tree = MerkleTree.build(all_leaves)
    tree.save(out_dir / "tree.bin")
    size, root = tree.size, tree.root
    del tree
    order = key_order(all_leaves)
    digest = hashlib.sha256()
    for at in range(0, len(order), DIGEST_ROWS):     # over slices: no sorted copy of every leaf
        digest.update(all_leaves[order[at:at + DIGEST_ROWS]])
    return StagedVersion(out_dir, size, root, digest.hexdigest())


def stage_files(accepted: Path | list[Path], dataset: str, ctype: CertificateType, out_dir: Path) -> np.ndarray:
    """stage_version's records.parquet and index.parquet alone; returns the leaf hashes, (n, 32)
    uint8 in leaf order (a log version's segment needs no tree of them, nor their digest)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [accepted] if isinstance(accepted, Path) else list(accepted)
    src_schema = staging.read_schema(sources[0])
    record_cols = [*ctype.field_names, "record_id"]
    index_cols = [c for c in INDEX_COLUMNS if c not in record_cols]
    wanted = list(dict.fromkeys([*ctype.field_names, *index_cols]))
    leaves: list[np.ndarray] = []
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        batches = exactly(BATCH, (b for p in sources for b in staging.iter_batches(p, BATCH, wanted)))
        for records, hashes, index in memory.released(ordered_map(
                lambda b: _stage_batch(b, dataset, record_cols, index_cols), batches)):
            for name, table in (("records", records), ("index", index)):
                if name not in writers:
                    writers[name] = staging.writer(out_dir / f"{name}.parquet", table.schema,
                                                   staging.DATASET_FILES)
                writers[name].write_table(table, row_group_size=ROW_GROUP if name == "records" else None)
            leaves.append(hashes)
    finally:
        for w in writers.values():
            w.close()
    if not writers:              # nothing accepted: an empty version is still a version
        schema = ctype.arrow_schema().append(pa.field("record_id", pa.string()))
        staging.write_table(schema.empty_table(), out_dir / "records.parquet", staging.DATASET_FILES)
        staging.write_table(pa.schema([src_schema.field(c) for c in index_cols]).empty_table(),
                            out_dir / "index.parquet", staging.DATASET_FILES)
    return np.concatenate(leaves) if leaves else np.zeros((0, 32), np.uint8)


DIGEST_ROWS = 65_536          # leaves gathered in key order at once for the content digest


def exactly(size: int, batches):
    """Batches of `size` rows (the last may be shorter) from batches of any size: every row
    group of records.parquet but the last must be full (read_record finds a leaf by division)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        if not held and batch.num_rows == size:     # one file's batches: passed on as they are
            yield batch
            continue
        held.append(batch)
        n += batch.num_rows
        if n >= size:
            table = pa.Table.from_batches(held).combine_chunks()
            cut = n - n % size
            yield from table.slice(0, cut).to_batches(max_chunksize=size)
            held, n = table.slice(cut).to_batches(), n % size
    if n:
        yield pa.Table.from_batches(held).combine_chunks().to_batches()[0]


def index_table(path: Path, columns: list[str]) -> pa.Table:
    """`columns` of a staged version's index in leaf order: from index.parquet where it has
    them, else from records.parquet beside it; leaf_index is the row number and leaf_hash null
    unless the index has them (a log version's segment has both)."""
    in_index = set(pq.read_schema(path).names)
    records = path.parent / "records.parquet"
    from_records = [c for c in columns if c not in in_index and c not in ("leaf_index", "leaf_hash")]
    table = pq.read_table(path, columns=[c for c in columns if c in in_index])
    for c in from_records:
        table = table.append_column(c, pq.read_table(records, columns=[c]).column(c))
    if "leaf_hash" in columns and "leaf_hash" not in in_index:     # a whole version's: in tree.bin
        table = table.append_column("leaf_hash", pa.nulls(table.num_rows, pa.string()))
    if "leaf_index" in columns and "leaf_index" not in in_index:
        n = pq.ParquetFile(records).metadata.num_rows
        table = table.append_column("leaf_index", pa.array(np.arange(n, dtype=np.int64)))
    return table.select(columns)


def index_batches(path: Path, columns: list[str], batch_rows: int = 65_536):
    """index_table a batch at a time (record batches of `columns`, in leaf order)."""
    in_index = set(pq.read_schema(path).names)
    records = path.parent / "records.parquet"
    from_records = [c for c in columns if c not in in_index and c not in ("leaf_index", "leaf_hash")]
    own = [c for c in columns if c in in_index]
    extra = (_rebatch(staging.parquet_file(records).iter_batches(batch_size=batch_rows, columns=from_records))
             if from_records else None)
    if extra is not None:
        next(extra)
    at = 0
    for batch in staging.parquet_file(path).iter_batches(batch_size=batch_rows, columns=own or None):
        k = batch.num_rows
        cols = {c: batch.column(c) for c in own}
        if extra is not None:
            part = extra.send(k)
            cols.update({c: part.column(c) for c in from_records})
        if "leaf_hash" in columns and "leaf_hash" not in in_index:
            cols["leaf_hash"] = pa.nulls(k, pa.string())
        if "leaf_index" in columns and "leaf_index" not in in_index:
            cols["leaf_index"] = pa.array(np.arange(at, at + k, dtype=np.int64))
        at += k
        yield pa.RecordBatch.from_arrays([cols[c] for c in columns], names=columns)


def _rebatch(batches):
    """A coroutine: sent k, the next k rows of `batches` as one record batch."""
    held: list[pa.RecordBatch] = []
    n = 0
    out = None
    while True:
        k = yield out
        while n < k:
            b = next(batches)
            held.append(b)
            n += b.num_rows
        table = pa.Table.from_batches(held).combine_chunks()
        out = table.slice(0, k).to_batches()[0] if k else None
        held, n = table.slice(k).to_batches(), n - k


Files = Store | Path        # a version's folder: in the store, or a local one (a staged version)


def _store(files: Files) -> Store:
    return files if isinstance(files, Store) else Store.local(files)


def records_file(files: Files) -> pq.ParquetFile:
    """A version's records.parquet, read by ranges (a column, a row group)."""
    return staging.parquet_file(_store(files).open_input("records.parquet"))


def version_leaves(files: Files, hashes: np.ndarray | None = None) -> pa.Table:
    """record_id, status and leaf hash (binary(32)) of every record of a version, in leaf
    order: what two versions are compared by. `hashes`: its leaf hashes (stage_files), held
    by the table as they are; else read from its tree.bin."""
    local = _store(files).local_path("records.parquet")
    # a local file read, not mapped: its mapped pages would count in the process's memory
    ids = (staging.parquet_file(str(local)) if local is not None else records_file(files)).read(
        columns=["record_id", "status"])
    if hashes is None:
        hashes = MerkleTree.open_in(_store(files), "tree.bin").leaf_array()
        data = pa.py_buffer(hashes.tobytes())
    else:
        data = pa.py_buffer(np.ascontiguousarray(hashes, np.uint8))
    if len(hashes) != ids.num_rows:
        raise ValueError(f"{ids.num_rows} records, {len(hashes)} leaf hashes")
    return ids.append_column("leaf", pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), len(hashes), [None, data]))


def read_record(files: Files, leaf_index: int) -> dict:
    """One record of a version: one row group read (ROW_GROUP rows), not the file."""
    group, offset = divmod(leaf_index, ROW_GROUP)
    row = records_file(files).read_row_group(group).slice(offset, 1).to_pylist()[0]
    return to_json_record(row)


def inclusion_proof(files: Files, leaf_index: int) -> list[bytes]:
    return MerkleTree.open_in(_store(files), "tree.bin").inclusion_proof(leaf_index)


def effective_status(status: str, valid_to, today) -> str:
    if status == "valid" and valid_to is not None and valid_to < today:
        return "expired"
    return status


def effective_status_array(status: pa.Array, valid_to: pa.Array, today) -> pa.Array:
    expired = pc.and_(pc.equal(status, "valid"), pc.less(valid_to, pa.scalar(today, pa.date32())))
    return pc.if_else(pc.fill_null(expired, False), "expired", status)
