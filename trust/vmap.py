"""The verifiable map "exchange-map/1": record id -> its latest leaf (index, hash) in a dataset's log.

A record id is 32 lowercase hex characters, 16 bytes K. An entry is K (16) ‖ leaf index as
uint64 big-endian (8) ‖ leaf hash (32) = 56 bytes. With `bits` b (0 <= b <= 24), the bucket of K
is its top b bits; a bucket's hash is SHA-256(0x00 ‖ its entries sorted by K, one per record id)
(SHA-256(0x00) when empty). The map root is the RFC 9162 §2.1.1 Merkle tree head over the 2^b
bucket hashes as leaf hashes (b = 0: the one bucket hash).

A proof is {"bits": b, "bucket": i, "entries": [[record_id, leaf_index, leaf_hash_hex], ...],
"path": [hex, ...]}, path being the RFC 9162 §2.1.3.1 inclusion path of leaf i in a tree of
size 2^b. It shows R's entry, or that R has none, since the whole bucket is shown.
(Building the map: catalog/signing/vmap.py.)
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from trust.merkle import LEAF_PREFIX, root_from_inclusion_proof

MAX_BITS = 24
ENTRY_SIZE = 56
_ID = re.compile(r"[0-9a-f]{32}")
_HASH = re.compile(r"[0-9a-f]{64}")
_KEYS = {"bits", "bucket", "entries", "path"}


def _check_id(record_id: object) -> str:
    if not isinstance(record_id, str) or not _ID.fullmatch(record_id):
        raise ValueError(f"a record id is 32 lowercase hex characters, not {record_id!r}")
    return record_id


def _check_bits(bits: object) -> int:
    if type(bits) is not int or not 0 <= bits <= MAX_BITS:
        raise ValueError(f"bits is a whole number from 0 to {MAX_BITS}, not {bits!r}")
    return bits


def entry_bytes(record_id: str, leaf_index: int, leaf_hash: bytes) -> bytes:
    """K ‖ uint64 big-endian leaf index ‖ leaf hash: 56 bytes."""
    _check_id(record_id)
    if type(leaf_index) is not int or not 0 <= leaf_index < 1 << 64:
        raise ValueError(f"a leaf index is a uint64, not {leaf_index!r}")
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != 32:
        raise ValueError("a leaf hash is 32 bytes")
    return bytes.fromhex(record_id) + leaf_index.to_bytes(8, "big") + leaf_hash


def bucket_hash(entries: Iterable[bytes]) -> bytes:
    """SHA-256(0x00 ‖ entry_1 ‖ … ‖ entry_m) of entries (entry_bytes) already in order."""
    h = hashlib.sha256(LEAF_PREFIX)
    for e in entries:
        if len(e) != ENTRY_SIZE:
            raise ValueError(f"a map entry is {ENTRY_SIZE} bytes, not {len(e)}")
        h.update(e)
    return h.digest()


def bucket_of(record_id_hex: str, bits: int) -> int:
    """The bucket of a record id: its top `bits` bits (0 when bits is 0)."""
    return int(_check_id(record_id_hex), 16) >> (128 - _check_bits(bits))


def verify_map_proof(proof: object, map_root: bytes, record_id: str) -> tuple[int, bytes] | None:
    """(leaf_index, leaf_hash) of `record_id`'s entry in the map with root `map_root`, or None
    when the proof shows its bucket without it. ValueError (a plain reason) if the proof is
    malformed, is for another bucket or does not lead to `map_root`."""
    _check_id(record_id)
    if not isinstance(map_root, bytes) or len(map_root) != 32:
        raise ValueError("a map root is 32 bytes")
    if not isinstance(proof, dict) or set(proof) != _KEYS:
        raise ValueError(f"a map proof is an object with exactly the keys {sorted(_KEYS)}")
    bits, bucket = _check_bits(proof["bits"]), proof["bucket"]
    if type(bucket) is not int or not 0 <= bucket < 1 << bits:
        raise ValueError(f"bucket {bucket!r} is not one of the 2^{bits} buckets")
    if bucket_of(record_id, bits) != bucket:
        raise ValueError(f"record {record_id} is in bucket {bucket_of(record_id, bits)}, the proof shows {bucket}")
    entries, path = proof["entries"], proof["path"]
    if not isinstance(entries, list) or not isinstance(path, list):
        raise ValueError("a map proof's entries and path are lists")
    found: tuple[int, bytes] | None = None
    raw, previous = [], ""
    for item in entries:
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError("a map entry is [record_id, leaf_index, leaf_hash]")
        rid, index, leaf = item
        if not isinstance(leaf, str) or not _HASH.fullmatch(leaf):
            raise ValueError("a leaf hash is 64 lowercase hex characters")
        raw.append(entry_bytes(rid, index, bytes.fromhex(leaf)))
        if rid <= previous:  # same length lowercase hex: string order is K's order
            raise ValueError("the bucket's entries are not in strictly ascending record id order")
        if bucket_of(rid, bits) != bucket:
            raise ValueError(f"record {rid} does not belong in bucket {bucket}")
        previous = rid
        if rid == record_id:
            found = (index, bytes.fromhex(leaf))
    if not all(isinstance(p, str) and _HASH.fullmatch(p) for p in path):
        raise ValueError("a map path is a list of 64 lowercase hex characters")
    if len(path) != bits:
        raise ValueError(f"a map path with {bits} bits has {bits} hashes, not {len(path)}")
    got = root_from_inclusion_proof(bucket, 1 << bits, bucket_hash(raw), [bytes.fromhex(p) for p in path])
    if got != map_root:
        raise ValueError("the map proof does not lead to the map root")
    return found
