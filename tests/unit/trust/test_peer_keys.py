"""A peer's keys pinned by fingerprint and followed only through rotation endorsements
(trust/peer_keys.py), with real KeyStores in tmp_path."""
from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
import rfc8785

from base.errors import VerificationError
from catalog.signing.keys import KeyStore, tree_head_payload
from trust.heads import head_hash
from trust.peer_keys import PeerKeyError, follow, pin, verify_peer_head

pytestmark = pytest.mark.federation
PASS = b"correct horse battery staple"
ISSUED = dt.datetime(2026, 11, 21, 20, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def peer(tmp_path):
    keys = KeyStore(tmp_path / "district", PASS)
    keys.create()
    return keys


def head(keys: KeyStore, version: int = 1, issued: dt.datetime = ISSUED) -> str:
    return keys.sign_tree_head(tree_head_payload("business_licence.smr", version, version, bytes([version]) * 32,
                                                 issued, None))


def served(keys: KeyStore, heads_before: dict | None = None) -> tuple[dict, str]:
    return keys.jwks(), keys.sign_key_status(heads_before or {})


def test_pin_by_fingerprint_and_refuse_an_unknown_one(peer):
    kid = peer.signer().kid
    pinned = pin(kid, *served(peer))
    assert pinned == [{"kid": kid, "jwk": peer.public_jwk(kid), "status": "active", "pinned_by": "fingerprint"}]
    assert verify_peer_head(head(peer), pinned)["version"] == 1
    refused = r"^对端密钥集中没有该指纹的密钥 \(no key with this fingerprint\) x{43}"
    with pytest.raises(PeerKeyError, match=refused) as exc:
        pin("x" * 43, *served(peer))
    assert exc.value.exit_code == 8 and isinstance(exc.value, VerificationError)


def test_a_jwks_entry_named_by_the_fingerprint_must_hold_that_key(peer, tmp_path):
    other = KeyStore(tmp_path / "other", PASS)
    other.create()
    jwks = other.jwks()
    jwks["keys"][0]["kid"] = peer.signer().kid       # another key under the pinned name
    with pytest.raises(PeerKeyError, match="no key with this fingerprint"):
        pin(peer.signer().kid, jwks, None)


def test_follow_one_and_two_rotations_through_endorsements(peer):
    first = peer.signer().kid
    pinned = pin(first, *served(peer))
    second = peer.rotate()
    entry = next(e for e in peer.manifest() if e["kid"] == second)
    assert entry["endorsement"].count(".") == 2
    doc = peer.sign_key_status({})
    listed = json.loads(base64.urlsafe_b64decode(doc.split(".")[1] + "=="))["keys"]
    assert [e.get("endorsement") for e in listed] == [None, entry["endorsement"]]
    claims = json.loads(base64.urlsafe_b64decode(entry["endorsement"].split(".")[1] + "=="))
    assert claims["kid"] == second and claims["endorsed_by"] == first and claims["jwk"] == peer.public_jwk(second)

    pinned = follow(pinned, peer.jwks(), doc)
    assert [(e["kid"], e["status"], e["pinned_by"]) for e in pinned] == [
        (first, "retired", "fingerprint"), (second, "active", first)]
    assert verify_peer_head(head(peer, 2), pinned)["version"] == 2

    third = peer.rotate()                     # two rotations at once: the chain is followed
    pinned2 = follow(pin(first, {"keys": [peer.public_jwk(first)]}, None), *served(peer))
    assert [(e["kid"], e["pinned_by"]) for e in pinned2] == [(first, "fingerprint"), (second, first), (third, second)]
    assert verify_peer_head(head(peer, 3), pinned2)["version"] == 3
    # pinning by a retired key's fingerprint follows the chain too
    assert [e["status"] for e in pin(first, *served(peer))] == ["retired", "retired", "active"]


def test_a_key_nobody_endorsed_is_refused(peer, tmp_path):
    pinned = pin(peer.signer().kid, *served(peer))
    rogue = KeyStore(tmp_path / "rogue", PASS)       # a fresh, unrelated key signs everything
    rogue.create()
    kid = rogue.signer().kid
    with pytest.raises(PeerKeyError, match=rf"^未固定的密钥 \(unpinned key\) {kid}: the tree head"):
        verify_peer_head(head(rogue), pinned)
    with pytest.raises(PeerKeyError, match=rf"^未固定的密钥 \(unpinned key\) {kid}: the key status document"):
        follow(pinned, *served(rogue))
    # its own "endorsement" of itself does not help: the endorser must be trusted
    with pytest.raises(PeerKeyError, match="unpinned key"):
        follow(pinned, rogue.jwks(), _with_endorsement(rogue, rogue.sign(
            {"kid": kid, "jwk": rogue.public_jwk(kid), "endorsed_by": kid, "issued_at": "2026-11-21T20:00:00Z"},
            "exchange-key-endorsement+jws")))


def _with_endorsement(keys: KeyStore, token: str) -> str:
    payload = {"issued_at": "2026-11-21T20:00:00Z",
               "keys": [{"kid": keys.signer().kid, "status": "active", "created_at": "2026-11-21T20:00:00Z",
                         "endorsement": token}]}
    return keys.sign(payload, "exchange-key-status+jws")


def test_a_key_status_document_by_an_unpinned_key_is_refused(peer, tmp_path):
    first = peer.signer().kid
    pinned = pin(first, *served(peer))
    peer.mark_compromised(first, ISSUED)              # the new active key has no endorsement
    with pytest.raises(PeerKeyError, match=r"unpinned key\) \S+: the key status document.*re-pin"):
        follow(pinned, *served(peer))


def test_the_document_must_verify(peer):
    first = peer.signer().kid
    peer.rotate()
    doc = peer.sign_key_status({})
    h, p, s = doc.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["keys"][0]["status"] = "active"
    forged = f"{h}.{base64.urlsafe_b64encode(rfc8785.dumps(payload)).rstrip(b'=').decode()}.{s}"
    with pytest.raises(PeerKeyError, match=r"^密钥状态文档无效 \(key status document does not verify\)"):
        follow(pin(first, peer.jwks(), None), peer.jwks(), forged)


def test_compromise_heads_inside_the_list_verify_others_do_not(peer):
    first = peer.signer().kid
    pinned = pin(first, *served(peer))
    second = peer.rotate()
    pinned = follow(pinned, *served(peer))
    old_key = KeyStore(peer.directory, PASS, signing_pem=(peer.directory / f"{first}.pem").read_bytes())
    published = head(old_key, 1)                                   # the peer published it before
    forged = head(old_key, 9, ISSUED - dt.timedelta(days=30))      # a thief's, backdated
    assert verify_peer_head(forged, pinned)["version"] == 9        # before the compromise is known
    peer.mark_compromised(first, ISSUED + dt.timedelta(hours=1))
    pinned = follow(pinned, *served(peer, {first: [head_hash(published)]}))
    old = next(e for e in pinned if e["kid"] == first)
    assert old["status"] == "compromised" and old["compromised_at"] == "2026-11-21T21:00:00Z"
    assert old["heads_before_compromise"] == [head_hash(published)]
    assert verify_peer_head(published, pinned)["version"] == 1
    with pytest.raises(PeerKeyError, match=rf"^密钥已泄露 \(compromised key\) {first}: compromised from"):
        verify_peer_head(forged, pinned)
    assert verify_peer_head(head(peer, 2), pinned)["version"] == 2   # the endorsed key still signs
    # a later document that forgets the compromise does not make the key trusted again
    again = follow(pinned, peer.jwks(), _forgetful(peer, second))
    assert next(e for e in again if e["kid"] == first)["status"] == "compromised"


def _forgetful(keys: KeyStore, active: str) -> str:
    return keys.sign({"issued_at": "2026-11-22T20:00:00Z",
                      "keys": [{"kid": active, "status": "active", "created_at": "2026-11-21T20:00:00Z"}]},
                     "exchange-key-status+jws")


def test_a_key_endorsed_only_by_a_compromised_key_is_refused_unless_pinned_before(peer):
    first = peer.signer().kid
    pinned = pin(first, *served(peer))
    second = peer.rotate()
    peer.mark_compromised(first, ISSUED)      # the mirror never saw the rotation before this
    with pytest.raises(PeerKeyError, match=rf"unpinned key\) {second}: endorsed only by a key now compromised"):
        follow(pinned, *served(peer))
    kids = [e["kid"] for e in follow(pin(second, peer.jwks(), None), *served(peer))]
    assert kids == [second]


def test_a_bad_signature_is_a_verification_error(peer):
    pinned = pin(peer.signer().kid, *served(peer))
    h, p, s = head(peer).split(".")
    with pytest.raises(VerificationError) as exc:
        verify_peer_head(f"{h}.{p}.{s[:-4]}AAAA", pinned)
    assert not isinstance(exc.value, PeerKeyError) and exc.value.step == 3


def test_the_checkpoint_note_must_be_signed_by_the_heads_pinned_key(peer, tmp_path):
    from trust.checkpoint import checkpoint_body
    from trust.peer_keys import verify_peer_note

    pinned = pin(peer.signer().kid, *served(peer))
    body = checkpoint_body("district.example/business_licence.smr", 1, bytes([1]) * 32, ["version 1"])
    note = peer.sign_note(body, "district.example")
    verify_peer_note(note, head(peer), pinned)
    with pytest.raises(VerificationError, match="checkpoint not signed by"):
        verify_peer_note(note.replace("\n1\n", "\n2\n", 1), head(peer), pinned)        # another size
    with pytest.raises(VerificationError, match="another dataset"):                     # another dataset
        verify_peer_note(peer.sign_note(body.replace(".smr", ".other"), "district.example"), head(peer), pinned)
    rogue = KeyStore(tmp_path / "rogue", PASS)
    rogue.create()
    with pytest.raises(VerificationError, match="checkpoint not signed by"):
        verify_peer_note(rogue.sign_note(body, "district.example"), head(peer), pinned)
