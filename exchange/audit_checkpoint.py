"""Making an audit checkpoint with this exchange's settings (`exchange audit-checkpoint`, and the
`exchange_watch` DAG every 15 minutes): sign the audit chain's head with the active key and
make sure the published JWKS holds that key."""
from __future__ import annotations

import json
from datetime import datetime

from base.settings import get_settings
from catalog.publish.key_status import write_key_material
from catalog.service import Catalog
from catalog.serving.audit_checkpoints import make
from catalog.signing.keys import KeyStore


def make_checkpoint(now: datetime, settings=None) -> dict:
    s = settings or get_settings()
    engine = Catalog(s.catalog_url, s.store_dir).engine
    keys = KeyStore(s.keys_dir, s.key_passphrase())
    doc = make(engine, keys, now)
    if doc["kid"] not in _published_kids(s.jwks_path):    # the first key, made for this checkpoint
        write_key_material(keys, engine, s.jwks_path)
    return doc


def _published_kids(path) -> set[str]:
    try:
        return {k.get("kid") for k in json.loads(path.read_text(encoding="utf-8"))["keys"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
