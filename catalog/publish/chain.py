"""Audit of a dataset's chain of signed tree heads, version by version, in numbered checks.

For each version, in order, the first failing check is the chain's first break:
  1. version numbering: versions are 1, 2, 3 … without gaps, and the head says the same
  2. head signature: signing key known and not compromised (trust.verify steps 2-3)
  3. head matches the catalogue: dataset, version, tree size and root as recorded, head.jws
     on disk identical to the catalogue's
  4. chain link: previous_head_hash is the hash of the previous version's head (null for 1)
  5. time order: issued_at never goes backwards
  6. records re-hash to the signed root: records.parquet -> RFC 8785 -> RFC 9162 root; for a
     version of the log, its appended records re-hash to the log's leaves, the log's tiles give
     the signed root, and an RFC 9162 consistency proof links it to the previous version's
  7. index matches the records: the catalogue's record ids by leaf index are the version's
  8. map matches the index (the current version): the catalogue's current record states give
     the signed map root
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import Engine

from base import staging
from base.errors import VerificationError
from base.storage import Store
from catalog.db.models import DatasetVersion, Record
from catalog.publish.log_version import current_state, log_prefix, state_map
from catalog.signing.canonical import canonical_json
from catalog.signing.merkle import MerkleTree, leaf_hashes
from catalog.signing.tiles import TileLog
from trust.heads import head_hash
from trust.merkle import verify_consistency
from trust.verify import verify_tree_head

CHECKS = [
    (1, "version numbering"),
    (2, "head signature"),
    (3, "head matches the catalogue"),
    (4, "chain link"),
    (5, "time order"),
    (6, "records re-hash to the signed root"),
    (7, "index matches the records"),
    (8, "map matches the index"),
]
_NAMES = dict(CHECKS)


@dataclass(frozen=True)
class VersionEntry:
    """One version as the catalogue records it."""
    dataset: str
    version: int
    signed_tree_head: str
    tree_size: int
    root_hash: str
    path: Store                       # the version's folder in the store
    index_record_ids: object = None   # callable () -> list of record ids by leaf index, or None
    first_leaf: int | None = None     # a version of the log: its first appended leaf
    log: object = None                # the dataset's TileLog (catalog/signing/tiles.py)
    map_root: str | None = None
    current_map_root: object = None   # callable () -> the map root of the index's current states


@dataclass
class ChainReport:
    dataset: str
    versions_checked: int = 0
    records_checked: int = 0
    first_break: dict | None = None   # {version, check, name, message}
    heads: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_break is None


class _Break(Exception):
    def __init__(self, check: int, message: str):
        super().__init__(message)
        self.check, self.message = check, message


def _records_root(files: Store) -> tuple[int, bytes, list[str]]:
    """Tree size, RFC 9162 root and record ids of a version's stored records."""
    leaves, ids = [], []
    for batch in staging.parquet_file(files.open_input("records.parquet")).iter_batches(batch_size=131_072):
        leaves.append(leaf_hashes(canonical_json(pa.Table.from_batches([batch]))))
        ids += batch.column("record_id").to_pylist()
    tree = MerkleTree.build(np.concatenate(leaves) if leaves else np.zeros((0, 32), np.uint8))
    return tree.size, tree.root, ids


def _records_leaves(files: Store) -> tuple[np.ndarray, list[str]]:
    leaves, ids = [], []
    for batch in staging.parquet_file(files.open_input("records.parquet")).iter_batches(batch_size=131_072):
        leaves.append(leaf_hashes(canonical_json(pa.Table.from_batches([batch]))))
        ids += batch.column("record_id").to_pylist()
    return (np.concatenate(leaves) if leaves else np.zeros((0, 32), np.uint8)), ids


def _check_log(e: VersionEntry, head: dict, prev: tuple[str, dict] | None) -> list[str]:
    """Check 6 for a version of the log; the record ids it appended, by leaf index."""
    try:
        leaves, ids = _records_leaves(e.path)
        logged = e.log.leaves(e.first_leaf, e.first_leaf + len(leaves), e.tree_size)
        root = e.log.root(e.tree_size)
    except (OSError, ValueError, KeyError) as exc:
        raise _Break(6, f"the stored records or the log's tiles cannot be read ({exc})") from None
    if e.first_leaf + len(leaves) != e.tree_size or not np.array_equal(leaves, logged):
        raise _Break(6, f"the version's {len(leaves)} stored records do not re-hash to the log's leaves "
                        f"{e.first_leaf} to {e.tree_size - 1}: the stored records or the log were altered")
    if root.hex() != head["root_hash"]:
        raise _Break(6, f"the log's tiles give root {root.hex()[:16]}… at size {e.tree_size}, the head signs "
                        f"{head['root_hash'][:16]}…: the log was altered")
    if prev is not None and e.first_leaf > 0:
        m, old_root = prev[1]["tree_size"], bytes.fromhex(prev[1]["root_hash"])
        try:
            verify_consistency(m, e.tree_size, old_root, root, e.log.consistency_proof(m, e.tree_size))
        except ValueError as exc:
            raise _Break(6, f"no consistency proof links size {m} to {e.tree_size} ({exc}): the log was "
                            "rewritten, not appended to") from None
    return ids


def _check_version(e: VersionEntry, expected: int, prev: tuple[str, dict] | None, jwks, key_status) -> tuple[dict, int]:
    if e.version != expected:
        raise _Break(1, f"expected version {expected} next, found version {e.version}: "
                        "a version is missing or out of order")
    try:
        head, _ = verify_tree_head(e.signed_tree_head, jwks, key_status)
    except VerificationError as exc:
        raise _Break(2, exc.detail) from None
    if head["version"] != expected:
        raise _Break(1, f"the head signed for version {head['version']} sits at version {expected}: "
                        "the chain was reordered")
    claimed = {"dataset": e.dataset, "version": e.version, "tree_size": e.tree_size, "root_hash": e.root_hash}
    for name, value in claimed.items():
        if head[name] != value:
            raise _Break(3, f"the catalogue says {name} {value!r}, the signed head says {head[name]!r}")
    stored = e.path.url("head.jws")
    if not e.path.exists("head.jws") or e.path.read_text("head.jws").strip() != e.signed_tree_head:
        raise _Break(3, f"{stored} is missing or differs from the catalogue's head")
    want = head_hash(prev[0]) if prev else None
    if head["previous_head_hash"] != want:
        raise _Break(4, f"previous_head_hash is {head['previous_head_hash']}, the previous head hashes to {want}: "
                        "the chain is broken (a version was altered, removed or reordered)")
    if prev and head["issued_at"] < prev[1]["issued_at"]:
        raise _Break(5, f"issued at {head['issued_at']}, before the previous version ({prev[1]['issued_at']})")
    if e.first_leaf is not None:
        ids, size = _check_log(e, head, prev), e.tree_size
    else:
        try:
            size, root, ids = _records_root(e.path)
        except (OSError, ValueError, KeyError) as exc:
            raise _Break(6, f"the stored records cannot be read ({exc})") from None
    if e.first_leaf is None and (size != head["tree_size"] or root.hex() != head["root_hash"]):
        raise _Break(6, f"the {size} stored records hash to root {root.hex()[:16]}…, the head signs "
                        f"{head['tree_size']} records with root {head['root_hash'][:16]}…: "
                        "the stored records were altered")
    if e.index_record_ids is not None and e.index_record_ids() != ids:
        raise _Break(7, "the catalogue's index does not list the version's records at their leaf indexes: "
                        "a record was moved, added or removed in the index")
    if e.current_map_root is not None and e.map_root is not None:
        root_now = e.current_map_root()
        if root_now != e.map_root or head.get("map_root") != e.map_root:
            raise _Break(8, f"the index's current record states give map root {root_now[:16]}…, the head "
                            f"signs {str(head.get('map_root'))[:16]}…: the index was altered")
    return head, size


def audit_chain(dataset: str, entries: list[VersionEntry], jwks: dict,
                key_status: str | None = None, progress=None) -> ChainReport:
    """Walk every version in order; stop at the first break. `progress()` after each version."""
    report, prev = ChainReport(dataset), None
    for expected, e in enumerate(entries, start=1):
        try:
            head, size = _check_version(e, expected, prev, jwks, key_status)
        except _Break as b:
            report.first_break = {"version": e.version, "check": b.check, "name": _NAMES[b.check],
                                  "message": b.message}
            return report
        report.versions_checked += 1
        report.records_checked += size
        report.heads.append({"version": e.version, "issued_at": head["issued_at"],
                             "tree_size": size, "head_hash": head_hash(e.signed_tree_head)})
        prev = (e.signed_tree_head, head)
        if progress:
            progress()
    return report


def catalogue_entries(engine: Engine, store: Store, dataset: str) -> list[VersionEntry]:
    """The dataset's versions as the catalogue records them, in version order (their files in
    `store`)."""
    with engine.connect() as c:
        rows = c.execute(sa.select(DatasetVersion).where(DatasetVersion.dataset_id == dataset)
                         .order_by(DatasetVersion.version)).all()

    def ids_of(version: int):
        def read() -> list[str]:
            with engine.connect() as c:
                return list(c.scalars(sa.select(Record.record_id).where(
                    Record.dataset_id == dataset, Record.version == version).order_by(Record.leaf_index)))
        return read

    log = TileLog(store, log_prefix(dataset))

    def map_root_now() -> str:
        with engine.connect() as c:
            state = current_state(c, store, dataset)
        return state_map(state).root().hex()

    last = rows[-1].version if rows else None
    return [VersionEntry(dataset, r.version, r.signed_tree_head, r.tree_size, r.root_hash,
                         store.sub(r.path), ids_of(r.version), r.first_leaf, log, r.map_root,
                         map_root_now if r.version == last else None) for r in rows]
