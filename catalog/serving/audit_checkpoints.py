"""Signed checkpoints of the access audit chain, in the manner of Certificate Transparency.

A checkpoint is the chain's size (its newest seq) and head hash (that entry's entry_hash; 64
zeros for an empty chain) at a time, signed like the dataset tree heads: a compact JWS
(RFC 7515, alg EdDSA, the key's `kid`, typ exchange-audit-checkpoint+jws) over the RFC 8785
bytes of {"log": "exchange-audit", "size", "head_hash", "issued_at"}. The exchange keeps them
(table audit_checkpoints) and publishes them (GET /v1/audit/checkpoints). Whoever holds one can
later prove the log only grew: the entry at its size still has its hash. Rewriting the tail of
the log and its head row together leaves a chain that verifies on its own, but not against a
checkpoint taken before the rewrite.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime

import sqlalchemy as sa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from sqlalchemy import Engine

from base.errors import VerificationError
from catalog.db.models import AuditCheckpoint
from catalog.serving import audit
from trust.heads import ALG, CHECKPOINT_TYP, eddsa_allowed, rfc3339

LOG = "exchange-audit"
FORMAT = "exchange-audit-checkpoint/1"
_cp = AuditCheckpoint.__table__
_COMPACT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_HEX32 = re.compile(r"^[0-9a-f]{64}$")
STEPS = {1: "checkpoint signature", 2: "audit chain", 3: "chain extends the checkpoint",
         4: "stored checkpoints"}


def _fail(step: int, message: str):
    raise VerificationError(step, STEPS[step], message)


def document(row) -> dict:
    """A checkpoint as published (and as `exchange audit-checkpoint` writes it): its fields for
    reading, and `signed`, the JWS that alone is to be trusted."""
    return {"format": FORMAT, "size": row["size"], "head_hash": row["head_hash"],
            "issued_at": rfc3339(_aware(row["issued_at"])), "kid": row["kid"], "signed": row["signed"]}


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def make(engine: Engine, keys, now: datetime, jwks: dict | None = None) -> dict:
    """Check the chain from the newest stored checkpoint (whose signature is checked first) to
    the head, then sign and store a checkpoint of that head. Nothing is signed over a chain
    that does not verify (VerificationError). `jwks`: the published one (default: the key
    directory's)."""
    jwks = jwks if jwks is not None else keys.jwks()
    start = None
    last = newest(engine, kids=[k["kid"] for k in jwks["keys"]])   # not one of a compromised key
    if last is not None:
        p = verify_signed(last["signed"], jwks, 4)
        start = (p["size"], p["head_hash"])
    report = audit.verify_chain(engine, start=start)
    if not report.ok:
        where = f"entry {report.first_bad_seq}: " if report.first_bad_seq is not None else ""
        _fail(2, f"{where}{report.problem}; no checkpoint was signed")
    payload = {"log": LOG, "size": report.size, "head_hash": report.head_hash, "issued_at": rfc3339(now)}
    signed = keys.sign(payload, CHECKPOINT_TYP)
    row = {"size": report.size, "head_hash": report.head_hash, "issued_at": now,
           "kid": keys.signer().kid, "signed": signed}
    with engine.begin() as c:
        c.execute(sa.insert(_cp).values(**row))
    return document(row)


def newest(engine: Engine, kids: list[str] | None = None) -> dict | None:
    """The newest stored checkpoint (of one of `kids`, if given)."""
    q = sa.select(_cp).order_by(_cp.c.id.desc()).limit(1)
    if kids is not None:
        q = q.where(_cp.c.kid.in_(kids))
    with engine.connect() as c:
        r = c.execute(q).mappings().first()
    return dict(r) if r else None


def published(engine: Engine, limit: int = 100, before: int | None = None) -> dict:
    """The stored checkpoints, newest first, a page at a time (`before`: a checkpoint id)."""
    q = sa.select(_cp).order_by(_cp.c.id.desc()).limit(limit + 1)
    if before is not None:
        q = q.where(_cp.c.id < before)
    with engine.connect() as c:
        rows = c.execute(q).mappings().all()
    page = rows[:limit]
    more = len(rows) > limit
    return {"checkpoints": [{"id": r["id"], **document(r)} for r in page], "more": more,
            "next_before": page[-1]["id"] if more else None}


def _b64json(segment: str):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _key(jwks, kid) -> OKPKey | None:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    jwk = next((k for k in keys or () if isinstance(k, dict) and k.get("kid") == kid), None)
    if jwk is None or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or jwk.get("alg", ALG) != ALG:
        return None
    try:
        return OKPKey.import_key({k: v for k, v in jwk.items() if k != "d"})
    except (JoseError, ValueError, TypeError):
        return None


def signer_kid(signed: str) -> str | None:
    """The kid a checkpoint names (unverified)."""
    try:
        header = _b64json(signed.split(".")[0])
    except (ValueError, IndexError, binascii.Error):
        return None
    return header.get("kid") if isinstance(header, dict) else None


def verify_signed(signed, jwks: dict, step: int = 1) -> dict:
    """A checkpoint's payload, once its signature verifies with a key of the JWKS."""
    if not isinstance(signed, str) or not _COMPACT.fullmatch(signed):
        _fail(step, "the checkpoint is not a JWS in compact serialization")
    kid = signer_kid(signed)
    key = _key(jwks, kid)
    if key is None:
        _fail(step, f"the checkpoint was not signed by a key of the JWKS (kid {kid!r}): fetch the "
                    "current JWKS (GET /.well-known/jwks.json)")
    try:
        with eddsa_allowed():
            obj = jws.deserialize_compact(signed, key, algorithms=[ALG])
        payload = json.loads(obj.payload)
    except (JoseError, ValueError):
        _fail(step, "the checkpoint's signature is not valid: it was altered or forged")
    if obj.headers().get("typ") != CHECKPOINT_TYP:
        _fail(step, f"the signed object is not an audit checkpoint (typ is not {CHECKPOINT_TYP!r})")
    if not (isinstance(payload, dict) and payload.get("log") == LOG and type(payload.get("size")) is int
            and payload["size"] >= 0 and isinstance(payload.get("head_hash"), str)
            and _HEX32.fullmatch(payload["head_hash"]) and isinstance(payload.get("issued_at"), str)):
        _fail(step, "the checkpoint's signed payload is not {log, size, head_hash, issued_at}")
    return payload


def read_held(text: str) -> str:
    """The JWS of a checkpoint file: a published document (JSON with `signed`) or the JWS."""
    text = text.strip()
    if text.startswith("{"):
        try:
            text = json.loads(text).get("signed", "")
        except (ValueError, AttributeError):
            text = ""
    return text


def verify_log(engine: Engine, jwks: dict, held: list[str] = (), progress=None) -> dict:
    """Steps: (1) each checkpoint held is signed by a key of the JWKS; (2) the chain verifies,
    every entry in it; (3) the chain extends each held checkpoint (the entry at its size has its
    hash) and the exchange still keeps it; (4) each stored checkpoint signed by a key of the
    JWKS verifies and is extended by the chain. The first failure raises VerificationError."""
    held_payloads = [verify_signed(h, jwks, 1) for h in held]
    with engine.connect() as c:     # before the head is read: none of these can be ahead of it
        upto = c.scalar(sa.select(sa.func.max(_cp.c.id))) or 0
    report = audit.verify_chain(engine, progress=progress)
    if not report.ok:
        where = f"entry {report.first_bad_seq}: " if report.first_bad_seq is not None else ""
        _fail(2, f"{where}{report.problem} ({report.entries} entries verified before it)")
    stored = _stored_with_entries(engine, upto)
    kept = {r["signed"] for r in stored}
    for h, p in zip(held, held_payloads):
        _extends(p, report, stored_hash=_entry_hash(engine, p["size"]), step=3)
        if h not in kept:
            _fail(3, f"the checkpoint of size {p['size']} issued {p['issued_at']} is not among the "
                     "exchange's stored checkpoints: they were deleted")
    verified, unknown, newest_seen = 0, 0, None
    for r in stored:
        if _key(jwks, signer_kid(r["signed"])) is None:
            unknown += 1              # a key no longer in the JWKS (compromised): not counted
            continue
        p = verify_signed(r["signed"], jwks, 4)
        if (p["size"], p["head_hash"]) != (r["size"], r["head_hash"]):
            _fail(4, f"stored checkpoint {r['id']}: its columns differ from what it signs")
        _extends(p, report, stored_hash=r["entry_hash"], step=4)
        verified += 1
        newest_seen = p
    out = {**report.as_dict(), "checkpoints_verified": verified, "held_verified": len(held),
           "newest_checkpoint": newest_seen}
    if unknown:
        out["problem"] = f"{unknown} stored checkpoints signed by keys not in the JWKS were not counted"
    return out


def _extends(p: dict, report: audit.ChainReport, stored_hash: str | None, step: int) -> None:
    size = p["size"]
    if size > report.size:
        _fail(step, f"the checkpoint of size {size} ({p['issued_at']}) is ahead of the chain, which has "
                    f"{report.size} entries: entries were deleted")
    have = audit.GENESIS if size == 0 else stored_hash
    if have != p["head_hash"]:
        _fail(step, f"entry {size} does not have the hash signed in the checkpoint of {p['issued_at']}: "
                    "the log was rewritten below a published checkpoint")


def _entry_hash(engine: Engine, seq: int) -> str | None:
    with engine.connect() as c:
        return c.scalar(sa.select(audit._log.c.entry_hash).where(audit._log.c.seq == seq))


def _stored_with_entries(engine: Engine, upto: int) -> list[dict]:
    """Stored checkpoints up to id `upto`, oldest first, with the entry_hash of the entry at
    each one's size."""
    log = audit._log
    with engine.connect() as c:
        return [dict(r) for r in c.execute(
            sa.select(_cp.c.id, _cp.c.size, _cp.c.head_hash, _cp.c.signed, log.c.entry_hash)
            .outerjoin(log, log.c.seq == _cp.c.size).where(_cp.c.id <= upto).order_by(_cp.c.id)).mappings()]
