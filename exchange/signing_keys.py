"""The exchange's signing keys (`exchange keys ...`, the demo, the test fixtures): each change
publishes the public keys and the key status into the catalogue (where every API host serves
them from) and rewrites the copies jwks.json and key-status.jws. These commands run where the
key directory is kept; other machines are given the active key (README, "Settings")."""
from __future__ import annotations

import datetime as dt
import json

from base.errors import ConfigError
from base.settings import get_settings
from catalog.publish.key_status import key_material, public_keys, summary, write_key_material
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
    (`exchange keys create`; the demo makes its key through this too). Refused when the
    catalogue already publishes another machine's key: one exchange, one key directory."""
    keys = keystore()
    if not keys.manifest():
        active = [k["kid"] for k in public_keys(open_catalog().engine) if k["status"] == "active"]
        if active:
            if exist_ok:
                return None
            raise ConfigError(f"the catalogue already has a signing key ({active[0]}), made where the "
                              "exchange's key directory is kept: give this machine that key "
                              "(EXCHANGE_SIGNING_KEY, EXCHANGE_SIGNING_KEY_FILE or the Airflow Variable "
                              "exchange_signing_key) instead of making another")
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


def published_key_material() -> tuple[dict, str | None] | None:
    """(the JWKS, the key status document) the catalogue publishes; None before any key is
    published there."""
    material = key_material(open_catalog().engine)
    return (json.loads(material[0]), material[1]) if material else None
