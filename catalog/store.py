"""Dataset versions on disk: records.parquet (leaf order), tree.bin, head.jws."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog.canonical import canonical_json, to_json_record
from catalog.merkle import MerkleTree, leaf_hashes
from schemas.types import CertificateType

ROW_GROUP = 65_536
INDEX_COLUMNS = ("record_id", "holder_key", "holder_code_type", "holder_name",
                 "licence_number", "status", "valid_to")


@dataclass(frozen=True)
class StagedVersion:
    directory: Path
    tree_size: int
    root: bytes
    index: pa.Table        # catalogue index rows, in leaf order


def record_ids(dataset: str, licence_numbers: pa.Array) -> pa.Array:
    prefix = f"{dataset}\x1f".encode()
    return pa.array([hashlib.sha256(prefix + n.encode()).hexdigest()[:32]
                     for n in licence_numbers.to_pylist()], pa.string())


def stage_version(accepted: Path, dataset: str, ctype: CertificateType, out_dir: Path) -> StagedVersion:
    """Records in a deterministic order (by record id), their tree, written under out_dir."""
    table = pq.read_table(accepted)
    table = table.append_column("record_id", record_ids(dataset, table.column("licence_number").combine_chunks()))
    table = table.sort_by("record_id")
    records = table.select([*ctype.field_names, "record_id"])
    tree = MerkleTree.build(leaf_hashes(canonical_json(records)))
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(records, out_dir / "records.parquet", row_group_size=ROW_GROUP)
    tree.save(out_dir / "tree.bin")
    index = table.select(list(INDEX_COLUMNS)).append_column(
        "leaf_index", pa.array(range(table.num_rows), pa.int64()))
    return StagedVersion(out_dir, tree.size, tree.root, index)


def read_record(directory: Path, leaf_index: int) -> dict:
    pf = pq.ParquetFile(directory / "records.parquet")
    group, offset = divmod(leaf_index, ROW_GROUP)
    row = pf.read_row_group(group).slice(offset, 1).to_pylist()[0]
    return to_json_record(row)


def inclusion_proof(directory: Path, leaf_index: int) -> list[bytes]:
    return MerkleTree.open(directory / "tree.bin").inclusion_proof(leaf_index)


def effective_status(status: str, valid_to, today) -> str:
    if status == "valid" and valid_to is not None and valid_to < today:
        return "expired"
    return status


def effective_status_array(status: pa.Array, valid_to: pa.Array, today) -> pa.Array:
    expired = pc.and_(pc.equal(status, "valid"), pc.less(valid_to, pa.scalar(today, pa.date32())))
    return pc.if_else(pc.fill_null(expired, False), "expired", status)
