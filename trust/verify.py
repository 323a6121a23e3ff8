"""Offline verification of a record bundle, in numbered steps (docs/verification.md).

A bundle carries one record, its leaf index and audit path, and the signed tree head of the
dataset version. Anyone with the JWKS can check it; this module is one way to do so.
What is signed: the tree head (dataset, version, tree_size, root_hash, …) and, through the
Merkle path, the record with its own record_id. The bundle's other fields are labels: step 4
refuses a bundle whose labels contradict what is signed, and `VerifiedBundle.unsigned` holds
the fields nothing vouches for (status, status_since, …).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import rfc8785
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from trust.canonical import canonical_bytes, to_json_record
from trust.errors import NotFound, VerificationError
from trust.heads import ALG, KEY_STATUS_TYP, STH_TYP, eddsa_allowed, head_hash
from trust.merkle import leaf_hash, root_from_inclusion_proof
from trust.vmap import verify_map_proof

Json = dict[str, Any]                # a JSON object as json.loads gives it

FORMAT = "exchange-record-bundle/1"      # a record and its inclusion proof
FORMAT_LOG = "exchange-record-bundle/2"  # and its map proof: the latest state at the version
KEY_STATUS_FILE = "key-status.jws"   # published beside jwks.json
VERIFY_STEPS = [
    (1, "bundle well-formed"),
    (2, "signing key known and not compromised"),
    (3, "tree head signature valid"),
    (4, "the bundle's fields match what is signed"),
    (5, "record matches its leaf hash"),
    (6, "audit path leads to the signed root"),
    (7, "the record's latest state at this version"),
    (8, "record still valid (online only)"),
]
OFFLINE_STEPS = (1, 2, 3, 4, 5, 6)     # and 7 for a head that commits to a map (map_root)
_NAMES = dict(VERIFY_STEPS)
_HEX32 = re.compile(r"[0-9a-f]{64}")
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
_FIELDS: dict[str, type] = {"format": str, "record_id": str, "dataset": str, "version": int, "leaf_index": int,
           "tree_size": int, "audit_path": list, "leaf_hash": str, "record": dict,
           "signed_tree_head": str}
CHECKED_FIELDS = frozenset({*_FIELDS, "map_proof"})   # any other field of a bundle is unsigned and unchecked
_HEAD_FIELDS: dict[str, type | tuple[type, ...]] = {"dataset": str, "version": int, "tree_size": int, "root_hash": str,
                "issued_at": str, "previous_head_hash": (str, type(None))}


@dataclass(frozen=True)
class VerifiedBundle:
    record_id: str                    # the signed one: the record_id inside the record
    record: Json
    head: Json  # the signed tree head payload
    kid: str
    steps: tuple[int, ...]            # the steps that ran: 1-6, 7 for a log version, 8 when online
    status: Json | None = None        # step 8's answer: status, since, reason
    compromised_key: Json | None = None  # the key status entry, if the key is compromised now
    leaf_index: int | None = None     # bound to the signed root by the audit path (step 6)
    unsigned: Json | None = None      # the bundle's fields that nothing signed vouches for


def make_bundle(record_id: str, dataset: str, version: int, leaf_index: int, tree_size: int,
                audit_path: list[bytes], record: Json, signed_tree_head: str, status: str,
                map_proof: Json | None = None) -> Json:
    """A bundle: FORMAT_LOG with the map proof of a log version's head, else FORMAT."""
    record = to_json_record(record)
    out = {"format": FORMAT if map_proof is None else FORMAT_LOG, "record_id": record_id,
           "dataset": dataset, "version": version, "leaf_index": leaf_index, "tree_size": tree_size,
           "audit_path": [bytes(p).hex() for p in audit_path],
           "leaf_hash": leaf_hash(canonical_bytes(record)).hex(), "record": record,
           "signed_tree_head": signed_tree_head, "status": status}
    if map_proof is not None:
        out["map_proof"] = map_proof
    return out


def _fail(step: int, message: str) -> NoReturn:
    raise VerificationError(step, _NAMES[step], message)


def _typed(obj: Json, fields: Mapping[str, type | tuple[type, ...]], what: str, step: int) -> None:
    for name, typ in fields.items():
        if name not in obj:
            _fail(step, f"{what} has no {name!r}")
        value = obj[name]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            _fail(step, f"{what}: {name!r} has the wrong type ({type(value).__name__})")


def _b64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _step1_well_formed(b: object) -> Json:
    if not isinstance(b, dict):
        _fail(1, "a bundle is a JSON object")
    if b.get("format") not in (FORMAT, FORMAT_LOG):
        _fail(1, f"unknown format {b.get('format')!r}; this verifier reads {FORMAT} and {FORMAT_LOG}")
    _typed(b, _FIELDS, "the bundle", 1)
    if (b["format"] == FORMAT_LOG) != ("map_proof" in b):
        _fail(1, f"a bundle of format {FORMAT_LOG}, and only one, carries a map_proof")
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


def head_payload_unverified(signed: str) -> Json:
    """The payload of a compact JWS, NOT verified: for bookkeeping, never for trust."""
    try:
        payload = _b64json(signed.split(".")[1])
    except (ValueError, IndexError, binascii.Error):
        return {}
    return payload if isinstance(payload, dict) else {}


def _import_jwk(jwk: object, kid: object, where: str) -> OKPKey:
    if not isinstance(jwk, dict) or jwk.get("alg", ALG) != ALG or jwk.get("kty") != "OKP" \
            or jwk.get("crv") != "Ed25519":
        _fail(2, f"the {where} entry {kid!r} is not an Ed25519 key for {ALG}")
    try:
        return OKPKey.import_key({k: v for k, v in jwk.items() if k != "d"})
    except (JoseError, ValueError, TypeError):
        _fail(2, f"the {where} entry {kid!r} is not a valid key")


def _jwks_key(jwks: object, kid: object) -> OKPKey | None:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        _fail(2, "the JWKS has no 'keys' list: fetch the current JWKS")
    jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == kid), None)
    return None if jwk is None else _import_jwk(jwk, kid, "JWKS")


def read_key_status(path: str | Path) -> str | None:
    """The key status document at `path`, or None if there is none."""
    path = Path(path)
    return path.read_text(encoding="ascii").strip() if path.exists() else None


def compromised_keys(key_status: str | None, jwks: object) -> dict[str, Json]:
    """kid -> entry of every compromised key in a key status document (a JWS signed by a key of
    the JWKS, typ exchange-key-status+jws). No document: no compromised keys known."""
    if key_status is None:
        return {}
    try:
        parsed = _b64json(key_status.split(".")[0]) if _COMPACT.fullmatch(key_status) else None
        if not isinstance(parsed, dict):
            raise ValueError
        header: Json = parsed
        key = _jwks_key(jwks, header.get("kid"))
        if key is None or header.get("typ") != KEY_STATUS_TYP:
            raise ValueError
        with eddsa_allowed():
            doc = json.loads(jws.deserialize_compact(key_status, key, algorithms=[ALG]).payload)
        entries = {e["kid"]: e for e in doc["keys"] if e["status"] == "compromised"}
        for e in entries.values():
            if not (isinstance(e["compromised_at"], str) and isinstance(e["heads_before_compromise"], list)):
                raise ValueError
    except (JoseError, ValueError, TypeError, KeyError, binascii.Error):
        _fail(2, "the key status document is not signed by a key of the JWKS or is malformed: "
                 "fetch both again from the exchange")
    if header["kid"] in entries:
        _fail(2, "the key status document is signed by a compromised key: fetch it again")
    return entries


def _step2_key_known(header: Json, jwks: object, signed_head: str,
                     key_status: str | None) -> tuple[OKPKey, Json | None]:
    if header.get("alg") != ALG:
        _fail(2, f"the tree head is signed with alg {header.get('alg')!r}; only {ALG} is accepted")
    kid: Any = header.get("kid")
    bad = compromised_keys(key_status, jwks).get(kid)
    if bad is not None:
        if head_hash(signed_head) not in bad["heads_before_compromise"]:
            _fail(2, f"the signing key {kid} is compromised from {bad['compromised_at']} and this tree "
                     "head is not one the exchange published with it before then: it may be forged; "
                     "ask the exchange for the record again")
        return _import_jwk(bad.get("jwk"), kid, "key status"), bad
    key = _jwks_key(jwks, kid)
    if key is None:
        _fail(2, f"the tree head was not signed by a known key (kid {kid!r}): fetch the current JWKS "
                 "and key status document (a compromised key is listed only in the latter)")
    return key, None


def _step3_signature(signed_head: str, key: OKPKey) -> Json:
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


def _step4_fields_match(b: Json, head: Json) -> None:
    """The bundle's labels against what is signed: dataset, version and tree_size against the
    tree head; record_id against the record's own (steps 5-6 prove that record is in the tree)."""
    for name in ("dataset", "version", "tree_size"):
        if b[name] != head[name]:
            _fail(4, f"the bundle says {name} {b[name]!r} but the signed tree head says "
                     f"{head[name]!r}: the bundle was put together wrongly or altered")
    if "record_id" not in b["record"]:
        _fail(4, "the signed record has no record_id: nothing signed says which record this is")
    if b["record_id"] != b["record"]["record_id"]:
        _fail(4, f"the bundle says record_id {b['record_id']!r} but the signed record is "
                 f"{b['record']['record_id']!r}: the bundle's label was altered; trust neither it nor "
                 "the bundle, and ask the exchange for the record again")


def _step5_leaf(b: Json) -> bytes:
    leaf = leaf_hash(rfc8785.dumps(b["record"]))
    if leaf.hex() != b["leaf_hash"]:
        _fail(5, "the record's hash differs from the bundle's leaf hash: the record may have been altered")
    return leaf


def _step6_inclusion(b: Json, leaf: bytes, head: Json) -> None:
    path = [bytes.fromhex(h) for h in b["audit_path"]]
    try:
        root = root_from_inclusion_proof(b["leaf_index"], b["tree_size"], leaf, path)
    except ValueError as e:
        _fail(6, f"{e}: leaf_index, tree_size or audit_path were altered")
    if root.hex() != head["root_hash"]:
        _fail(6, f"the audit path from leaf {b['leaf_index']} does not lead to the signed root: "
                 "the record is not in this version, or leaf_index or audit_path were altered")


def _step7_latest(b: Json, leaf: bytes, head: Json) -> bool:
    """A head that commits to a map (map_root): the map proof must show this leaf as the record's
    latest state at the version (trust/vmap.py). A head without one (before the log): not run."""
    if "map_root" not in head:
        if "map_proof" in b:
            _fail(7, "the bundle carries a map proof but the signed head commits to no map")
        return False
    if "map_proof" not in b:
        _fail(7, "the signed head commits to a map of the records' latest states but the bundle has no "
                 "map_proof: it cannot show this is the record's latest state; ask for the bundle again")
    if not isinstance(head["map_root"], str) or not _HEX32.fullmatch(head["map_root"]):
        _fail(7, "the signed map_root is not 64 lowercase hex digits")
    try:
        found = verify_map_proof(b["map_proof"], bytes.fromhex(head["map_root"]), b["record"]["record_id"])
    except ValueError as e:
        _fail(7, f"the map proof does not verify: {e}")
    if found is None:
        _fail(7, "the signed map has no entry for this record at this version")
    index, latest = found
    if index != b["leaf_index"] or latest != leaf:
        _fail(7, f"the record's latest state at version {head['version']} is leaf {index}, not leaf "
                 f"{b['leaf_index']}: this copy was superseded (revoked, changed or withdrawn)")
    return True


def _step8_status(b: Json, status_of: Callable[[Json], Json]) -> Json:
    """`status_of` gets the bundle after steps 1-7: its record_id, version and leaf_hash are then
    the signed ones."""
    try:
        st = status_of(b)
    except NotFound as e:
        _fail(8, f"the exchange does not know this copy of the record ({e}): it was not published "
                 "by the exchange whose status you asked")
    if st.get("status") != "valid":
        since = f" since {st['since']}" if st.get("since") else ""
        why = f" ({st['reason']})" if st.get("reason") else ""
        _fail(8, f"the record is {st.get('status')}{since}{why}: it is authentic but no longer "
                 "valid; ask the holder or the issuing department for a current record")
    return st


def verify_tree_head(signed_head: str, jwks: Json, key_status: str | None = None) -> tuple[Json, str]:
    """Steps 2-3 alone, for a tree head without a record: its verified payload and its kid."""
    header = None
    if isinstance(signed_head, str) and _COMPACT.fullmatch(signed_head):
        try:
            header = _b64json(signed_head.split(".")[0])
        except (ValueError, binascii.Error):
            pass
    if not isinstance(header, dict):
        _fail(1, "the tree head is not a JWS in compact serialization")
    key, _ = _step2_key_known(header, jwks, signed_head, key_status)
    return _step3_signature(signed_head, key), header["kid"]


def verify_bundle(bundle: Json, jwks: Json, key_status: str | None = None,
                  status_of: Callable[[Json], Json] | None = None) -> VerifiedBundle:
    """Run steps 1-6, 7 for a head with a map, and 8 if `status_of` (an online status look-up) is given; the first
    failure raises VerificationError(step, name, message). `key_status` is the exchange's
    signed key status document (compact JWS), needed to trust heads of a compromised key."""
    header = _step1_well_formed(bundle)
    key, compromised = _step2_key_known(header, jwks, bundle["signed_tree_head"], key_status)
    head = _step3_signature(bundle["signed_tree_head"], key)
    _step4_fields_match(bundle, head)
    leaf = _step5_leaf(bundle)
    _step6_inclusion(bundle, leaf, head)
    latest = _step7_latest(bundle, leaf, head)
    status = _step8_status(bundle, status_of) if status_of else None
    return VerifiedBundle(bundle["record"]["record_id"], bundle["record"], head, header["kid"],
                          OFFLINE_STEPS + ((7,) if latest else ()) + ((8,) if status_of else ()), status, compromised,
                          bundle["leaf_index"], unsigned_fields(bundle))


def label_unsigned(bundle: Json) -> Json:
    """The bundle with `unsigned`: the names of its fields no signature covers (itself among them).
    A reader's aid only: verifiers work the list out themselves (unsigned_fields)."""
    rest = {k: v for k, v in bundle.items() if k != "unsigned"}
    return {**rest, "unsigned": sorted({*unsigned_fields(rest), "unsigned"})}


def unsigned_fields(bundle: Json) -> Json:
    """The fields of a bundle that no signature covers and no step checks (status, …)."""
    return {k: v for k, v in bundle.items() if k not in CHECKED_FIELDS}
