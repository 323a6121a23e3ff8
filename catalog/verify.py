"""Offline verification of a record bundle, in numbered steps (docs/verification.md).

A bundle carries one record, its leaf index and audit path, and the signed tree head of the
dataset version. Anyone with the JWKS can check it; this module is one way to do so.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

import rfc8785
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from catalog.canonical import canonical_bytes, to_json_record
from catalog.keys import ALG, STH_TYP, eddsa_allowed
from catalog.merkle import leaf_hash, root_from_inclusion_proof
from exchange.errors import VerificationError

FORMAT = "exchange-record-bundle/1"
VERIFY_STEPS = [
    (1, "bundle well-formed"),
    (2, "signing key known"),
    (3, "tree head signature valid"),
    (4, "tree head matches the bundle"),
    (5, "record matches its leaf hash"),
    (6, "audit path leads to the signed root"),
]
_NAMES = dict(VERIFY_STEPS)
_HEX32 = re.compile(r"[0-9a-f]{64}")
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
_FIELDS = {"format": str, "record_id": str, "dataset": str, "version": int, "leaf_index": int,
           "tree_size": int, "audit_path": list, "leaf_hash": str, "record": dict,
           "signed_tree_head": str}
_HEAD_FIELDS = {"dataset": str, "version": int, "tree_size": int, "root_hash": str,
                "issued_at": str, "previous_head_hash": (str, type(None))}


@dataclass(frozen=True)
class VerifiedBundle:
    record_id: str
    record: dict
    head: dict  # the signed tree head payload
    kid: str
    steps: tuple[int, ...]


def make_bundle(record_id: str, dataset: str, version: int, leaf_index: int, tree_size: int,
                audit_path: list[bytes], record: dict, signed_tree_head: str, status: str) -> dict:
    record = to_json_record(record)
    return {"format": FORMAT, "record_id": record_id, "dataset": dataset, "version": version,
            "leaf_index": leaf_index, "tree_size": tree_size,
            "audit_path": [bytes(p).hex() for p in audit_path],
            "leaf_hash": leaf_hash(canonical_bytes(record)).hex(), "record": record,
            "signed_tree_head": signed_tree_head, "status": status}


def _fail(step: int, message: str):
    raise VerificationError(step, _NAMES[step], message)


def _typed(obj: dict, fields: dict, what: str, step: int) -> None:
    for name, typ in fields.items():
        if name not in obj:
            _fail(step, f"{what} has no {name!r}")
        value = obj[name]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            _fail(step, f"{what}: {name!r} has the wrong type ({type(value).__name__})")


def _b64json(segment: str):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _step1_well_formed(b) -> dict:
    if not isinstance(b, dict):
        _fail(1, "a bundle is a JSON object")
    if b.get("format") != FORMAT:
        _fail(1, f"unknown format {b.get('format')!r}; this verifier reads {FORMAT}")
    _typed(b, _FIELDS, "the bundle", 1)
    if "status" in b and not isinstance(b["status"], str):
        _fail(1, "the bundle: 'status' has the wrong type")
    if b["leaf_index"] < 0 or b["tree_size"] < 1:
        _fail(1, "leaf_index must be >= 0 and tree_size >= 1")
    hashes = b["audit_path"] + [b["leaf_hash"]]
    if not all(isinstance(h, str) and _HEX32.fullmatch(h) for h in hashes):
        _fail(1, "audit_path and leaf_hash hold SHA-256 hashes as 64 lowercase hex digits")
    try:
        if to_json_record(b["record"]) != b["record"]:
            raise ValueError("record values must be strings, integers, booleans or null")
    except ValueError as e:
        _fail(1, f"the record is not a flat record: {e}")
    if not _COMPACT.fullmatch(b["signed_tree_head"]):
        _fail(1, "signed_tree_head is not a JWS in compact serialization")
    try:
        header = _b64json(b["signed_tree_head"].split(".")[0])
    except (ValueError, binascii.Error):
        header = None
    if not isinstance(header, dict):
        _fail(1, "the JWS protected header of signed_tree_head is not a JSON object")
    return header


def _step2_key_known(header: dict, jwks) -> OKPKey:
    if header.get("alg") != ALG:
        _fail(2, f"the tree head is signed with alg {header.get('alg')!r}; only {ALG} is accepted")
    kid = header.get("kid")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        _fail(2, "the JWKS has no 'keys' list: fetch the current JWKS")
    jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None)
    if jwk is None:
        _fail(2, f"the tree head was not signed by a known key (kid {kid!r}): fetch the current JWKS")
    if jwk.get("alg", ALG) != ALG or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        _fail(2, f"the JWKS entry {kid!r} is not an Ed25519 key for {ALG}")
    try:
        return OKPKey.import_key({k: v for k, v in jwk.items() if k != "d"})
    except (JoseError, ValueError, TypeError):
        _fail(2, f"the JWKS entry {kid!r} is not a valid key")


def _step3_signature(signed_head: str, key: OKPKey) -> dict:
    try:
        with eddsa_allowed():
            obj = jws.deserialize_compact(signed_head, key, algorithms=[ALG])
    except (JoseError, ValueError):
        _fail(3, "the tree head signature is not valid: the tree head may have been altered")
    if obj.headers().get("typ") != STH_TYP:
        _fail(3, f"the signed object is not a tree head (typ is not {STH_TYP!r})")
    try:
        head = json.loads(obj.payload)
    except ValueError:
        head = None
    if not isinstance(head, dict):
        _fail(3, "the signed payload is not a JSON object")
    _typed(head, _HEAD_FIELDS, "the signed tree head", 3)
    if not _HEX32.fullmatch(head["root_hash"]):
        _fail(3, "the signed root_hash is not 64 lowercase hex digits")
    return head


def _step4_head_matches(b: dict, head: dict) -> None:
    for name in ("dataset", "version", "tree_size"):
        if b[name] != head[name]:
            _fail(4, f"the bundle says {name} {b[name]!r} but the signed tree head says "
                     f"{head[name]!r}: the bundle was put together wrongly or altered")


def _step5_leaf(b: dict) -> bytes:
    leaf = leaf_hash(rfc8785.dumps(b["record"]))
    if leaf.hex() != b["leaf_hash"]:
        _fail(5, "the record's hash differs from the bundle's leaf hash: the record may have been altered")
    return leaf


def _step6_inclusion(b: dict, leaf: bytes, head: dict) -> None:
    path = [bytes.fromhex(h) for h in b["audit_path"]]
    try:
        root = root_from_inclusion_proof(b["leaf_index"], b["tree_size"], leaf, path)
    except ValueError as e:
        _fail(6, f"{e}: leaf_index, tree_size or audit_path were altered")
    if root.hex() != head["root_hash"]:
        _fail(6, f"the audit path from leaf {b['leaf_index']} does not lead to the signed root: "
                 "the record is not in this version, or leaf_index or audit_path were altered")


def verify_bundle(bundle: dict, jwks: dict) -> VerifiedBundle:
    """Run steps 1-6; the first failure raises VerificationError(step, name, message)."""
    header = _step1_well_formed(bundle)
    key = _step2_key_known(header, jwks)
    head = _step3_signature(bundle["signed_tree_head"], key)
    _step4_head_matches(bundle, head)
    leaf = _step5_leaf(bundle)
    _step6_inclusion(bundle, leaf, head)
    return VerifiedBundle(bundle["record_id"], bundle["record"], head, header["kid"],
                          tuple(n for n, _ in VERIFY_STEPS))
