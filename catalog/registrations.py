"""Registrations in the catalogue: each source's TOML text as registered, the one copy every
scheduler, DAG processor, worker and API host reads (a stewards' sources folder is theirs; the
exchange never reads another machine's folder).

Reading is light enough for a DAG parse: one SELECT, no pyarrow, no Great Expectations. The
text is parsed by registration/ (registration.scan_texts): one that no longer parses (after an
upgrade) is reported with why, never hiding the others. Writing goes with Catalog.register, in
its transaction (`put`).
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

import registration
from base.errors import NotFound, UnknownName
from catalog.db.engine import engine_for, reader_for
from catalog.db.models import Source, StoredRegistration
from registration import Registration, Scan

T = StoredRegistration.__table__
COLUMNS = (T.c.source_id, T.c.toml, T.c.sha256, T.c.registered_at, T.c.updated_at, T.c.registered_by,
           T.c.origin)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stored(url: str, source_id: str | None = None) -> list[dict]:
    """Every stored registration (or `source_id`'s), by source id: one SELECT. A catalogue
    without the table yet is opened as every process opens it (engine_for: upgraded where this
    process may, else refused naming `exchange db upgrade`), then read again."""
    query = sa.select(*COLUMNS).order_by(T.c.source_id)
    if source_id is not None:
        query = query.where(T.c.source_id == source_id)
    try:
        with reader_for(url).connect() as conn:
            rows = conn.execute(query).mappings().all()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        with engine_for(url).connect() as conn:       # no table: an empty or older catalogue
            rows = conn.execute(query).mappings().all()
    return [dict(r) for r in rows]


def scan(url: str) -> Scan:
    """The stored registrations that parse, and those that do not, with why."""
    return registration.scan_texts((r["source_id"], r["toml"], r["origin"]) for r in stored(url))


def load_all(url: str) -> dict[str, Registration]:
    """The stored registrations that parse; the others are logged (see `scan`)."""
    return registration.loaded(scan(url))


def get(url: str, source_id: str) -> Registration:
    """One source's registration; ConfigError if its stored text no longer parses, UnknownName
    (with the registered ones) if there is none."""
    rows = stored(url, source_id)
    if not rows:
        raise UnknownName("source", source_id, [r["source_id"] for r in stored(url)],
                          where="未登记的来源 (not registered in the catalogue; `exchange register FILE` "
                                "or `exchange sources sync` adds it)")
    return registration.pick(registration.scan_texts(
        (r["source_id"], r["toml"], r["origin"]) for r in rows), source_id)


def dataset_of(url: str, source_id: str) -> str | None:
    """The dataset the catalogue has `source_id` publish into (None: a new source). An embedded
    catalogue not made yet is not made for this (a dry run writes nothing)."""
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") \
            and not Path(u.database).exists():
        return None
    with engine_for(url).connect() as conn:
        return conn.execute(sa.select(Source.dataset_id).where(Source.id == source_id)).scalar()


def put(s: Session, source_id: str, text: str, *, origin: str | None, by: str | None,
        now: datetime) -> str:
    """Store a registration's text in the caller's transaction: "added", "updated" or
    "unchanged" (the same text)."""
    sha = digest(text)
    row = s.get(StoredRegistration, source_id, with_for_update=True)
    if row is None:
        s.add(StoredRegistration(source_id=source_id, toml=text, sha256=sha, registered_at=now,
                                 updated_at=now, registered_by=by, origin=origin))
        return "added"
    if row.sha256 == sha:
        return "unchanged"
    row.toml, row.sha256, row.updated_at, row.registered_by, row.origin = text, sha, now, by, origin
    return "updated"


def remove(url: str, source_id: str) -> dict:
    """Take a registration out: its DAG goes at the next parse; its dataset, versions and runs
    stay. NotFound if none is stored."""
    with Session(engine_for(url)) as s, s.begin():
        row = s.get(StoredRegistration, source_id, with_for_update=True)
        if row is None:
            known = s.scalars(sa.select(T.c.source_id).order_by(T.c.source_id)).all()
            raise NotFound(f"未找到登记 (no registration): {source_id!r} is not registered; "
                           f"registered: {', '.join(known) or '(none)'}")
        gone = {"source": source_id, "origin": row.origin, "sha256": row.sha256}
        s.delete(row)
    return gone
