"""Ed25519 signing keys, the JWKS (RFC 7517) and signed tree heads (JWS, RFC 7515, alg EdDSA).

Layout of the key directory (0700):
  {kid}.pem   PKCS#8 private key encrypted with the passphrase (0600; PBKDF2-HMAC-SHA256 at
              600,000 rounds, AES-256-CBC: catalog/signing/key_files.py); kid = RFC 7638 thumbprint
  keys.json   manifest: [{kid, created_at, status, compromised_at[, endorsement]}], exactly one
              "active"; `endorsement`: the compact JWS by which the outgoing key vouched for a
              key made by `rotate` (typ exchange-key-endorsement+jws; peers follow rotations by it)
Keys are made only on purpose: `exchange keys create` (the first), `rotate`, `compromise`.
Signing never makes one (two machines would each sign with their own).
A machine without the key directory signs with the active key handed to it as one encrypted
PEM (`signing_pem`: EXCHANGE_SIGNING_KEY, EXCHANGE_SIGNING_KEY_FILE or the Airflow Variable
exchange_signing_key, see base/settings.py); what it signs with must be among the catalogue's
public keys (catalog/publish/key_status.py check_signer).
Statuses: active (signs), retired (still in the JWKS), compromised (left out of the JWKS, so
stock verifiers fail closed; listed in the signed key status document instead, with the heads
it signed before its compromise time: see docs/verification.md, "Key status").
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.jwk import OKPKey

from base import clock
from base.errors import ConfigError
from base.files import atomic_write
from catalog.signing import key_files
from trust.checkpoint import check_key_name, note_key_id, note_signature_line, verifier_key
from trust.cosign import cosignature_line, cosigner_vkey
from trust.heads import ALG, ENDORSEMENT_TYP, KEY_STATUS_TYP, STH_TYP, eddsa_allowed, head_hash, rfc3339

MANIFEST = "keys.json"
STATUSES = ("active", "retired", "compromised")


def tree_head_payload(dataset: str, version: int, tree_size: int, root: bytes,
                      issued_at: dt.datetime, previous_head: str | None) -> dict:
    if len(root) != 32:
        raise ValueError("a root hash is 32 bytes")
    return {"dataset": dataset, "version": int(version), "tree_size": int(tree_size),
            "root_hash": bytes(root).hex(), "issued_at": rfc3339(issued_at),
            "previous_head_hash": head_hash(previous_head) if previous_head else None}


def public_jwk(key: OKPKey) -> dict:
    return {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": ALG, "use": "sig"}


def keystore_for(settings) -> KeyStore:
    """The home's key store (base.settings.Settings), signing with the key given to this machine
    (EXCHANGE_SIGNING_KEY, EXCHANGE_SIGNING_KEY_FILE, the Airflow Variable exchange_signing_key)
    if any, else with the key directory's active key."""
    given = settings.signing_key()
    pem, where = given if given else (None, None)
    return KeyStore(settings.keys_dir, settings.key_passphrase(), signing_pem=pem, signing_from=where)


class PinnedSigner:
    """Detached JWS (RFC 7515 Appendix F) with one key: `header..signature` over exactly the bytes."""

    def __init__(self, key: OKPKey):
        self.key = key

    def sign_detached(self, body: bytes, typ: str) -> str:
        header = {"alg": ALG, "kid": self.key.kid, "typ": typ}
        with eddsa_allowed():
            protected, _, signature = jws.serialize_compact(header, body, self.key, algorithms=[ALG]).split(".")
        return f"{protected}..{signature}"


class KeyStore:
    def __init__(self, directory: Path, passphrase: bytes, signing_pem: bytes | None = None,
                 signing_from: str | None = None):
        """`signing_pem`: the active private key given from elsewhere than the directory (an
        encrypted PKCS#8 PEM, as a `{kid}.pem`); it then signs, and `signing_from` says where
        it came from (in messages). The manifest and the other keys stay the directory's."""
        if isinstance(passphrase, str):
            passphrase = passphrase.encode()
        if not passphrase:
            raise ConfigError("EXCHANGE_KEY_PASSPHRASE is empty: set a passphrase for the signing keys")
        self.directory = Path(directory)
        self._passphrase = passphrase
        self._cache: dict[str, OKPKey] = {}
        self._pem = signing_pem.encode() if isinstance(signing_pem, str) else signing_pem
        self.signing_from = (signing_from or "the signing key given") if signing_pem else None
        self._given: OKPKey | None = None

    def __repr__(self) -> str:
        return f"KeyStore({str(self.directory)!r})"

    # -- manifest ---------------------------------------------------------------------------
    def manifest(self) -> list[dict]:
        path = self.directory / MANIFEST
        if not path.exists():
            return []
        try:
            entries = json.loads(path.read_text())
            assert isinstance(entries, list) and all(e["status"] in STATUSES for e in entries)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise ConfigError(f"{path} is not a key manifest: restore it from a backup") from None
        active = [e for e in entries if e["status"] == "active"]
        if entries and len(active) != 1:
            raise ConfigError(f"{path} has {len(active)} active keys; exactly one must be active")
        return entries

    def _write_manifest(self, entries: list[dict]) -> None:
        atomic_write(self.directory / MANIFEST, json.dumps(entries, indent=2).encode() + b"\n")

    @contextlib.contextmanager
    def _locked(self):
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            self.directory.chmod(0o700)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # -- keys -------------------------------------------------------------------------------
    def _load(self, kid: str) -> OKPKey:
        if kid not in self._cache:
            path = self.directory / f"{kid}.pem"
            if not path.exists():
                raise ConfigError(f"the signing key {kid} is missing from {self.directory}: restore it from a backup")
            pem = path.read_bytes()
            try:
                raw = serialization.load_pem_private_key(pem, self._passphrase)
            except (ValueError, TypeError):
                raise ConfigError(f"the signing key in {self.directory} could not be decrypted: "
                                  "check EXCHANGE_KEY_PASSPHRASE") from None
            key = OKPKey.import_key(raw) if isinstance(raw, Ed25519PrivateKey) else None
            if key is None or key.thumbprint() != kid:
                raise ConfigError(f"{kid}.pem in {self.directory} does not hold the key its name says")
            self._cache[kid] = key
        return self._cache[kid]

    def _new_key(self, now: dt.datetime | None = None) -> dict:
        raw = Ed25519PrivateKey.generate()
        kid = OKPKey.import_key(raw).thumbprint()
        fd = os.open(self.directory / f"{kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_files.encrypt(raw, self._passphrase))
            os.fsync(f.fileno())
        return {"kid": kid, "created_at": rfc3339(now or clock.now()),
                "status": "active", "compromised_at": None}

    def _active(self) -> str:
        entries = self.manifest()
        if not entries:
            raise ConfigError(f"no signing key in {self.directory}: run `exchange keys create` once, "
                              "where the keys are kept, and give every other machine that signs that key "
                              "(EXCHANGE_SIGNING_KEY, EXCHANGE_SIGNING_KEY_FILE or the Airflow Variable "
                              "exchange_signing_key)")
        return next(e["kid"] for e in entries if e["status"] == "active")

    def create(self, exist_ok: bool = False) -> str | None:
        """The first signing key (`exchange keys create`); returns its kid. A store that has keys
        is refused (None with exist_ok): a new key replaces the active one only by `rotate`."""
        with self._locked():
            entries = self.manifest()
            if entries:
                if exist_ok:
                    return None
                raise ConfigError(f"{self.directory} already has a signing key "
                                  f"({self._active()}): use `exchange keys rotate` for a new one")
            entries = [self._new_key()]
            self._write_manifest(entries)
            return entries[0]["kid"]

    def signer(self) -> OKPKey:
        """The private key that signs (its `kid` is set): the one given (signing_pem), else the
        directory's active key. Never makes one: ConfigError if none."""
        if self._pem is not None:
            return self._given_key()
        return self._directory_signer()

    def _directory_signer(self) -> OKPKey:
        kid = self._active()
        key = self._load(kid)
        return OKPKey.import_key(key.raw_value, {"kid": kid})

    def _given_key(self) -> OKPKey:
        if self._given is None:
            assert self._pem is not None
            if b"ENCRYPTED PRIVATE KEY" not in self._pem:
                raise ConfigError(f"{self.signing_from} is not an encrypted PKCS#8 PEM: give the "
                                  "exchange's {kid}.pem file from the key directory, as it is")
            try:
                raw = serialization.load_pem_private_key(self._pem, self._passphrase)
            except (ValueError, TypeError):
                raise ConfigError(f"{self.signing_from} could not be decrypted: check "
                                  "EXCHANGE_KEY_PASSPHRASE and that the whole PEM was given") from None
            if not isinstance(raw, Ed25519PrivateKey):
                raise ConfigError(f"{self.signing_from} is not an Ed25519 key")
            key = OKPKey.import_key(raw)
            self._given = OKPKey.import_key(key.raw_value, {"kid": key.thumbprint()})
        return self._given

    def has_directory_keys(self) -> bool:
        """Whether the key directory holds keys (a manifest): the machine that keeps the keys."""
        return bool(self.manifest())

    def reencrypt(self) -> list[str]:
        """Rewrite every key file not protected at key_files.ROUNDS (written by an older
        exchange) with the current KDF; returns their kids."""
        with self._locked():
            return self._reencrypt_locked()

    def _reencrypt_locked(self) -> list[str]:
        done = []
        for e in self.manifest():
            path = self.directory / f"{e['kid']}.pem"
            if path.exists() and (key_files.rounds_of(path.read_bytes()) or 0) >= key_files.ROUNDS:
                continue
            raw = self._load(e["kid"]).private_key
            atomic_write(path, key_files.encrypt(raw, self._passphrase), mode=0o600)
            done.append(e["kid"])
        return done

    def rotate(self) -> str:
        """A new active key, endorsed by the outgoing one (`endorsement`, so peers that pinned
        the old key follow); the old one is retired (it stays in the JWKS), and older keys
        are re-encrypted with the current KDF. Returns the new kid."""
        with self._locked():
            now = clock.now()
            entries = self.manifest()
            outgoing = None
            for e in entries:
                if e["status"] == "active":
                    outgoing = self._load(e["kid"])  # refuse to rotate with a wrong passphrase
                    e["status"] = "retired"
            self._reencrypt_locked()
            entry = self._new_key(now)
            if outgoing is not None:
                entry["endorsement"] = self._endorse(outgoing, entry["kid"], now)
            entries.append(entry)
            self._write_manifest(entries)
            return entries[-1]["kid"]

    def _endorse(self, outgoing: OKPKey, kid: str, now: dt.datetime) -> str:
        """Compact JWS by `outgoing` (typ exchange-key-endorsement+jws) vouching for key `kid`."""
        by = outgoing.thumbprint()
        payload = {"kid": kid, "jwk": public_jwk(self._load(kid)), "endorsed_by": by, "issued_at": rfc3339(now)}
        signer = OKPKey.import_key(outgoing.raw_value, {"kid": by})
        header = {"alg": ALG, "kid": by, "typ": ENDORSEMENT_TYP}
        with eddsa_allowed():
            return jws.serialize_compact(header, rfc8785.dumps(payload), signer, algorithms=[ALG])

    def mark_compromised(self, kid: str, at: dt.datetime | None = None) -> None:
        """Drop a key from the JWKS from time `at` (default now); if it was active, a new key takes
        over. Heads it signed before `at` stay verifiable through the key status document."""
        with self._locked():
            entries = self.manifest()
            entry = next((e for e in entries if e["kid"] == kid), None)
            if entry is None:
                raise ConfigError(f"no key {kid!r} in {self.directory}; known: "
                                  f"{', '.join(e['kid'] for e in entries) or '(none)'}")
            when = rfc3339(at or clock.now())
            if entry["status"] == "compromised" and when >= entry["compromised_at"]:
                return  # already compromised from an earlier time: never vouch for more heads
            if entry["status"] == "active":
                self._load(kid)  # refuse with a wrong passphrase before changing anything
                entries.append(self._new_key())
            entry["status"] = "compromised"
            entry["compromised_at"] = when
            self._write_manifest(entries)

    # -- signing and publishing -------------------------------------------------------------
    def sign_tree_head(self, payload: dict) -> str:
        """Compact JWS over the RFC 8785 bytes of `payload`."""
        return self.sign(payload, STH_TYP)

    def sign(self, payload: dict, typ: str) -> str:
        """Compact JWS (header alg, kid, typ) over the RFC 8785 bytes of `payload`."""
        key = self.signer()
        header = {"alg": ALG, "kid": key.kid, "typ": typ}
        with eddsa_allowed():
            return jws.serialize_compact(header, rfc8785.dumps(payload), key, algorithms=[ALG])

    def sign_detached(self, body: bytes, typ: str) -> str:
        """Compact JWS over exactly `body` with its payload detached (RFC 7515 Appendix F:
        `header..signature`); the receiver puts base64url(body) back between the dots to verify."""
        return PinnedSigner(self.signer()).sign_detached(body, typ)

    def pinned(self) -> PinnedSigner:
        """The active key, read once, for signing many documents in one pass."""
        return PinnedSigner(self.signer())

    def sign_note(self, body: str, name: str) -> str:
        """The C2SP signed note of `body` (its text: non-empty, ending in a newline) with one
        Ed25519 signature by the signing key under key name `name` (trust/checkpoint.py)."""
        if not isinstance(body, str) or not body.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in body):
            raise ValueError("a note's text is lines ending in a newline, without other control characters")
        check_key_name(name)
        private = self.signer().private_key
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        signature = private.sign(body.encode("utf-8"))
        return body + "\n" + note_signature_line(name, note_key_id(name, public), signature)

    def note_verifier_key(self, name: str) -> str:
        """The signed-note verifier key ("<name>+<key ID>+<base64 key>") of the signing key."""
        public = self.signer().private_key.public_key()
        return verifier_key(name, public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def cosign(self, note: str, name: str, now: dt.datetime) -> tuple[str, str]:
        """This exchange's C2SP cosignature/v1 line on a peer's checkpoint note (trust/cosign.py),
        by the signing key under cosigner name `name`, at `now`; and the signing key's kid."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("a cosignature time needs a time zone (use base.clock.now())")
        key = self.signer()
        return cosignature_line(note, name, key.private_key, int(now.timestamp())), key.kid

    def cosigner_vkey(self, name: str) -> str:
        """The cosigner verifier key ("<name>+<key ID>+<base64(0x04 ‖ public key)>") of the signing key."""
        public = self.signer().private_key.public_key()
        return cosigner_vkey(name, public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def sign_key_status(self, heads_before: dict[str, list[str]], now: dt.datetime | None = None) -> str:
        """Compact JWS (signed by the active key) listing every key's status; a compromised key
        comes with its public JWK and `heads_before_compromise`: the hashes of the tree heads the
        exchange published with it before its compromise time (from `heads_before[kid]`); a key
        made by `rotate` comes with its `endorsement` by the key it replaced."""
        entries = []
        for e in self.manifest():
            item = {"kid": e["kid"], "status": e["status"], "created_at": e["created_at"]}
            if e.get("endorsement"):
                item["endorsement"] = e["endorsement"]
            if e["status"] == "compromised":
                item.update(compromised_at=e["compromised_at"], jwk=public_jwk(self._load(e["kid"])),
                            heads_before_compromise=sorted(heads_before.get(e["kid"], [])))
            entries.append(item)
        payload = {"issued_at": rfc3339(now or clock.now()), "keys": entries}
        key = self._directory_signer()
        header = {"alg": ALG, "kid": key.kid, "typ": KEY_STATUS_TYP}
        with eddsa_allowed():
            return jws.serialize_compact(header, rfc8785.dumps(payload), key, algorithms=[ALG])

    def public_jwk(self, kid: str) -> dict:
        """The public JWK of one of the directory's keys."""
        return public_jwk(self._load(kid))

    def jwks(self) -> dict:
        """Public keys of the active and retired keys (standard JWKs only)."""
        self._active()                   # no key: refused, never an empty JWKS
        entries = self.manifest()[::-1]  # newest first, the active key at the head
        kids = [e["kid"] for e in entries if e["status"] == "active"]
        kids += [e["kid"] for e in entries if e["status"] == "retired"]
        return {"keys": [public_jwk(self._load(kid)) for kid in kids]}

    def write_jwks(self, path) -> None:
        path = Path(path)
        atomic_write(path, json.dumps(self.jwks(), indent=2).encode() + b"\n", mode=0o644)
