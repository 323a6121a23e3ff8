"""The exchange's signing keys (`exchange keys ...`, the demo, the test fixtures): each change
rewrites the published jwks.json and key-status.jws."""
from __future__ import annotations

import datetime as dt

from base.settings import get_settings
from catalog.publish.key_status import summary, write_key_material
from catalog.signing.keys import KeyStore
from exchange.catalogue import open_catalog


def keystore() -> KeyStore:
    s = get_settings().private_home()
    return KeyStore(s.keys_dir, s.key_passphrase())


def publish(keys: KeyStore) -> None:
    """Rewrite jwks.json and key-status.jws after any change."""
    write_key_material(keys, open_catalog().engine, get_settings().jwks_path)


def create_signing_key(exist_ok: bool = False) -> str | None:
    """The first signing key in EXCHANGE_HOME's key directory, and the JWKS that publishes it
    (`exchange keys create`; the demo makes its key through this too)."""
    keys = keystore()
    kid = keys.create(exist_ok=exist_ok)
    if kid is not None:
        publish(keys)
    return kid


def reencrypt() -> list[str]:
    """Key files of an older exchange rewritten with the current KDF."""
    return keystore().reencrypt()


def key_list() -> list[dict]:
    """Every key, its status and how many tree heads it signed."""
    return summary(keystore(), open_catalog().engine)


def rotate() -> tuple[str, str | None]:
    """A new key signs from now on; returns (new kid, retired kid)."""
    keys = keystore()
    old = keys.signer().kid
    new = keys.rotate()
    publish(keys)
    return new, old


def compromise(kid: str, at: dt.datetime | None) -> tuple[dict, str | None]:
    """Stop trusting kid from `at` (default now); returns its manifest entry and the active kid."""
    keys = keystore()
    keys.mark_compromised(kid, at)
    publish(keys)
    entry = next(e for e in keys.manifest() if e["kid"] == kid)
    return entry, keys.signer().kid
