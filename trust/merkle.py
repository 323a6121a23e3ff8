"""RFC 9162 §2.1 hashes: leaf = SHA-256(0x00 ‖ d), node = SHA-256(0x01 ‖ l ‖ r), the root an
inclusion proof leads to, and the check of a consistency proof (building and storing trees:
catalog/signing/merkle.py and catalog/signing/tiles.py)."""
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


def verify_consistency(first_size: int, second_size: int, first_root: bytes, second_root: bytes,
                       proof: list[bytes]) -> None:
    """RFC 9162 §2.1.4.2, literally: raise ValueError unless `proof` shows that the tree of
    `second_size` leaves with root `second_root` extends the one of `first_size` with `first_root`.
    The RFC defines it for 0 < first < second; first == second needs an empty proof and equal
    roots (§2.1.4.1: SUBPROOF(m, D[m], true) = {}); first_size 0 is refused."""
    if not 0 < first_size <= second_size:
        raise ValueError(f"a consistency proof needs 0 < first size <= second size, not {first_size}, {second_size}")
    if len(first_root) != 32 or len(second_root) != 32 or any(len(p) != 32 for p in proof):
        raise ValueError("hashes in a consistency proof are 32 bytes")
    if first_size == second_size:
        if proof:
            raise ValueError("a consistency proof between equal tree sizes is empty")
        if first_root != second_root:
            raise ValueError("the two roots differ for the same tree size")
        return
    # 1. an empty consistency_path fails
    if not proof:
        raise ValueError("the consistency proof is empty")
    # 2. first an exact power of 2: first_hash is prepended
    path = [first_root, *proof] if first_size & (first_size - 1) == 0 else list(proof)
    # 3.
    fn, sn = first_size - 1, second_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:                                    # 6a
            raise ValueError("the consistency proof is too long for these tree sizes")
        if fn & 1 or fn == sn:                         # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:                                          # 6b, otherwise
            sr = node_hash(sr, c)
        fn >>= 1                                       # 6c
        sn >>= 1
    # 7.
    if sn != 0:
        raise ValueError("the consistency proof is too short for these tree sizes")
    if fr != first_root:
        raise ValueError("the consistency proof does not lead to the first root")
    if sr != second_root:
        raise ValueError("the consistency proof does not lead to the second root")
