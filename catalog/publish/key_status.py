"""Publishing the public key material: the catalogue's public keys and key material, and the
copies jwks.json and key-status.jws in the key directory.

The catalogue is where the key material is served from (tables signing_keys and key_material,
migration 0014): every API host serves the same JWKS, and every machine that publishes checks
that the key it signs with is the catalogue's active key (`check_signer`), whether that key
came from the key directory or was handed to it (EXCHANGE_SIGNING_KEY, the Airflow Variable).
Only the machine that keeps the key directory (its manifest) writes the key material; the
others copy it from the catalogue.

The key status document (key-status.jws) vouches, for each compromised key, for the tree heads
the exchange published with it before its compromise time. Its list comes from the catalogue,
never from the heads themselves: whoever holds a stolen key can backdate `issued_at`.
"""
from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from joserfc.jwk import OKPKey
from sqlalchemy import Engine

from base import clock
from base.errors import ConfigError
from base.files import atomic_write
from catalog.db.models import DatasetVersion, KeyMaterial, SigningKey
from catalog.signing.keys import KeyStore
from trust.heads import rfc3339
from trust.verify import KEY_STATUS_FILE, head_payload_unverified

_keys = SigningKey.__table__
_material = KeyMaterial.__table__


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


def _jwks_bytes(jwks: dict) -> str:
    return json.dumps(jwks, indent=2) + "\n"          # as jwks.json has always been written


def publish_public_keys(keys: KeyStore, engine: Engine) -> bool:
    """The key directory's keys (public parts, statuses) and the freshly signed key material
    upserted into the catalogue in one transaction; idempotent. False (nothing written) on a
    machine without the key directory. Refused when the catalogue's active key is not one of
    this directory's: two key directories would sign for one exchange. A machine given its
    signing key from elsewhere (EXCHANGE_SIGNING_KEY …) writes nothing either: a key directory
    beside it is a copy, perhaps an old one."""
    entries = keys.manifest() if keys.signing_from is None else []
    return _publish(keys, engine, entries)


def _publish(keys: KeyStore, engine: Engine, entries: list[dict]) -> bool:
    if not entries:
        return False
    jwks = keys.jwks()
    doc = keys.sign_key_status(heads_before_compromise(engine, keys))
    for attempt in (1, 2):     # two first publishes at once: one inserts, the other updates
        try:
            _upsert(engine, keys, entries, jwks, doc)
            return True
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
    return True


def _upsert(engine: Engine, keys: KeyStore, entries: list[dict], jwks: dict, doc: str) -> None:
    now = clock.now()
    mine = {e["kid"] for e in entries}
    with engine.begin() as c:
        if c.dialect.name == "sqlite":       # take the write lock before reading (see _lock_dataset)
            c.execute(sa.update(_material).where(_material.c.id == 1).values(id=1))
        stored = {r.kid: r for r in c.execute(sa.select(_keys).with_for_update())}
        strangers = [kid for kid, r in stored.items() if r.status == "active" and kid not in mine]
        if strangers:
            raise ConfigError(
                f"the catalogue's active signing key {strangers[0]} is not in {keys.directory}: this "
                "machine's key directory is not the exchange's. Give this machine the exchange's key "
                "(EXCHANGE_SIGNING_KEY, EXCHANGE_SIGNING_KEY_FILE or the Airflow Variable "
                "exchange_signing_key) and remove its own keys, or run `exchange keys` commands where "
                "the exchange's keys are kept")
        for position, e in enumerate(entries):
            old = stored.get(e["kid"])
            retired_at = old.retired_at if old is not None else None
            if e["status"] != "active" and retired_at is None:
                retired_at = rfc3339(now)
            values = {"jwk": keys.public_jwk(e["kid"]), "status": e["status"], "position": position,
                      "created_at": e["created_at"], "retired_at": retired_at,
                      "compromised_at": e["compromised_at"], "published_at": now}
            if old is None:
                c.execute(sa.insert(_keys).values(kid=e["kid"], **values))
            else:
                c.execute(sa.update(_keys).where(_keys.c.kid == e["kid"]).values(**values))
        material = {"jwks": _jwks_bytes(jwks), "key_status": doc, "updated_at": now}
        if c.execute(sa.update(_material).where(_material.c.id == 1).values(**material)).rowcount == 0:
            c.execute(sa.insert(_material).values(id=1, **material))


def key_material(engine: Engine) -> tuple[str, str] | None:
    """The published (JWKS JSON text, key status compact JWS) from the catalogue; None before
    the first key is published there."""
    with engine.connect() as c:
        row = c.execute(sa.select(_material.c.jwks, _material.c.key_status)
                        .where(_material.c.id == 1)).first()
    return (row.jwks, row.key_status) if row else None


def public_keys(engine: Engine) -> list[dict]:
    """The catalogue's public keys in order of creation: kid, status, times and the JWK."""
    with engine.connect() as c:
        rows = c.execute(sa.select(_keys).order_by(_keys.c.position, _keys.c.created_at)).mappings().all()
    return [{k: r[k] for k in ("kid", "status", "created_at", "retired_at", "compromised_at", "jwk")}
            for r in rows]


def copy_key_material(engine: Engine, jwks_path: Path) -> Path:
    """The catalogue's key material written to jwks.json and key-status.jws (the copies that
    `exchange verify` and `exchange export` hand out). Returns the key status path."""
    jwks_path = Path(jwks_path)
    status_path = jwks_path.with_name(KEY_STATUS_FILE)
    material = key_material(engine)
    if material is None:
        return status_path
    jwks, doc = material
    for path, text in ((jwks_path, jwks), (status_path, doc + "\n")):
        try:
            if path.read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, text.encode("utf-8"), mode=0o644)
    return status_path


def write_key_material(keys: KeyStore, engine: Engine, jwks_path: Path) -> Path:
    """Publish the key directory's key material into the catalogue (if this machine keeps the
    key directory), then write jwks.json and, beside it, key-status.jws from the catalogue.
    Returns the key status path."""
    publish_public_keys(keys, engine)
    return copy_key_material(engine, jwks_path)


def check_signer(keys: KeyStore, engine: Engine, jwks_path: Path) -> OKPKey:
    """The key that will sign, if it is the catalogue's active key; else ConfigError (exit 2):
    a head signed with a key the catalogue does not publish could be verified by nobody. The
    key directory's own keys are published into the catalogue first if they are not there yet
    (a catalogue upgraded to migration 0014, or a key made before it)."""
    if keys.signing_from is None and not keys.has_directory_keys() and (active := _active_kid(engine)):
        raise ConfigError(f"no signing key on this machine: give it the exchange's active key {active} "
                          f"(its {active}.pem from the key directory where the keys are kept) as "
                          "EXCHANGE_SIGNING_KEY, EXCHANGE_SIGNING_KEY_FILE or the Airflow Variable "
                          "exchange_signing_key")
    key = keys.signer()
    where = keys.signing_from or f"the key directory {keys.directory}"
    row = _key_row(engine, key.kid)
    entries = keys.manifest()
    if row is None and any(e["kid"] == key.kid for e in entries):    # the key directory's own key
        _publish(keys, engine, entries)
        copy_key_material(engine, jwks_path)
        row = _key_row(engine, key.kid)
    if row is None:
        active = _active_kid(engine)
        raise ConfigError(
            f"refusing to sign: the signing key {key.kid} (from {where}) is not among the catalogue's "
            "public keys, so nobody could verify what it signs. "
            + (f"Give this machine the exchange's active key {active} (its {active}.pem from the key "
               "directory as EXCHANGE_SIGNING_KEY, EXCHANGE_SIGNING_KEY_FILE or the Airflow Variable "
               "exchange_signing_key)" if active else
               "The catalogue has no signing key yet: run `exchange keys create` once, where the keys "
               "are kept"))
    if row.status != "active":
        active = _active_kid(engine)
        raise ConfigError(
            f"refusing to sign: the signing key {key.kid} (from {where}) is {row.status} in the catalogue"
            + (f"; the active key is {active}: give this machine that key" if active else ""))
    return key


def _key_row(engine: Engine, kid: str):
    with engine.connect() as c:
        return c.execute(sa.select(_keys.c.kid, _keys.c.status).where(_keys.c.kid == kid)).first()


def _active_kid(engine: Engine) -> str | None:
    with engine.connect() as c:
        return c.scalar(sa.select(_keys.c.kid).where(_keys.c.status == "active"))


def summary(keys: KeyStore, engine: Engine) -> list[dict]:
    """Every key with its status and how many tree heads it signed (for `exchange keys list`):
    the key directory's manifest, else (a machine without it) the catalogue's public keys."""
    with engine.connect() as c:
        counts = dict(c.execute(sa.select(DatasetVersion.kid, sa.func.count())
                                .group_by(DatasetVersion.kid)).all())
    entries = keys.manifest() or [{k: e[k] for k in ("kid", "created_at", "status", "compromised_at")}
                                  for e in public_keys(engine)]
    return [{**e, "heads_signed": counts.get(e["kid"], 0)} for e in entries]
