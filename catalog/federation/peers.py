"""Peers (other exchanges this one mirrors from) and their mirrored datasets (tables `peers`,
`mirrors`, migration 0023).

Every change is audited through `audit`, a function called as catalog.serving.audit.append is
(engine, department=, purpose=, action=, outcome=, subject=, detail=): the audit log lives in
catalog/serving, a layer above this one, so the caller hands it in (None: not audited here).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from base import clock
from base.errors import ConfigError, NotFound
from catalog.db.models import Mirror, Peer

PEER_COLUMNS = ("name", "url", "fingerprint", "keys", "key_status", "credential", "added_at", "added_by",
                "last_sync_at", "last_outcome", "last_error")
MIRROR_COLUMNS = ("dataset", "peer", "source_id", "version", "head_hash", "state", "last_error",
                  "checked_at", "synced_at")
FAILED_STATES = ("refused", "failed")


def _peer(p: Peer) -> dict:
    return {c: getattr(p, c) for c in PEER_COLUMNS}


def _mirror(m: Mirror) -> dict:
    return {c: getattr(m, "dataset_id" if c == "dataset" else c) for c in MIRROR_COLUMNS}


class Peers:
    def __init__(self, engine: Engine, audit: Callable[..., object] | None = None):
        self.engine = engine
        self._audit = audit

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def _log(self, action: str, by: str | None, peer: str, detail: dict | None = None,
             datasets: list[str] | None = None) -> None:
        if self._audit is not None:
            self._audit(self.engine, department=by or "operator", purpose="administration", action=action,
                        outcome="ok", subject=peer, datasets=datasets, detail=detail)

    def add(self, name: str, url: str, fingerprint: str, keys: list[dict], key_status: str | None,
            credential: str | None, by: str | None, now: datetime) -> dict:
        """A new peer with its pinned keys (trust.peer_keys.pin); ConfigError if the name is taken."""
        with self._session() as s, s.begin():
            if s.get(Peer, name) is not None:
                raise ConfigError(f"对等平台已存在 (peer exists): {name}; remove it first to add it again")
            peer = Peer(name=name, url=url.rstrip("/"), fingerprint=fingerprint, keys=keys, key_status=key_status,
                        credential=credential, added_at=now, added_by=by)
            s.add(peer)
        self._log("peer_add", by, name, {"url": peer.url, "fingerprint": fingerprint,
                                         "kids": [k.get("kid") for k in keys], "credential": credential})
        return _peer(peer)

    def get(self, name: str) -> dict:
        with self._session() as s:
            peer = s.get(Peer, name)
            if peer is None:
                known = s.scalars(sa.select(Peer.name).order_by(Peer.name)).all()
                raise NotFound(f"没有这个对等平台 (no peer) {name!r}; known: {', '.join(known) or '(none)'}")
            return _peer(peer)

    def list(self) -> list[dict]:
        """Every peer with its mirrors (dataset, version, state, last_error, synced_at …)."""
        with self._session() as s:
            peers = s.scalars(sa.select(Peer).order_by(Peer.name)).all()
            mirrors = s.scalars(sa.select(Mirror).order_by(Mirror.dataset_id)).all()
        out = []
        for p in peers:
            out.append({**_peer(p), "mirrors": [_mirror(m) for m in mirrors if m.peer == p.name]})
        return out

    def remove(self, name: str, by: str | None, now: datetime | None = None) -> list[str]:
        """The peer goes; its mirrored datasets stay as they are, read-only (no source updates
        them any more), their mirrors rows marked removed: still another exchange's records,
        never served on to other peers. Returns those datasets."""
        with self._session() as s, s.begin():
            peer = s.get(Peer, name)
            if peer is None:
                raise NotFound(f"没有这个对等平台 (no peer) {name!r}")
            datasets = list(s.scalars(sa.select(Mirror.dataset_id).where(Mirror.peer == name)))
            s.execute(sa.update(Mirror).where(Mirror.peer == name).values(
                state="removed", last_error=None, checked_at=now or clock.now()))
            s.delete(peer)
        self._log("peer_remove", by, name, {"kept_read_only": datasets}, datasets or None)
        return datasets

    def set_keys(self, name: str, keys: list[dict], key_status: str | None, by: str | None = None) -> None:
        """The peer's trusted keys after following its key status document (trust.peer_keys.follow);
        audited when the set of keys or their status changes."""
        with self._session() as s, s.begin():
            peer = s.get(Peer, name)
            if peer is None:
                raise NotFound(f"没有这个对等平台 (no peer) {name!r}")
            before = {(k.get("kid"), k.get("status")) for k in peer.keys or []}
            peer.keys, peer.key_status = keys, key_status
        after = {(k.get("kid"), k.get("status")) for k in keys}
        if after != before:
            self._log("peer_keys", by or "peer-sync", name, {"keys": sorted(f"{k}:{st}" for k, st in after)})

    def record_sync(self, name: str, outcome: str, error: str | None, now: datetime) -> None:
        with self._session() as s, s.begin():
            peer = s.get(Peer, name)
            if peer is None:
                raise NotFound(f"没有这个对等平台 (no peer) {name!r}")
            peer.last_sync_at, peer.last_outcome, peer.last_error = now, outcome, error
        if outcome != "ok":
            self._log("peer_sync", "peer-sync", name, {"outcome": outcome, "error": error})

    def mirror(self, dataset: str) -> dict | None:
        with self._session() as s:
            m = s.get(Mirror, dataset)
            return _mirror(m) if m else None

    def mirrors(self, peer: str | None = None) -> list[dict]:
        q = sa.select(Mirror).order_by(Mirror.dataset_id)
        if peer is not None:
            q = q.where(Mirror.peer == peer)
        with self._session() as s:
            return [_mirror(m) for m in s.scalars(q)]

    def mirror_checked(self, dataset: str, now: datetime) -> None:
        """A sync found the mirrored dataset as the peer shows it (nothing refused): state ok."""
        with self._session() as s, s.begin():
            m = s.get(Mirror, dataset)
            if m is None:
                raise NotFound(f"数据集 {dataset} 不是镜像 (not a mirrored dataset)")
            was = m.state
            m.state, m.last_error, m.checked_at = "ok", None, now
            peer = m.peer
        if was != "ok":
            self._log("mirror_ok", "peer-sync", peer, {"was": was}, [dataset])

    def mirror_failed(self, dataset: str, state: str, error: str, now: datetime) -> None:
        """A mirrored dataset refused or failed: its version and head stay the last good ones."""
        if state not in FAILED_STATES:
            raise ValueError(f"state {state!r}: one of {', '.join(FAILED_STATES)}")
        with self._session() as s, s.begin():
            m = s.get(Mirror, dataset)
            if m is None:
                raise NotFound(f"数据集 {dataset} 不是镜像 (not a mirrored dataset)")
            m.state, m.last_error, m.checked_at = state, error, now
            peer = m.peer
        self._log(f"mirror_{state}", "peer-sync", peer, {"error": error}, [dataset])
