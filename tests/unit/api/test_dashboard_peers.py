"""/dashboard/peers (an auditor's): each peer, its URL, pinned keys, last sync in Beijing time
and its outcome, its mirrored datasets with version and state; Chinese first; a link in the
nav. Peers.list() is a stand-in here (catalog/federation/peers.py is another helper's)."""
from __future__ import annotations

import dataclasses
import secrets
import sys
import types
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.conftest import dashboard_login

pytestmark = pytest.mark.federation
PEERS = [{"name": "district", "url": "http://127.0.0.1:9001", "fingerprint": "k1",
          "keys": [{"kid": "k1", "status": "compromised", "compromised_at": "2026-12-01T00:00:00+00:00"},
                   {"kid": "k2", "status": "active", "pinned_by": "k1"}],
          "last_sync_at": datetime(2026, 12, 7, 2, 0, tzinfo=UTC), "last_outcome": "refused",
          "last_error": "镜像被拒绝 (mirror refused, rewrite): bl.smr version 2",
          "mirrors": [{"dataset": "bl.smr", "version": 3, "state": "refused", "last_error": "rewrite",
                       "synced_at": datetime(2026, 12, 7, 1, 45, tzinfo=UTC)},
                      {"dataset": "fl.food", "version": None, "state": "ok", "last_error": None, "synced_at": None}]},
         {"name": "city", "url": "http://127.0.0.1:9002", "keys": [], "last_sync_at": None, "last_outcome": None,
          "last_error": None, "mirrors": []}]


@pytest.fixture
def client(home, monkeypatch):
    from api.app import create_app
    from base.settings import get_settings
    from catalog.db.engine import engine_for
    from catalog.serving.access import Access

    m = types.ModuleType("catalog.federation.peers")
    m.Peers = type("Peers", (), {"__init__": lambda self, engine: None, "list": lambda self: PEERS})
    monkeypatch.setitem(sys.modules, "catalog.federation.peers", m)
    settings = dataclasses.replace(get_settings(), dashboard_secret=secrets.token_urlsafe(32))
    access = Access(engine_for(settings.catalog_url), 0)
    access.add_department("audit-x", "审计局", role="auditor")
    access.add_department("tax-x", "税务局")
    keys = {r: access.issue_credential(d)["key"] for r, d in (("auditor", "audit-x"), ("consumer", "tax-x"))}
    with TestClient(create_app(settings, rate=10_000, burst=10_000, cache_ttl=0)) as c:
        c.keys = keys
        yield c


def test_the_peers_page(client):
    dashboard_login(client, client.keys["auditor"], "/dashboard/peers")
    html = client.get("/dashboard/peers").text
    assert "对端交换平台" in html and 'id="nav-peers"' in html and "跨区域同步" in html
    assert 'id="peer-district"' in html and "http://127.0.0.1:9001" in html
    assert 'data-kid="k2"' in html and "在用" in html and "已泄露" in html
    assert "2026-12-07 10:00" in html                                 # Beijing time
    assert 'data-state="refused"' in html and "被拒" in html and "mirror refused, rewrite" in html
    assert 'data-dataset="bl.smr"' in html and "已拒绝" in html and 'data-dataset="fl.food"' in html
    assert 'id="peer-city"' in html and "尚未同步" in html and "尚无镜像的数据集" in html
    en = client.get("/dashboard/peers?lang=en").text
    assert "Peer exchanges" in en


def test_only_auditors_see_it(client):
    dashboard_login(client, client.keys["consumer"], "/dashboard/peers")
    r = client.get("/dashboard/peers", follow_redirects=False)
    assert r.status_code in (303, 403) and "district" not in r.text
