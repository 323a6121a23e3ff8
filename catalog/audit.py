"""The append-only access audit log, chained by hashes.

entry_hash = SHA-256(RFC 8785 bytes of {seq, at, department, purpose, action, holder,
datasets, fields, subject, outcome, detail, prev_hash}); prev_hash is the previous entry's
entry_hash (64 zeros for the first). The one-row `audit_head` table holds the newest seq and
hash: an append first updates it (a row lock on PostgreSQL, the write lock on SQLite), so
appends are serialised and the chain has no forks. Deleting the newest entries is caught by
comparing the walk's end with the head.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import rfc8785
import sqlalchemy as sa
from sqlalchemy import Engine

from catalog.models import AuditEntry, AuditHead

GENESIS = "0" * 64
_log, _head = AuditEntry.__table__, AuditHead.__table__


def _at_text(at: datetime) -> str:
    if at.tzinfo is None:            # SQLite gives back naive UTC
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(row: dict, prev_hash: str) -> str:
    body = {k: row.get(k) for k in ("seq", "department", "purpose", "action", "holder", "datasets",
                                     "fields", "subject", "outcome", "detail")}
    body["at"], body["prev_hash"] = _at_text(row["at"]), prev_hash
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def entry(*, department: str, purpose: str, action: str, outcome: str, holder: str | None = None,
          datasets: list[str] | None = None, fields: list[str] | None = None,
          subject: str | None = None, detail: dict | None = None, at: datetime | None = None) -> dict:
    """An entry's row before it is chained (seq and hashes are set when it is written)."""
    return {"at": at or datetime.now(timezone.utc), "department": department[:128],
            "purpose": purpose[:255], "action": action, "holder": holder, "datasets": datasets,
            "fields": fields, "subject": subject[:128] if subject else None, "outcome": outcome,
            "detail": detail}


def append(engine: Engine, **kw) -> int:
    """Write one entry; returns its seq."""
    return append_many(engine, [entry(**kw)])[-1]


def append_many(engine: Engine, rows: list[dict]) -> list[int]:
    """Chain and write entries in one transaction (the API's group commit); returns their seqs."""
    if not rows:
        return []
    with engine.begin() as c:
        last, prev = c.execute(sa.update(_head).where(_head.c.id == 1)
                               .values(seq=_head.c.seq + len(rows))
                               .returning(_head.c.seq, _head.c.hash)).one()
        seq = last - len(rows)
        out = []
        for row in rows:
            seq += 1
            row = {**row, "seq": seq}
            row["prev_hash"], row["entry_hash"] = prev, entry_hash(row, prev)
            prev = row["entry_hash"]
            out.append(row)
        c.execute(sa.insert(_log), out)
        c.execute(sa.update(_head).where(_head.c.id == 1).values(hash=prev))
    return [r["seq"] for r in out]


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def verify_chain(engine: Engine, batch: int = 10_000) -> ChainReport:
    """Walk the log in seq order; report the first altered, missing or reordered entry."""
    prev, expected, n = GENESIS, 1, 0
    cols = [_log.c[k] for k in ("seq", "at", "department", "purpose", "action", "holder",
                                "datasets", "fields", "subject", "outcome", "detail",
                                "prev_hash", "entry_hash")]
    with engine.connect() as c:
        head_seq, head_hash = c.execute(sa.select(_head.c.seq, _head.c.hash)).one()
        unchained = c.scalar(sa.select(sa.func.count()).select_from(_log).where(_log.c.seq.is_(None)))
        last = 0
        while True:
            rows = c.execute(sa.select(*cols).where(_log.c.seq > last).order_by(_log.c.seq)
                             .limit(batch)).mappings().all()
            if not rows:
                break
            for r in rows:
                if r["seq"] != expected:
                    return ChainReport(False, n, expected, f"entry {expected} is missing")
                if r["prev_hash"] != prev:
                    return ChainReport(False, n, r["seq"], "its link to the previous entry was altered")
                if entry_hash(dict(r), prev) != r["entry_hash"]:
                    return ChainReport(False, n, r["seq"], "its content was altered")
                prev, expected, n = r["entry_hash"], expected + 1, n + 1
            last = rows[-1]["seq"]
    if n < head_seq:
        return ChainReport(False, n, n + 1, f"entries {n + 1}..{head_seq} are missing (deleted from the end)")
    if head_seq and prev != head_hash:
        return ChainReport(False, n, head_seq, "the newest entry does not match the chain head")
    if unchained:
        return ChainReport(True, n, None, f"{unchained} entries from before the chain (migration 0007) are not covered")
    return ChainReport(True, n)


def holder_report(engine: Engine, holder: str, limit: int = 500) -> list[dict]:
    """Who looked at this holder's records, when and why."""
    with engine.connect() as c:
        rows = c.execute(sa.select(_log.c.seq, _log.c.at, _log.c.department, _log.c.purpose,
                                   _log.c.action, _log.c.datasets, _log.c.fields, _log.c.outcome)
                         .where(_log.c.holder == holder).order_by(_log.c.seq.desc())
                         .limit(limit)).mappings().all()
    return [{**r, "at": _at_text(r["at"])} for r in rows]
