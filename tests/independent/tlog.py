"""A second implementation of the transparency log checks, for tests: written from RFC 9162 and
the C2SP texts (signed-note, tlog-checkpoint) and the exchange-map/1 spec, not from the
exchange's code, and importing nothing of it (standard library and cryptography only).
"""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def HASH(data: bytes) -> bytes:  # the RFC's name
    return hashlib.sha256(data).digest()


# -- RFC 9162 §2.1.1: the Merkle Tree Hash ---------------------------------------------------
def largest_power_of_two_below(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaf_hashes: list[bytes]) -> bytes:
    """MTH(D_n), with the leaves given already hashed (MTH({d}) = SHA-256(0x00 ‖ d))."""
    n = len(leaf_hashes)
    if n == 0:
        return HASH(b"")
    if n == 1:
        return leaf_hashes[0]
    k = largest_power_of_two_below(n)
    return HASH(b"\x01" + mth(leaf_hashes[:k]) + mth(leaf_hashes[k:]))


def audit_path(m: int, leaf_hashes: list[bytes]) -> list[bytes]:
    """§2.1.3.1 PATH(m, D_n)."""
    n = len(leaf_hashes)
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return audit_path(m, leaf_hashes[:k]) + [mth(leaf_hashes[k:])]
    return audit_path(m - k, leaf_hashes[k:]) + [mth(leaf_hashes[:k])]


# -- §2.1.3.2: verifying an inclusion proof --------------------------------------------------
def verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes, inclusion_path: list[bytes],
                     root_hash: bytes) -> bool:
    if leaf_index >= tree_size or leaf_index < 0:                       # step 1
        return False
    fn, sn = leaf_index, tree_size - 1                                  # step 2
    r = leaf_hash                                                       # step 3
    for p in inclusion_path:                                            # step 4
        if sn == 0:                                                     # 4a
            return False
        if fn % 2 == 1 or fn == sn:                                     # 4b
            r = HASH(b"\x01" + p + r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        else:
            r = HASH(b"\x01" + r + p)
        fn //= 2                                                        # finally
        sn //= 2
    return sn == 0 and r == root_hash                                   # step 5


# -- §2.1.4.1: generating a consistency proof ------------------------------------------------
def consistency_proof(m: int, leaf_hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D_n) = SUBPROOF(m, D_n, true), for 0 < m <= n."""
    if not 0 < m <= len(leaf_hashes):
        raise ValueError("PROOF(m, D_n) is defined for 0 < m <= n")
    return _subproof(m, leaf_hashes, True)


def _subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return _subproof(m, d[:k], b) + [mth(d[k:])]
    return _subproof(m - k, d[k:], False) + [mth(d[:k])]


# -- §2.1.4.2: verifying consistency between two tree heads -----------------------------------
def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       consistency_path: list[bytes]) -> bool:
    """For 0 < first < second (the RFC's case); first == second: an empty path and equal hashes."""
    if first == second:
        return not consistency_path and first_hash == second_hash
    if not 0 < first < second:
        return False
    path = list(consistency_path)
    if not path:                                                        # step 1
        return False
    if first & (first - 1) == 0:                                        # step 2
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1                                      # step 3
    while fn % 2 == 1:                                                  # step 4
        fn //= 2
        sn //= 2
    fr = sr = path[0]                                                   # step 5
    for c in path[1:]:                                                  # step 6
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = HASH(b"\x01" + c + fr)
            sr = HASH(b"\x01" + c + sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            sr = HASH(b"\x01" + sr + c)
        fn //= 2
        sn //= 2
    return fr == first_hash and sr == second_hash and sn == 0           # step 7


# -- exchange-map/1 ---------------------------------------------------------------------------
HEX = "0123456789abcdef"


def _is_hex(s: object, chars: int) -> bool:
    return isinstance(s, str) and len(s) == chars and all(c in HEX for c in s)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def map_lookup(proof: object, map_root: bytes, record_id: str):
    """("found", leaf_index, leaf_hash), ("absent",) or ("invalid", reason); `proof` as an
    object or as its JSON text."""
    if isinstance(proof, str):
        proof = json.loads(proof)
    if not _is_hex(record_id, 32):
        return ("invalid", "record id")
    if not isinstance(proof, dict) or sorted(proof) != ["bits", "bucket", "entries", "path"]:
        return ("invalid", "proof keys")
    bits, bucket, entries, path = proof["bits"], proof["bucket"], proof["entries"], proof["path"]
    if not _is_int(bits) or bits < 0 or bits > 24:
        return ("invalid", "bits")
    if not _is_int(bucket) or bucket < 0 or bucket >= 2 ** bits:
        return ("invalid", "bucket")

    def bucket_of(rid: str) -> int:
        return int(rid, 16) // 2 ** (128 - bits)

    if bucket_of(record_id) != bucket:
        return ("invalid", "record in another bucket")
    if not isinstance(entries, list) or not isinstance(path, list):
        return ("invalid", "lists")
    content = b"\x00"
    keys = []
    for e in entries:
        if not (isinstance(e, list) and len(e) == 3 and _is_hex(e[0], 32) and _is_int(e[1])
                and 0 <= e[1] < 2 ** 64 and _is_hex(e[2], 64)):
            return ("invalid", "entry")
        if bucket_of(e[0]) != bucket:
            return ("invalid", "entry in another bucket")
        keys.append(int(e[0], 16))
        content += bytes.fromhex(e[0]) + e[1].to_bytes(8, "big") + bytes.fromhex(e[2])
    if any(a >= b for a, b in zip(keys, keys[1:])):
        return ("invalid", "order")
    if not all(_is_hex(p, 64) for p in path):
        return ("invalid", "path")
    if not verify_inclusion(bucket, 2 ** bits, HASH(content), [bytes.fromhex(p) for p in path], map_root):
        return ("invalid", "root")
    for e in entries:
        if e[0] == record_id:
            return ("found", e[1], bytes.fromhex(e[2]))
    return ("absent",)


def map_root_of(entries: dict[str, tuple[int, bytes]], bits: int) -> bytes:
    """The map root straight from the spec: every bucket's content hashed, then MTH."""
    buckets: list[list[str]] = [[] for _ in range(2 ** bits)]
    for rid in entries:
        buckets[int(rid, 16) // 2 ** (128 - bits)].append(rid)
    hashes = []
    for ids in buckets:
        content = b"\x00" + b"".join(bytes.fromhex(r) + entries[r][0].to_bytes(8, "big") + entries[r][1]
                                     for r in sorted(ids))
        hashes.append(HASH(content))
    return mth(hashes)


# -- C2SP signed-note, Ed25519 ----------------------------------------------------------------
def open_note(note: str, vkey: str) -> str | None:
    """The note's text if a signature by the verifier key's Ed25519 key verifies and none by it
    fails; else None."""
    name, _, rest = vkey.partition("+")
    id_hex, _, key_b64 = rest.partition("+")
    try:
        key = base64.b64decode(key_b64, validate=True)
        key_id = bytes.fromhex(id_hex)
    except ValueError:
        return None
    if len(key) != 33 or key[0] != 1 or len(key_id) != 4:
        return None
    if HASH(name.encode() + b"\n" + key)[:4] != key_id:
        return None
    public = Ed25519PublicKey.from_public_bytes(key[1:])
    if "\n\n" not in note:
        return None
    at = note.rindex("\n\n")
    text, signature_block = note[:at + 1], note[at + 2:]
    if not signature_block.endswith("\n"):
        return None
    ok = False
    for line in signature_block[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            return None
        signer, _, sig_b64 = line[2:].partition(" ")
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except ValueError:
            return None
        if signer != name or sig[:4] != key_id:
            continue
        try:
            public.verify(sig[4:], text.encode())
        except InvalidSignature:
            return None
        ok = True
    return text if ok else None


def read_checkpoint(text: str) -> tuple[str, int, bytes, list[str]]:
    """(origin, size, root, extensions) of a checkpoint's note text (tlog-checkpoint)."""
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert len(lines) >= 3 and all(lines)
    assert lines[1] == "0" or (lines[1].isascii() and lines[1].isdigit() and lines[1][0] != "0")
    return lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True), lines[3:]

