"""Publishing the public key material: jwks.json and the signed key status document.

The key status document (key-status.jws) vouches, for each compromised key, for the tree heads
the exchange published with it before its compromise time. Its list comes from the catalogue,
never from the heads themselves: whoever holds a stolen key can backdate `issued_at`.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from base.files import atomic_write
from catalog.db.models import DatasetVersion
from catalog.signing.keys import KeyStore
from trust.verify import KEY_STATUS_FILE, head_payload_unverified


def heads_before_compromise(engine: Engine, keys: KeyStore) -> dict[str, list[str]]:
    """kid -> hashes of the heads it signed with issued_at before its compromise time."""
    cut = {e["kid"]: e["compromised_at"] for e in keys.manifest() if e["status"] == "compromised"}
    if not cut:
        return {}
    out: dict[str, list[str]] = {kid: [] for kid in cut}
    with engine.connect() as c:
        rows = c.execute(sa.select(DatasetVersion.kid, DatasetVersion.head_hash,
                                   DatasetVersion.signed_tree_head)
                         .where(DatasetVersion.kid.in_(list(cut))))
        for kid, hh, jws in rows:
            issued = head_payload_unverified(jws).get("issued_at", "")
            if isinstance(issued, str) and issued < cut[kid]:  # RFC 3339 "…Z" strings of one width
                out[kid].append(hh)
    return out


def write_key_material(keys: KeyStore, engine: Engine, jwks_path: Path) -> Path:
    """Write jwks.json and, beside it, key-status.jws. Returns the key status path."""
    jwks_path = Path(jwks_path)
    keys.write_jwks(jwks_path)
    status_path = jwks_path.with_name(KEY_STATUS_FILE)
    doc = keys.sign_key_status(heads_before_compromise(engine, keys))
    atomic_write(status_path, doc.encode("ascii") + b"\n", mode=0o644)
    return status_path


def summary(keys: KeyStore, engine: Engine) -> list[dict]:
    """Every key with its status and how many tree heads it signed (for `exchange keys list`)."""
    with engine.connect() as c:
        counts = dict(c.execute(sa.select(DatasetVersion.kid, sa.func.count())
                                .group_by(DatasetVersion.kid)).all())
    return [{**e, "heads_signed": counts.get(e["kid"], 0)} for e in keys.manifest()]
