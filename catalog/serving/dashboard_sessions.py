"""Dashboard sessions, kept in the catalogue so that every worker process sees a logout.

A session is a random 256-bit token (in the browser's cookie only); the table keeps its SHA-256
(`row`), the auditor's key id, when it expires and when it ended. Whoever reads the table
cannot log in with what is there.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from base import clock
from catalog.db.models import DashboardSession

_T = DashboardSession.__table__


def _now(now: datetime | None) -> datetime:
    return now or clock.now()


def row(token: str) -> str:
    """The stored id of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(engine: Engine, key_id: str, ttl_seconds: int, now: datetime | None = None) -> str:
    """A new session for the key; returns its token (never stored). Sessions ended or expired
    a day ago and more are swept."""
    now = _now(now)
    token = secrets.token_urlsafe(32)
    with engine.begin() as c:
        c.execute(_T.delete().where(sa.or_(_T.c.expires_at < now - timedelta(days=1),
                                           _T.c.ended_at < now - timedelta(days=1))))
        c.execute(_T.insert().values(id=row(token), key_id=key_id, created_at=now,
                                     expires_at=now + timedelta(seconds=ttl_seconds)))
    return token


def key_of(engine: Engine, session_row: str, now: datetime | None = None) -> str | None:
    """The key id of a live session (by its row id), else None (unknown, ended or expired)."""
    with engine.connect() as c:
        r = c.execute(sa.select(_T.c.key_id, _T.c.expires_at).where(
            _T.c.id == session_row, _T.c.ended_at.is_(None))).first()
    if r is None:
        return None
    expires = r.expires_at if r.expires_at.tzinfo else r.expires_at.replace(tzinfo=UTC)
    return r.key_id if expires > _now(now) else None


def end(engine: Engine, session_row: str, now: datetime | None = None) -> None:
    with engine.begin() as c:
        c.execute(_T.update().where(_T.c.id == session_row, _T.c.ended_at.is_(None))
                  .values(ended_at=_now(now)))
