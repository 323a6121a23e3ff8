"""Trust in a peer exchange's signing keys: one key pinned out of band by its RFC 7638
thumbprint, later keys followed only through rotation endorsements chained from a pinned,
uncompromised key, compromise read from the peer's key status document (docs/verification.md,
"Key status"). Never trusts a key merely because the peer serves it today.

A pinned entry: {"kid", "jwk", "status", "pinned_by"} (`pinned_by`: "fingerprint", or the kid
of the key whose endorsement vouched for it), and for a compromised key `compromised_at` and
`heads_before_compromise` (the heads it signed that the peer still vouches for).
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from trust.checkpoint import verifier_key, verify_note
from trust.errors import VerificationError
from trust.heads import ALG, ENDORSEMENT_TYP, eddsa_allowed, head_hash
from trust.verify import _COMPACT, _b64json, _import_jwk, compromised_keys, head_payload_unverified, verify_tree_head

Json = dict[str, Any]
STATUSES = ("active", "retired", "compromised")


class PeerKeyError(VerificationError):
    """A peer's key or key document that the pinned keys do not vouch for (exit code 8)."""

    def __init__(self, message: str):
        super().__init__(2, "peer key pinned", message)
        self.args = (message,)


def _public(jwk: object, kid: object, where: str) -> Json:
    """The standard public JWK of an Ed25519 key whose RFC 7638 thumbprint is `kid`."""
    try:
        key = _import_jwk(jwk, kid, where)
    except VerificationError:
        raise PeerKeyError(f"密钥无效 (not an Ed25519 key) {kid}: the {where} entry is not a valid key") from None
    if key.thumbprint() != kid:
        raise PeerKeyError(f"密钥指纹不符 (thumbprint mismatch) {kid}: the {where} entry holds another key "
                           f"({key.thumbprint()})")
    return {**key.as_dict(private=False), "kid": kid, "alg": ALG, "use": "sig"}


def _header(token: object, what: str) -> Json:
    header = None
    if isinstance(token, str) and _COMPACT.fullmatch(token):
        try:
            header = _b64json(token.split(".")[0])
        except (ValueError, binascii.Error):
            pass
    if not isinstance(header, dict):
        raise PeerKeyError(f"{what}格式错误 (malformed): not a JWS in compact serialization")
    return header


def pin(fingerprint: str, jwks: Json, key_status: str | None) -> list[Json]:
    """The peer's key whose RFC 7638 thumbprint is `fingerprint` (given out of band), found in
    its JWKS, then followed through the key status document (follow)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise PeerKeyError(f"对端密钥集无效 (not a JWKS): no 'keys' list; cannot pin {fingerprint}")
    for i, jwk in enumerate(keys):
        try:
            public = _public(jwk, fingerprint, "JWKS")
        except PeerKeyError:
            continue
        status = "active" if i == 0 else "retired"   # the JWKS lists the active key first
        return follow([{"kid": fingerprint, "jwk": public, "status": status, "pinned_by": "fingerprint"}],
                      jwks, key_status)
    raise PeerKeyError(f"对端密钥集中没有该指纹的密钥 (no key with this fingerprint) {fingerprint}: "
                       "check the fingerprint given by the peer's operator (its kid, an RFC 7638 thumbprint)")


def _endorsed(token: str, kid: str, endorser: Json) -> Json:
    """The new key's public JWK from `endorser`'s endorsement of key `kid`."""
    try:
        key = _import_jwk(endorser["jwk"], endorser["kid"], "pinned")
        with eddsa_allowed():
            obj = jws.deserialize_compact(token, key, algorithms=[ALG])
        payload = json.loads(obj.payload)
    except (JoseError, ValueError, VerificationError):
        raise PeerKeyError(f"密钥背书无效 (endorsement does not verify) {kid}: not signed by "
                           f"{endorser['kid']}") from None
    if obj.headers().get("typ") != ENDORSEMENT_TYP or not isinstance(payload, dict) \
            or payload.get("kid") != kid or payload.get("endorsed_by") != endorser["kid"]:
        raise PeerKeyError(f"密钥背书无效 (not an endorsement of this key) {kid} by {endorser['kid']}")
    return _public(payload.get("jwk"), kid, "endorsement")


def _closure(trusted: dict[str, Json], endorsements: dict[str, str], bad: set[str]) -> dict[str, Json]:
    """The trusted keys and every key reached by endorsements from a trusted key not in `bad`."""
    found = dict(trusted)
    grew = True
    while grew:
        grew = False
        for kid, token in endorsements.items():
            if kid in found:
                continue
            by = _header(token, "密钥背书 (key endorsement) ").get("kid")
            if isinstance(by, str) and by in found and by not in bad:
                found[kid] = {"kid": kid, "jwk": _endorsed(token, kid, found[by]), "status": "active",
                              "pinned_by": by}
                grew = True
    return found


def follow(pinned: list[Json], jwks: Json, key_status: str | None) -> list[Json]:
    """The pinned keys, with the keys their endorsements (in the key status document) vouch for
    and the statuses that document gives. The document must be signed by a key trusted here;
    a key endorsed only by a key compromised now is not trusted unless it was pinned before.
    Without a document: the pinned keys as they are."""
    trusted: dict[str, Json] = {}
    for e in pinned:
        trusted[e["kid"]] = {**e, "jwk": _public(e.get("jwk"), e["kid"], "pinned")}
    _check_jwks(trusted, jwks)
    if key_status is None:
        return list(trusted.values())
    signer = _header(key_status, "密钥状态文档 (key status document) ").get("kid")
    listed = head_payload_unverified(key_status).get("keys")
    if not isinstance(listed, list) or not all(isinstance(e, dict) and isinstance(e.get("kid"), str)
                                               for e in listed):
        raise PeerKeyError(f"密钥状态文档格式错误 (malformed key status document) signed by {signer}")
    endorsements = {e["kid"]: e["endorsement"] for e in listed if isinstance(e.get("endorsement"), str)}
    was_bad = {k for k, e in trusted.items() if e.get("status") == "compromised"}
    reach = _closure(trusted, endorsements, was_bad)
    if not isinstance(signer, str) or signer not in reach or signer in was_bad:
        raise PeerKeyError(f"未固定的密钥 (unpinned key) {signer}: the key status document is signed by a key "
                           "no pinned key endorsed; refused (re-pin the peer with the fingerprint its operator "
                           "gives, if it really changed keys)")
    try:
        bad_entries = compromised_keys(key_status, {"keys": [reach[signer]["jwk"]]})   # verifies the document
    except VerificationError as e:
        raise PeerKeyError(f"密钥状态文档无效 (key status document does not verify) signed by {signer}: "
                           f"{e.detail}") from None
    bad = was_bad | set(bad_entries)
    reach = _closure(trusted, endorsements, bad)
    if signer not in reach:
        raise PeerKeyError(f"未固定的密钥 (unpinned key) {signer}: endorsed only by a key now compromised; "
                           "refused (re-pin the peer)")
    status = {e["kid"]: e.get("status") for e in listed}
    out = []
    for kid, entry in reach.items():
        entry = dict(entry)
        if status.get(kid) in STATUSES:
            entry["status"] = status[kid]
        if kid in bad_entries:
            entry.update(status="compromised", compromised_at=bad_entries[kid]["compromised_at"],
                         heads_before_compromise=list(bad_entries[kid]["heads_before_compromise"]))
        elif kid in was_bad:
            entry["status"] = "compromised"     # never trusted again because a document forgot it
        out.append(entry)
    return out


def _check_jwks(trusted: dict[str, Json], jwks: Json) -> None:
    """A JWKS entry named as a trusted key must hold that key."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for jwk in keys if isinstance(keys, list) else []:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if isinstance(kid, str) and kid in trusted:
            _public(jwk, kid, "JWKS")


def verify_peer_head(signed_head: str, pinned: list[Json]) -> Json:
    """The verified payload of a peer's signed tree head: PeerKeyError if its key is not pinned,
    or compromised and the head not among those the peer vouches for; VerificationError if the
    signature or the head is bad."""
    kid = _header(signed_head, "树头 (tree head) ").get("kid")
    entry = next((e for e in pinned if e.get("kid") == kid), None)
    if entry is None:
        raise PeerKeyError(f"未固定的密钥 (unpinned key) {kid}: the tree head is signed by a key no pinned key "
                           "vouches for; refused")
    if entry.get("status") == "compromised" and head_hash(signed_head) not in entry.get("heads_before_compromise", []):
        raise PeerKeyError(f"密钥已泄露 (compromised key) {kid}: compromised from {entry.get('compromised_at')} "
                           "and this tree head is not one the peer published with it before then; refused")
    payload, _ = verify_tree_head(signed_head, {"keys": [{**entry["jwk"], "kid": kid}]})
    return payload


def verify_peer_note(note: str, signed_head: str, pinned: list[Json]) -> None:
    """The C2SP signed note of a version (the checkpoint a mirror cosigns) verifies with the key
    that signed its JWS tree head (verify_peer_head first), under the key name its origin line
    gives (<EXCHANGE_LOG_ORIGIN>/<dataset>, the head's dataset); VerificationError otherwise."""
    kid = _header(signed_head, "树头 (tree head) ").get("kid")
    entry = next((e for e in pinned if e.get("kid") == kid), None)
    if entry is None:
        raise PeerKeyError(f"未固定的密钥 (unpinned key) {kid}: the checkpoint's key is not pinned; refused")
    x = str(entry["jwk"].get("x", ""))
    try:
        public = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
        name, _, dataset = note.split("\n", 1)[0].rpartition("/") if isinstance(note, str) else ("", "", "")
        if dataset != head_payload_unverified(signed_head).get("dataset"):
            raise ValueError(f"its origin line names another dataset ({dataset!r})")
        verify_note(note, verifier_key(name, public))
    except (ValueError, binascii.Error) as exc:
        raise VerificationError(3, "checkpoint signature valid",
                                f"检查点签名无效 (checkpoint not signed by {kid}): {exc}") from None
