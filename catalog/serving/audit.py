"""The append-only access audit log, chained by hashes.

entry_hash = SHA-256(prev_hash ‖ "\n" ‖ seq ‖ "\n" ‖ canonical JSON of {at, department, purpose,
action, holder, datasets, fields, subject, outcome, detail}); prev_hash is the previous
entry's entry_hash (64 zeros for the first). The one-row `audit_head` table holds the newest seq and
hash: an append first takes it (a row lock on PostgreSQL, the write lock on SQLite), so
appends are serialised and the chain has no forks. Deleting the newest entries is caught by
comparing the walk's end with the head; a row outside the chain (no seq, or one past the head)
fails verification too. Rewriting the tail together with the head is caught against a signed
checkpoint taken before (catalog/serving/audit_checkpoints.py). On PostgreSQL the database computes the hashes (function
audit_append, migration 0010) from the body serialised here; verify_chain checks them in Python.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from base import clock
from catalog.db.models import AuditEntry, AuditHead
from catalog.db.rawdb import raw

GENESIS = "0" * 64
_log, _head = AuditEntry.__table__, AuditHead.__table__


def _at_text(at: datetime) -> str:
    """YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC."""
    if at.tzinfo is not None:        # SQLite gives back naive UTC
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds") + "Z"


BODY_KEYS = ("at", "department", "purpose", "action", "holder", "datasets", "fields", "subject",
             "outcome", "detail")


def body_bytes(row: dict) -> bytes:
    """Canonical JSON of an entry's content (everything but seq and the hashes): sorted keys,
    no spaces, UTF-8. For these values (strings, integers, null, lists, flat objects; no
    floats) it is the RFC 8785 form, made by the C encoder (the rfc8785 package is 10x slower)."""
    body = {k: _at_text(row["at"]) if k == "at" else row.get(k) for k in BODY_KEYS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def entry_hash(seq: int, prev_hash: str, body: bytes) -> str:
    """SHA-256(prev_hash ‖ "\n" ‖ seq ‖ "\n" ‖ body): the content is serialised before the
    append takes its lock; only this hash is computed under it."""
    return hashlib.sha256(f"{prev_hash}\n{seq}\n".encode() + body).hexdigest()


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def entry(*, department: str, purpose: str, action: str, outcome: str, holder: str | None = None,
          datasets: list[str] | None = None, fields: list[str] | None = None,
          subject: str | None = None, detail: dict | None = None, at: datetime | None = None) -> dict:
    """An entry's row before it is chained (seq and hashes are set when it is written). Text
    a caller sent (a refused purpose) may hold NUL, which PostgreSQL cannot store: it is kept
    as U+FFFD, so that one such request cannot fail its group's commit."""
    row = {"at": at or clock.now(), "department": _text(department[:128]),
           "purpose": _text(purpose[:255]), "action": action, "holder": _text(holder),
           "datasets": datasets, "fields": fields, "subject": _text(subject[:128]) if subject else None,
           "outcome": outcome, "detail": detail}
    row["_body"] = body_bytes(row)
    return row


def append(engine: Engine, **kw) -> int:
    """Write one entry; returns its seq."""
    return append_many(engine, [entry(**kw)])[-1]


# The append on SQLite, as three statements run on the driver (catalog/db/rawdb.py): take n
# numbers from the head (the write lock serialises appends), insert the chained rows, set the hash.
_COLS = ("at", "department", "purpose", "action", "holder", "datasets", "fields", "subject",
         "outcome", "detail", "seq", "prev_hash", "entry_hash")
_JSON_COLS = ("datasets", "fields", "detail")
_ONE = sa.literal_column("1")    # the head row (literal: the statements take only named values)
_TAKE = (sa.update(_head).where(_head.c.id == _ONE).values(seq=_head.c.seq + sa.bindparam("n"))
         .returning(_head.c.seq, _head.c.hash))
_INSERT = sa.insert(_log).values({k: sa.bindparam(k) for k in _COLS})
_SET_HASH = sa.update(_head).where(_head.c.id == _ONE).values(hash=sa.bindparam("hash"))


def _chain(rows: list[dict], last: int, prev: str) -> tuple[list[dict], str]:
    """Number and hash `rows` after the entry (last - len(rows), prev)."""
    seq, out = last - len(rows), []
    for given in rows:
        seq += 1
        row = {k: v for k, v in given.items() if k != "_body"}
        h = entry_hash(seq, prev, given.get("_body") or body_bytes(given))
        row.update(seq=seq, prev_hash=prev, entry_hash=h)
        prev = h
        out.append(row)
    return out, prev


def _driver_values(rows: list[dict], sqlite: bool) -> list[dict]:
    """Column values as SQLAlchemy's types would bind them: JSON as json.dumps text (None as
    JSON null), and on SQLite the time as naive UTC text (YYYY-MM-DD HH:MM:SS.ffffff)."""
    out = []
    for r in rows:
        v = {k: r.get(k) for k in _COLS}
        for k in _JSON_COLS:
            v[k] = "null" if v[k] is None else json.dumps(v[k])
        if sqlite:
            at = v["at"]
            at = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
            v["at"] = at.isoformat(sep=" ", timespec="microseconds")
        out.append(v)
    return out


def _statements(r, rows: list[dict]):
    """(take, insert, set hash) as (SQL, parameters) for the raw connections `r`."""
    return r.args(_TAKE, {"n": len(rows)}), r.compiled(_INSERT), r.compiled(_SET_HASH)


def append_many(engine: Engine, rows: list[dict], wait: bool = True) -> list[int]:
    """Chain and write entries in one transaction (the API's group commit); returns their seqs.
    wait=False: raise rawdb.Busy at once if another process holds SQLite's write lock."""
    if not rows:
        return []
    r = raw(engine)
    if r.dialect == "postgresql":
        with r.connection() as c:
            return _seqs(rows, c.execute(_PG_APPEND, (_pg_entries(rows),), prepare=True).fetchone()[0])
    (take, take_args), (insert, order), (set_hash, hash_order) = _statements(r, rows)
    with r.transaction(wait) as c:
        cur = c.cursor()
        cur.execute(take, take_args)
        out, prev = _chain(rows, *cur.fetchone())
        values = _driver_values(out, r.dialect == "sqlite")
        cur.executemany(insert, [tuple(v[k] for k in order) for v in values] if order else values)
        cur.execute(set_hash, (prev,) if hash_order else {"hash": prev})
    return [x["seq"] for x in out]


# PostgreSQL: the database chains the entries (function audit_append, migration 0010) under the
# head's row lock, with the hash above computed from the body serialised here: one statement,
# its own transaction in autocommit, one round trip whichever process appends.
_PG_APPEND = "SELECT audit_append(%s::json)"


def _pg_entries(rows: list[dict]) -> str:
    """The entries as audit_append takes them: a JSON array of columns (the JSON ones as JSON
    text) plus each entry's body."""
    return json.dumps([{**{k: v[k] for k in BODY_KEYS}, "at": _at_text(r["at"]),
                        "body": (r.get("_body") or body_bytes(r)).decode()}
                       for r, v in zip(rows, _driver_values(rows, False))],
                      ensure_ascii=False, separators=(",", ":"))


def _seqs(rows: list[dict], last: int) -> list[int]:
    return list(range(last - len(rows) + 1, last + 1))


async def append_many_async(conn, rows: list[dict]) -> list[int]:
    """The same on a psycopg AsyncConnection in autocommit (the API on PostgreSQL: the loop
    keeps serving while the commit waits for the disk)."""
    if not rows:
        return []
    cur = await conn.execute(_PG_APPEND, (_pg_entries(rows),), prepare=True)
    return _seqs(rows, (await cur.fetchone())[0])


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    size: int = 0                 # the head walked to: its seq and hash
    head_hash: str = GENESIS

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def verify_chain(engine: Engine, batch: int = 10_000, progress=None,
                 start: tuple[int, str] | None = None) -> ChainReport:
    """Walk the log in seq order up to the head read first; report the first altered, missing
    or reordered entry, or an entry outside the chain. Entries appended while the walk runs are
    past that head: the next check covers them. `progress(done, total)` is called after each
    batch. `start` = (size, head hash) of a checkpoint already verified: the entry at that size
    must still have that hash, and the walk goes on from there."""
    last, prev = start or (0, GENESIS)
    expected, n = last + 1, 0
    cols = [_log.c[k] for k in ("seq", "at", "department", "purpose", "action", "holder",
                                "datasets", "fields", "subject", "outcome", "detail",
                                "prev_hash", "entry_hash")]
    with engine.connect() as c:
        head_seq, head_hash = c.execute(sa.select(_head.c.seq, _head.c.hash)).one()
        if last > head_seq:
            return ChainReport(False, 0, head_seq + 1, f"the chain has {head_seq} entries, fewer than the "
                                                       f"checkpoint's {last}: entries were deleted")
        if last and c.scalar(sa.select(_log.c.entry_hash).where(_log.c.seq == last)) != prev:
            return ChainReport(False, 0, last, f"entry {last} does not have the hash of the checkpoint of "
                                               f"size {last}: the log was rewritten below it")
        while True:
            rows = c.execute(sa.select(*cols).where(_log.c.seq > last, _log.c.seq <= head_seq)
                             .order_by(_log.c.seq).limit(batch)).mappings().all()
            if not rows:
                break
            for r in rows:
                if r["seq"] != expected:
                    return ChainReport(False, n, expected, f"entry {expected} is missing")
                if r["prev_hash"] != prev:
                    return ChainReport(False, n, r["seq"], "its link to the previous entry was altered")
                if entry_hash(r["seq"], prev, body_bytes(r)) != r["entry_hash"]:
                    return ChainReport(False, n, r["seq"], "its content was altered")
                prev, expected, n = r["entry_hash"], expected + 1, n + 1
            last = rows[-1]["seq"]
            if progress:
                progress(n, head_seq)
    if expected - 1 < head_seq:
        return ChainReport(False, n, expected, f"entries {expected}..{head_seq} are missing (deleted from the end)")
    if head_seq and prev != head_hash:
        return ChainReport(False, n, head_seq, "the newest entry does not match the chain head")
    with engine.connect() as c:   # one statement: the head it compares with is this snapshot's
        outside = c.scalar(sa.select(sa.func.count()).select_from(_log).where(_outside_chain()))
    if outside:
        return ChainReport(False, n, None, f"{outside} entries are outside the chain (no chain position, "
                                           "or one past its head): they were written around it")
    return ChainReport(True, n, size=head_seq, head_hash=prev)


def _head_seq():
    return sa.select(_head.c.seq).where(_head.c.id == _ONE).scalar_subquery()


def _outside_chain():
    """Rows that are not entries of the chain: no position, or one outside 1..head."""
    return sa.or_(_log.c.seq.is_(None), _log.c.seq < 1, _log.c.seq > _head_seq())


def _in_chain():
    return sa.and_(_log.c.seq >= 1, _log.c.seq <= _head_seq())


REPORT_LIMIT = 500


def holder_report(engine: Engine, holder: str, limit: int = REPORT_LIMIT,
                  before: int | None = None) -> tuple[list[dict], bool]:
    """Who looked at this holder's records, when and why (and for whom, when a peer exchange asked
    on behalf of its consumer: on_behalf_of): entries of the chain, newest first,
    at most `limit` with seq < `before`; and whether older ones remain (page on with
    before = the last seq)."""
    where = [_log.c.holder == holder, _in_chain()]
    if before is not None:
        where.append(_log.c.seq < before)
    with engine.connect() as c:
        rows = c.execute(sa.select(_log.c.seq, _log.c.at, _log.c.department, _log.c.purpose,
                                   _log.c.action, _log.c.datasets, _log.c.fields, _log.c.outcome,
                                   _log.c.detail)
                         .where(*where).order_by(_log.c.seq.desc())
                         .limit(limit + 1)).mappings().all()
    return [{**{k: v for k, v in r.items() if k != "detail"}, "at": _at_text(r["at"]),
             "on_behalf_of": _on_behalf_of(r["detail"])} for r in rows[:limit]], len(rows) > limit


def _on_behalf_of(detail) -> str | None:
    """The end consumer a peer exchange asked for (its access report, catalog/serving/federation.py)."""
    return detail.get("on_behalf_of") if isinstance(detail, dict) else None


def search(engine: Engine, *, holder: str | None = None, department: str | None = None,
           purpose: str | None = None, action: str | None = None, since: datetime | None = None,
           until: datetime | None = None, before: int | None = None,
           limit: int = 50) -> tuple[int, list[dict]]:
    """Entries matching every given filter (exact values; `at` in [since, until)), newest
    first: (how many match, the first `limit` of them with seq < `before`). Paging by seq keeps
    pages stable while new entries arrive."""
    where = [c == v for c, v in ((_log.c.holder, holder), (_log.c.department, department),
                                 (_log.c.purpose, purpose), (_log.c.action, action)) if v]
    where.append(_in_chain())
    if since is not None:
        where.append(_log.c.at >= since)
    if until is not None:
        where.append(_log.c.at < until)
    with engine.connect() as c:
        total = c.scalar(sa.select(sa.func.count()).select_from(_log).where(*where))
        if before is not None:
            where.append(_log.c.seq < before)
        rows = c.execute(sa.select(_log.c.seq, _log.c.at, _log.c.department, _log.c.purpose,
                                   _log.c.action, _log.c.holder, _log.c.datasets, _log.c.subject,
                                   _log.c.outcome, _log.c.detail)
                         .where(*where).order_by(_log.c.id.desc()).limit(limit)).mappings().all()
    return total, [{**r, "at": _at_text(r["at"])} for r in rows]


def actions(engine: Engine) -> list[str]:
    """The actions that occur in the log (for a search form)."""
    with engine.connect() as c:
        return sorted(c.scalars(sa.select(_log.c.action).distinct()))
