"""One DAG `peer__<name>` per peer in the catalogue (exchange/dag_factory.py::build_peers), thin,
every 15 minutes, no catchup; a catalogue that cannot be read hides no other DAG. Peers is a
stand-in here (catalog/federation/peers.py is another helper's); tests/e2e/test_dagbag.py and
the federation harness parse the real one."""
from __future__ import annotations

import sys
import types

import pytest

pytestmark = pytest.mark.federation


def _peers_module(rows=None, error=None):
    m = types.ModuleType("catalog.federation.peers")

    class Peers:
        def __init__(self, engine):
            self.engine = engine

        def list(self):
            if error:
                raise error
            return rows

    m.Peers = Peers
    return m


def test_a_dag_per_peer(home, monkeypatch):
    monkeypatch.setitem(sys.modules, "catalog.federation.peers", _peers_module([
        {"name": "district", "url": "http://127.0.0.1:9/", "mirrors": []},
        {"name": "city", "url": "http://127.0.0.1:10", "mirrors": [{"dataset": "bl.smr"}]}]))
    from exchange.dag_factory import PEER_SCHEDULE, build_peers

    dags = build_peers()
    assert sorted(dags) == ["peer__city", "peer__district"]
    dag = dags["peer__district"]
    assert [t.task_id for t in dag.tasks] == ["sync"] and dag.catchup is False and dag.max_active_runs == 1
    assert PEER_SCHEDULE == "*/15 * * * *" and "peer" in dag.tags
    assert "district" in dag.dag_display_name and "http://127.0.0.1:9/" in dag.description


def test_an_unreadable_catalogue_makes_no_peer_dags(home, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "catalog.federation.peers", _peers_module(error=RuntimeError("db down")))
    from exchange.dag_factory import build_peers

    assert build_peers() == {}
    assert "peers not loaded: RuntimeError: db down" in caplog.text


def test_the_task_fails_on_an_outcome_other_than_ok():
    from base.errors import SourceError, VerificationError
    from exchange.mirroring import raise_for_outcome

    ok = {"peer": "d", "outcome": "ok", "datasets": [], "reports": 0}
    assert raise_for_outcome(ok) is ok
    bad = {"dataset": "bl.smr", "state": "refused", "error": "mirror refused (rewrite)"}
    with pytest.raises(VerificationError, match="bl.smr: mirror refused"):
        raise_for_outcome({**ok, "outcome": "refused", "datasets": [bad]})
    with pytest.raises(SourceError, match="peer d: down"):
        raise_for_outcome({**ok, "outcome": "failed", "error": "down"})
