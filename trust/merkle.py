"""RFC 9162 §2.1 hashes: leaf = SHA-256(0x00 ‖ d), node = SHA-256(0x01 ‖ l ‖ r), and the root an
inclusion proof leads to (building and storing trees: catalog/signing/merkle.py)."""
from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_PREFIX, NODE_PREFIX = b"\x00", b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2, literally: the root that `proof` leads to from leaf hash `leaf`."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not below the tree size {size}")
    if len(leaf) != 32 or any(len(p) != 32 for p in proof):
        raise ValueError("hashes in an inclusion proof are 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("the inclusion proof is too long for this index and tree size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the inclusion proof is too short for this index and tree size")
    return r
