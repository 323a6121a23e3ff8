"""Peers of this exchange (`exchange peers add|list|remove|cosignatures`, the dashboard): another
exchange registered with its key set pinned from a fingerprint given out of band (issue #19,
docs/federation.md). The catalogue's side is catalog/federation/peers.py; the HTTP side
connectors/peer.py; the sync exchange/mirroring.py."""
from __future__ import annotations

from datetime import datetime

from base import clock
from base.errors import ConfigError
from connectors.credentials import airflow_connection
from connectors.peer import PeerClient
from exchange.catalogue import open_catalog

TIMEOUT = 30.0


def field(row, name: str, default=None):
    """A peer's or mirror's field, whether the catalogue hands a dict or a row object."""
    return row.get(name, default) if isinstance(row, dict) else getattr(row, name, default)


def api_key(name: str, credential: str | None) -> str | None:
    """The key this exchange presents to the peer: the password of Airflow connection
    `credential` (or AIRFLOW_CONN_<ID>); None without one (the peer then answers 401)."""
    if not credential:
        return None
    key = airflow_connection(credential, f"peer {name}").password
    if not key:
        raise ConfigError(f"对端凭据无密钥 (credential has no key): peer {name}: Airflow connection "
                          f"{credential!r} has no password; put the API key the peer issued to this "
                          "exchange's department there")
    return key


def client(name: str, url: str, credential: str | None) -> PeerClient:
    return PeerClient(url, api_key(name, credential), TIMEOUT, peer=name)


def peers_store(catalog=None):
    from catalog.federation.peers import Peers  # lazy: CLI start (the catalogue)
    from catalog.serving import audit
    return Peers((catalog or open_catalog()).engine, audit.append)     # every change in the audit chain


def add(name: str, url: str, fingerprint: str, credential: str | None = None, by: str | None = None,
        now: datetime | None = None) -> dict:
    """Fetches the peer's JWKS and key status (with the credential), pins the key whose RFC 7638
    thumbprint is `fingerprint` and what it endorses, and stores the peer."""
    from trust import peer_keys  # the pinning rules (pure)

    now = now or clock.now()
    with client(name, url, credential) as c:
        jwks, status = c.jwks(), c.key_status()
    keys = peer_keys.pin(fingerprint, jwks, status)
    store = peers_store()
    store.add(name, url.rstrip("/"), fingerprint, keys, status, credential, by, now)
    return store.get(name)


def listing() -> list[dict]:
    return list(peers_store().list())


def remove(name: str, by: str | None = None):
    return peers_store().remove(name, by)


def cosignatures(dataset: str | None = None, limit: int = 100) -> list[dict]:
    from catalog.federation import cosignatures as cosigs  # lazy: CLI start (the catalogue)
    return cosigs.listing(open_catalog().engine, dataset, limit)
