import base64
import copy
import datetime as dt
import hashlib
import json
import stat

import numpy as np
import pyarrow as pa
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws

from base.errors import ConfigError, VerificationError
from catalog.signing.canonical import canonical_json
from catalog.signing.keys import KeyStore, tree_head_payload
from catalog.signing.merkle import MerkleTree, leaf_hashes
from trust.heads import STH_TYP, head_hash
from trust.verify import VERIFY_STEPS, make_bundle, verify_bundle

PASS = b"correct horse battery staple"
ISSUED = dt.datetime(2026, 11, 21, 20, 0, 0, 123, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path):
    keys = KeyStore(tmp_path / "keys", PASS)
    keys.create()                 # keys are made only on purpose (`exchange keys create`)
    return keys


@pytest.fixture
def published(store, tmp_path):
    """A small dataset version: table -> canonical JSON -> Merkle tree -> signed head -> JWKS."""
    table = pa.table({
        "licence_number": ["91310000MA1FL0001X", "91310000MA1FL0002Y", "粤B-2020-003", "x\"\\\n"],
        "holder_name": ["上海某某科技有限公司", "張三", None, "O'Brien"],
        "issue_date": pa.array([dt.date(2020, 1, 2), dt.date(2021, 3, 4), None, dt.date(1999, 12, 31)]),
        "valid_to": pa.array([None, dt.date(2031, 3, 3), None, None], pa.date32()),
        "revoked": [False, True, None, False],
        "seq": [1, 2, 3, 2**53 - 1],
        "record_id": [f"rec-{i}" for i in range(4)],   # as in the exchange: the id is a signed field
    })
    tree = MerkleTree.build(leaf_hashes(canonical_json(table)))
    head = store.sign_tree_head(tree_head_payload("business_licence.smr", 3, tree.size, tree.root, ISSUED, None))
    store.write_jwks(tmp_path / "jwks.json")
    rows = table.to_pylist()
    bundles = [make_bundle(f"rec-{i}", "business_licence.smr", 3, i, tree.size, tree.inclusion_proof(i),
                           row, head, "valid") for i, row in enumerate(rows)]
    return {"tree": tree, "head": head, "bundles": bundles, "jwks": json.loads((tmp_path / "jwks.json").read_text())}


def step_of(bundle, jwks):
    with pytest.raises(VerificationError) as exc:
        verify_bundle(bundle, jwks)
    return exc.value.step


# -- keys ----------------------------------------------------------------------------------
def test_key_file_is_encrypted_and_private(store):
    key = store.signer()
    files = {p.name: p for p in store.directory.iterdir()}
    pem = files[f"{key.kid}.pem"].read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    raw = key.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    body = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    assert raw not in pem and raw not in body
    assert stat.S_IMODE(files[f"{key.kid}.pem"].stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    [entry] = json.loads(files["keys.json"].read_text())
    assert entry == {"kid": key.kid, "created_at": entry["created_at"], "status": "active", "compromised_at": None}


def _kdf(pem_path) -> str:
    """What `openssl asn1parse` says of an encrypted PKCS#8 file (independent of our code)."""
    import subprocess
    return subprocess.run(["openssl", "asn1parse", "-in", str(pem_path)], capture_output=True,
                          text=True, check=True).stdout


def test_key_file_kdf_is_pbkdf2_sha256_at_600000_rounds(store):
    kid = store.signer().kid
    parsed = _kdf(store.directory / f"{kid}.pem")
    assert ":PBES2" in parsed and ":PBKDF2" in parsed and ":hmacWithSHA256" in parsed
    assert ":aes-256-cbc" in parsed
    rounds = [int(line.rsplit(":", 1)[1], 16) for line in parsed.splitlines() if "prim: INTEGER" in line]
    assert rounds == [600_000]


def test_signing_never_mints_a_key(tmp_path):
    empty = KeyStore(tmp_path / "keys", PASS)
    for act in (empty.signer, lambda: empty.sign_tree_head(tree_head_payload("d", 1, 0, b"\0" * 32, ISSUED, None)),
                empty.jwks):
        with pytest.raises(ConfigError, match=r"^no signing key in .*: run `exchange keys create`"):
            act()
    assert not list((tmp_path / "keys").glob("*.pem")) and empty.manifest() == []


def test_create_makes_the_first_key_once(tmp_path):
    keys = KeyStore(tmp_path / "keys", PASS)
    kid = keys.create()
    assert keys.signer().kid == kid and [e["kid"] for e in keys.manifest()] == [kid]
    with pytest.raises(ConfigError, match="already has a signing key.*rotate"):
        keys.create()
    assert keys.create(exist_ok=True) is None and len(keys.manifest()) == 1


def _weak_key(directory) -> str:
    """A key as the exchange wrote them before: PKCS#8 with BestAvailableEncryption (2,048 rounds)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from joserfc.jwk import OKPKey

    raw = Ed25519PrivateKey.generate()
    kid = OKPKey.import_key(raw).thumbprint()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / f"{kid}.pem").write_bytes(raw.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(PASS)))
    (directory / "keys.json").write_text(json.dumps([{"kid": kid, "created_at": "2025-01-01T00:00:00Z",
                                                      "status": "active", "compromised_at": None}]))
    return kid


def test_old_keys_stay_readable_and_are_reencrypted(tmp_path):
    kid = _weak_key(tmp_path / "keys")
    assert "INTEGER           :0800" in _kdf(tmp_path / "keys" / f"{kid}.pem")      # 2,048 rounds
    keys = KeyStore(tmp_path / "keys", PASS)
    head = keys.sign_tree_head(tree_head_payload("d", 1, 0, b"\0" * 32, ISSUED, None))
    assert keys.reencrypt() == [kid]
    assert "INTEGER           :0927C0" in _kdf(tmp_path / "keys" / f"{kid}.pem")    # 600,000
    assert stat.S_IMODE((tmp_path / "keys" / f"{kid}.pem").stat().st_mode) == 0o600
    again = KeyStore(tmp_path / "keys", PASS)
    assert again.signer().kid == kid and again.reencrypt() == []
    token = jc_jws.JWS()
    token.deserialize(head)                                     # the same key: old heads still verify
    token.verify(jc_jwk.JWK(**again.jwks()["keys"][0]), alg="EdDSA")

    rotated = tmp_path / "rotated"
    old = _weak_key(rotated)
    new = KeyStore(rotated, PASS).rotate()                     # a rotation re-encrypts the old keys too
    for k in (old, new):
        assert "INTEGER           :0927C0" in _kdf(rotated / f"{k}.pem")


def test_kid_is_the_rfc7638_thumbprint(store):
    key = store.signer()
    jwk = store.jwks()["keys"][0]
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"))
    want = base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()
    assert key.kid == jwk["kid"] == want
    assert jwk == {"kty": "OKP", "crv": "Ed25519", "x": jwk["x"], "kid": want, "alg": "EdDSA", "use": "sig"}


def test_reopen_with_passphrase_and_refuse_a_wrong_one(store):
    kid = store.signer().kid
    assert KeyStore(store.directory, PASS).signer().kid == kid
    with pytest.raises(ConfigError) as exc:
        KeyStore(store.directory, b"wrong passphrase").signer()
    assert str(exc.value) == (f"the signing key in {store.directory} could not be decrypted: "
                              "check EXCHANGE_KEY_PASSPHRASE")
    assert "wrong passphrase" not in str(exc.value) and exc.value.__cause__ is None
    with pytest.raises(ConfigError):
        KeyStore(store.directory, b"")


def test_a_key_given_from_elsewhere_signs_without_a_key_directory(store, tmp_path):
    kid = store.signer().kid
    pem = (store.directory / f"{kid}.pem").read_bytes()
    given = KeyStore(tmp_path / "no-keys-here", PASS, signing_pem=pem, signing_from="EXCHANGE_SIGNING_KEY")
    assert given.signer().kid == kid and given.manifest() == [] and not given.has_directory_keys()
    signed = given.sign_tree_head(tree_head_payload("d", 1, 5, b"\x11" * 32, ISSUED, None))
    assert json.loads(base64.urlsafe_b64decode(signed.split(".")[0] + "=="))["kid"] == kid
    with pytest.raises(ConfigError, match="^EXCHANGE_SIGNING_KEY could not be decrypted: check EXCHANGE_KEY"):
        KeyStore(tmp_path / "k", b"wrong passphrase", signing_pem=pem, signing_from="EXCHANGE_SIGNING_KEY").signer()
    plain = store.signer().private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    with pytest.raises(ConfigError, match="is not an encrypted PKCS#8 PEM"):   # never a key in the clear
        KeyStore(tmp_path / "k", PASS, signing_pem=plain, signing_from="EXCHANGE_SIGNING_KEY").signer()
    assert not (tmp_path / "no-keys-here").exists()                              # nothing minted


def test_jws_verifies_with_jwcrypto_against_the_written_jwks(store, tmp_path):
    payload = tree_head_payload("d", 1, 5, b"\x11" * 32, ISSUED, "a.b.c")
    signed = store.sign_tree_head(payload)
    store.write_jwks(tmp_path / "jwks.json")
    keyset = jc_jwk.JWKSet.from_json((tmp_path / "jwks.json").read_text())
    token = jc_jws.JWS()
    token.deserialize(signed)
    header = token.jose_header
    assert header == {"alg": "EdDSA", "kid": store.signer().kid, "typ": STH_TYP}
    token.verify(keyset.get_key(header["kid"]), alg="EdDSA")
    assert token.payload == rfc8785.dumps(payload)


def test_tree_head_payload():
    p = tree_head_payload("d", 2, 7, b"\xab" * 32, ISSUED.astimezone(dt.timezone(dt.timedelta(hours=8))), "h.e.ad")
    assert p == {"dataset": "d", "version": 2, "tree_size": 7, "root_hash": "ab" * 32,
                 "issued_at": "2026-11-21T20:00:00Z",
                 "previous_head_hash": hashlib.sha256(b"h.e.ad").hexdigest()}
    assert head_hash("h.e.ad") == p["previous_head_hash"]
    assert tree_head_payload("d", 1, 0, b"\0" * 32, ISSUED, None)["previous_head_hash"] is None
    with pytest.raises(ValueError):
        tree_head_payload("d", 1, 0, b"\0" * 32, dt.datetime(2026, 1, 1), None)


def test_rotate_keeps_old_heads_verifiable(store, published):
    old = store.signer().kid
    new = store.rotate()
    assert new != old and store.signer().kid == new
    assert [k["kid"] for k in store.jwks()["keys"]] == [new, old]
    assert verify_bundle(published["bundles"][0], store.jwks()).kid == old  # old heads still verify
    later = store.sign_tree_head(tree_head_payload("d", 4, 1, b"\1" * 32, ISSUED, published["head"]))
    assert json.loads(base64.urlsafe_b64decode(later.split(".")[0] + "=="))["kid"] == new
    assert [e["status"] for e in store.manifest()] == ["retired", "active"]


def _forged_head(store, kid_store_dir, published):
    """What a thief of the old key can do: sign a head, backdated before the compromise."""
    thief = KeyStore(kid_store_dir, PASS)
    payload = tree_head_payload("business_licence.smr", 3, 4, b"\x99" * 32,
                                ISSUED - dt.timedelta(days=30), None)
    return thief.sign_tree_head(payload)


def test_compromised_key_heads_before_the_time_verify_later_ones_do_not(store, published, tmp_path):
    old = store.signer().kid
    forged = _forged_head(store, store.directory, published)  # signed by `old`, same key
    at = ISSUED + dt.timedelta(hours=1)
    store.mark_compromised(old, at)
    assert [e["status"] for e in store.manifest()] == ["compromised", "active"]
    jwks = store.jwks()
    assert old not in [k["kid"] for k in jwks["keys"]]  # stock verifiers fail closed
    assert step_of(published["bundles"][0], jwks) == 2

    # The exchange vouches only for the head it published before the compromise time.
    status_doc = store.sign_key_status({old: [head_hash(published["head"])]})
    v = verify_bundle(published["bundles"][0], jwks, status_doc)
    assert v.kid == old and v.compromised_key["compromised_at"] == "2026-11-21T21:00:00Z"
    bad = copy.deepcopy(published["bundles"][0])
    bad["signed_tree_head"] = forged  # backdated issued_at does not help the thief
    with pytest.raises(VerificationError, match="compromised from 2026-11-21T21:00:00Z.*may be forged") as exc:
        verify_bundle(bad, jwks, status_doc)
    assert exc.value.step == 2
    # A document that vouches for nothing: the old head stops verifying too.
    assert step_of(published["bundles"][0], jwks) == 2
    with pytest.raises(VerificationError, match="compromised"):
        verify_bundle(published["bundles"][0], jwks, store.sign_key_status({}))


def test_key_status_document_must_be_signed_by_a_jwks_key(store, published, tmp_path):
    old = store.signer().kid
    store.mark_compromised(old, ISSUED + dt.timedelta(hours=1))
    doc = store.sign_key_status({old: [head_hash(published["head"])]})
    h, p, sig = doc.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["keys"][0]["heads_before_compromise"].append("ab" * 32)
    tampered = f"{h}.{base64.urlsafe_b64encode(rfc8785.dumps(payload)).rstrip(b'=').decode()}.{sig}"
    with pytest.raises(VerificationError, match="key status document") as exc:
        verify_bundle(published["bundles"][0], store.jwks(), tampered)
    assert exc.value.step == 2
    other = KeyStore(tmp_path / "other", PASS)
    other.create()
    with pytest.raises(VerificationError, match="key status document"):
        verify_bundle(published["bundles"][0], store.jwks(), other.sign_key_status({}))


def test_compromise_time_only_moves_earlier(store):
    kid = store.signer().kid
    store.mark_compromised(kid, ISSUED)
    store.mark_compromised(kid, ISSUED + dt.timedelta(days=1))  # later: ignored
    assert store.manifest()[0]["compromised_at"] == "2026-11-21T20:00:00Z"
    store.mark_compromised(kid, ISSUED - dt.timedelta(days=1))
    assert store.manifest()[0]["compromised_at"] == "2026-11-20T20:00:00Z"
    new = store.signer().kid
    store.mark_compromised(new)
    entries = store.manifest()
    assert [e["status"] for e in entries] == ["compromised", "compromised", "active"]
    with pytest.raises(ConfigError, match="known:"):
        store.mark_compromised("nope")


def test_status_step_runs_only_online(published):
    b = published["bundles"][0]
    assert verify_bundle(b, published["jwks"]).steps == (1, 2, 3, 4, 5, 6)
    ok = verify_bundle(b, published["jwks"], status_of=lambda _: {"status": "valid"})
    assert ok.steps == (1, 2, 3, 4, 5, 6, 8) and ok.status == {"status": "valid"}
    revoked = {"status": "revoked", "since": "2026-12-01T00:00:00+00:00", "reason": "cancelled"}
    with pytest.raises(VerificationError, match="revoked since 2026-12-01.*cancelled") as exc:
        verify_bundle(b, published["jwks"], status_of=lambda _: revoked)
    assert (exc.value.step, exc.value.step_name) == (8, "record still valid (online only)")


def test_status_step_says_when_the_exchange_does_not_know_the_copy(published):
    from base.errors import UnknownCopy

    def status_of(_):
        raise UnknownCopy("unknown copy: version 3 holds record rec-0 with another leaf hash")

    with pytest.raises(VerificationError, match="does not know this copy.*unknown copy") as exc:
        verify_bundle(published["bundles"][0], published["jwks"], status_of=status_of)
    assert exc.value.step == 8


# -- verification --------------------------------------------------------------------------
def test_every_bundle_verifies(published):
    assert [n for n, _ in VERIFY_STEPS] == [1, 2, 3, 4, 5, 6, 7, 8]
    for i, b in enumerate(published["bundles"]):
        v = verify_bundle(json.loads(json.dumps(b)), published["jwks"])
        assert v.steps == (1, 2, 3, 4, 5, 6) and v.record_id == f"rec-{i}"
        assert v.head["root_hash"] == published["tree"].root.hex() and v.head["version"] == 3


def test_tampered_record_fails_at_step_5(published):
    b = copy.deepcopy(published["bundles"][1])
    b["record"]["holder_name"] = "李四"
    assert step_of(b, published["jwks"]) == 5
    b["leaf_hash"] = hashlib.sha256(b"\0" + rfc8785.dumps(b["record"])).hexdigest()
    assert step_of(b, published["jwks"]) == 6  # a consistent forgery still cannot reach the root


def test_tampered_tree_head_payload_fails_at_step_3(published):
    b = copy.deepcopy(published["bundles"][0])
    h, p, s = b["signed_tree_head"].split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["root_hash"] = "00" * 32
    p = base64.urlsafe_b64encode(rfc8785.dumps(payload)).rstrip(b"=").decode()
    b["signed_tree_head"] = f"{h}.{p}.{s}"
    with pytest.raises(VerificationError, match="may have been altered"):
        verify_bundle(b, published["jwks"])
    assert step_of(b, published["jwks"]) == 3


def test_unknown_kid_fails_at_step_2(published, tmp_path):
    other = KeyStore(tmp_path / "other", PASS)
    other.create()
    with pytest.raises(VerificationError, match="fetch the current JWKS") as exc:
        verify_bundle(published["bundles"][0], other.jwks())
    assert exc.value.step == 2 and exc.value.step_name == "signing key known and not compromised"


def test_wrong_leaf_index_or_altered_path_fails_at_step_6(published):
    b = copy.deepcopy(published["bundles"][2])
    b["leaf_index"] = 1
    assert step_of(b, published["jwks"]) == 6
    b = copy.deepcopy(published["bundles"][2])
    b["audit_path"][0] = ("0" if b["audit_path"][0][0] != "0" else "1") + b["audit_path"][0][1:]
    assert step_of(b, published["jwks"]) == 6
    b = copy.deepcopy(published["bundles"][2])
    b["audit_path"].append("00" * 32)
    assert step_of(b, published["jwks"]) == 6


def test_bundle_claiming_another_version_fails_at_step_4(published):
    for field, value in (("version", 4), ("dataset", "other"), ("tree_size", 5)):
        b = copy.deepcopy(published["bundles"][0])
        b[field] = value
        with pytest.raises(VerificationError, match=f"the bundle says {field} ") as exc:
            verify_bundle(b, published["jwks"])
        assert exc.value.step == 4


def test_outer_record_id_must_be_the_signed_one(published):
    """The bundle's own record_id is a label: another record's id there is refused, naming the
    step and the field, though the record, the path and the head are all genuine."""
    b = copy.deepcopy(published["bundles"][0])
    b["record_id"] = published["bundles"][1]["record_id"]
    with pytest.raises(VerificationError, match=r"record_id 'rec-1'.*signed record is 'rec-0'") as exc:
        verify_bundle(b, published["jwks"])
    assert (exc.value.step, exc.value.step_name) == (4, "the bundle's fields match what is signed")
    b["record_id"] = "0" * 32
    assert step_of(b, published["jwks"]) == 4
    del b["record"]["record_id"]     # a record that does not name itself cannot be told apart
    b["leaf_hash"] = hashlib.sha256(b"\0" + rfc8785.dumps(b["record"])).hexdigest()
    with pytest.raises(VerificationError, match="the signed record has no record_id") as exc:
        verify_bundle(b, published["jwks"])
    assert exc.value.step == 4


def test_verified_names_the_signed_record_and_lists_unsigned_fields(published):
    b = copy.deepcopy(published["bundles"][2])
    b.update(status_since="2026-01-01T00:00:00+00:00", status_reason=None, note="hello")
    v = verify_bundle(b, published["jwks"])
    assert (v.record_id, v.leaf_index) == (b["record"]["record_id"], 2)
    assert v.unsigned == {"note": "hello", "status": "valid", "status_since": "2026-01-01T00:00:00+00:00",
                          "status_reason": None}


def _flip_signature(signed: str) -> str:
    h, p, sig = signed.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[10] ^= 0x01
    return f"{h}.{p}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def _resign_with_another_key(signed: str) -> str:
    """The same header (same kid) and payload, signed by an Ed25519 key that is not the kid's."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    h, p, _ = signed.split(".")
    sig = Ed25519PrivateKey.generate().sign(f"{h}.{p}".encode())
    return f"{h}.{p}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


@pytest.mark.parametrize("tamper", [_flip_signature, _resign_with_another_key])
def test_signature_only_tamper_fails_at_step_3(published, tamper):
    """The payload is intact, so steps 4-6 would pass: only the signature check stands in the way."""
    b = copy.deepcopy(published["bundles"][1])
    b["signed_tree_head"] = tamper(b["signed_tree_head"])
    assert b["signed_tree_head"].split(".")[:2] == published["head"].split(".")[:2]
    assert b["signed_tree_head"] != published["head"]
    with pytest.raises(VerificationError, match="signature is not valid") as exc:
        verify_bundle(b, published["jwks"])
    assert (exc.value.step, exc.value.step_name) == (3, "tree head signature valid")


def test_leaf_index_is_bound_by_the_audit_path():
    """Why the bundle's leaf_index needs no signature of its own: RFC 9162's path from any other
    index of the same tree does not lead to the root (step 6)."""
    from trust.merkle import root_from_inclusion_proof

    for size in range(1, 18):
        tree = MerkleTree.build(np.frombuffer(hashlib.sha256(bytes([size])).digest() * size, np.uint8)
                                .reshape(size, 32) ^ np.arange(size, dtype=np.uint8)[:, None])
        for i in range(size):
            proof, leaf = tree.inclusion_proof(i), tree.leaf(i)
            assert root_from_inclusion_proof(i, size, leaf, proof) == tree.root
            for j in set(range(size)) - {i}:
                try:
                    assert root_from_inclusion_proof(j, size, leaf, proof) != tree.root, (size, i, j)
                except ValueError:
                    pass


@pytest.mark.parametrize("change", [
    lambda b: b.pop("audit_path"),
    lambda b: b.update(format="exchange-record-bundle/2"),
    lambda b: b.update(version="3"),
    lambda b: b.update(leaf_index=True),
    lambda b: b.update(leaf_index=-1),
    lambda b: b.update(audit_path=["XYZ"]),
    lambda b: b["record"].update(amount=1.5),
    lambda b: b["record"].update(nested={"a": 1}),
    lambda b: b.update(signed_tree_head="not a jws"),
    lambda b: b.update(signed_tree_head="bm90IGpzb24.e30.AAAA"),  # header "not json"
])
def test_malformed_bundles_fail_at_step_1(published, change):
    b = copy.deepcopy(published["bundles"][0])
    change(b)
    assert step_of(b, published["jwks"]) == 1
    assert step_of("not a bundle", published["jwks"]) == 1


def test_outsider_verifies_with_jwcrypto_hashlib_and_rfc8785_only(published):
    """What a consumer does without our code, with another JOSE library than the doc's recipe
    (PyJWT: tests/integration/trust/test_verification_doc.py runs the doc itself)."""
    bundle = json.loads(json.dumps(published["bundles"][1]))
    keyset = jc_jwk.JWKSet.from_json(json.dumps(published["jwks"]))

    token = jc_jws.JWS()
    token.deserialize(bundle["signed_tree_head"])
    assert token.jose_header["alg"] == "EdDSA" and token.jose_header["typ"] == "exchange-sth+jws"
    token.verify(keyset.get_key(token.jose_header["kid"]), alg="EdDSA")
    head = json.loads(token.payload)
    assert (head["dataset"], head["version"], head["tree_size"]) == \
        (bundle["dataset"], bundle["version"], bundle["tree_size"])
    assert bundle["record_id"] == bundle["record"]["record_id"]

    r = hashlib.sha256(b"\x00" + rfc8785.dumps(bundle["record"])).digest()
    fn, sn = bundle["leaf_index"], bundle["tree_size"] - 1
    for p in map(bytes.fromhex, bundle["audit_path"]):
        assert sn > 0
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r.hex() == head["root_hash"]


def test_rotate_endorses_the_new_key_with_the_outgoing_one(store, tmp_path):
    old = store.signer().kid
    assert "endorsement" not in store.manifest()[0]                  # the first key: nobody to vouch
    new = store.rotate()
    token = store.manifest()[1]["endorsement"]
    verifier = jc_jws.JWS()
    verifier.deserialize(token)
    verifier.verify(jc_jwk.JWK(**store.public_jwk(old)))               # signed by the outgoing key
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==")) == {
        "alg": "EdDSA", "kid": old, "typ": "exchange-key-endorsement+jws"}
    claims = json.loads(verifier.payload)
    assert claims == {"kid": new, "jwk": store.public_jwk(new), "endorsed_by": old,
                      "issued_at": store.manifest()[1]["created_at"]}
    doc = store.sign_key_status({})
    listed = json.loads(base64.urlsafe_b64decode(doc.split(".")[1] + "=="))["keys"]
    assert [e.get("endorsement") for e in listed] == [None, token]
    store.mark_compromised(new)                                         # a replacement after a theft
    assert "endorsement" not in store.manifest()[2]                     # is not vouched for by the thief's key
