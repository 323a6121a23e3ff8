"""`exchange peers …`: arguments, Chinese-first tables, --json, exit codes (8 refused, 3
unreachable). The service underneath (exchange/peers.py, exchange/mirroring.py) is replaced by
canned answers here; its own tests are tests/integration/exchange/test_mirroring.py."""
from __future__ import annotations

import json

import pytest

from cli import main as cli
from cli import parser

pytestmark = pytest.mark.federation


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")          # rich folds tables at the terminal's width
PEER = {"name": "district", "url": "http://127.0.0.1:9001", "fingerprint": "k1",
        "keys": [{"kid": "k1", "status": "retired"}, {"kid": "k2", "status": "active", "pinned_by": "k1"}],
        "last_sync_at": "2026-12-07T02:00:00+00:00", "last_outcome": "refused", "last_error": "rewrite",
        "mirrors": [{"dataset": "bl.smr", "version": 3, "state": "refused", "synced_at": None}]}
SUMMARY = {"peer": "district", "outcome": "ok", "reports": 2, "error": None,
           "datasets": [{"dataset": "bl.smr", "from": 2, "to": 3, "records": 10, "state": "ok", "error": None}]}


def test_arguments():
    args = parser().parse_args(["peers", "add", "district", "http://x", "--fingerprint", "k1", "--credential",
                                "district_key", "--json"])
    assert (args.name, args.url, args.fingerprint, args.credential, args.json) == (
        "district", "http://x", "k1", "district_key", True)
    assert parser().parse_args(["peers"]).func.__name__ == "cmd_list"
    assert parser().parse_args(["peers", "cosignatures", "--dataset", "bl.smr"]).dataset == "bl.smr"
    with pytest.raises(SystemExit):
        parser().parse_args(["peers", "add", "district", "http://x"])          # --fingerprint is required


def test_list_chinese_first_and_json(monkeypatch, capsys):
    from exchange import peers

    monkeypatch.setattr(peers, "listing", lambda: [PEER])
    assert cli(["peers", "list"]) == 0
    out = capsys.readouterr().out
    assert "对端交换平台" in out and "district" in out and "被拒 (refused)" in out
    assert "2026-12-07T10:00:00+08:00" in out                        # Beijing time
    assert "k2 (在用 (active))" in out and "bl.smr v3 已拒绝 (refused)" in out
    assert cli(["peers", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["keys"][1]["kid"] == "k2"


@pytest.mark.parametrize("outcome,code", [("ok", 0), ("refused", 8), ("failed", 3)])
def test_sync_exit_codes(monkeypatch, capsys, outcome, code):
    import exchange.mirroring

    monkeypatch.setattr(exchange.mirroring, "sync_peer", lambda name: {**SUMMARY, "peer": name, "outcome": outcome})
    assert cli(["peers", "sync", "district"]) == code
    out = capsys.readouterr().out
    assert "同步 district" in out and "bl.smr" in out and "已送达访问报告 (access reports delivered)：2" in out
    assert cli(["peers", "sync", "district", "--json"]) == code
    assert json.loads(capsys.readouterr().out)["outcome"] == outcome


def test_add_remove_cosignatures(monkeypatch, capsys):
    from exchange import peers

    calls = []
    monkeypatch.setattr(peers, "add", lambda *a: calls.append(a) or PEER)
    monkeypatch.setattr(peers, "remove", lambda name, by: calls.append((name, by)))
    monkeypatch.setattr(peers, "cosignatures", lambda dataset: [
        {"dataset": "bl.smr", "version": 3, "peer": "district", "kid": "kw", "checkpoint": "…",
         "cosignature": "— province.example " + "A" * 100, "cosigned_at": "2026-12-07T02:00:00+00:00"}])
    assert cli(["peers", "add", "district", "http://127.0.0.1:9001/", "--fingerprint", "k1", "--by", "ops"]) == 0
    assert calls[0] == ("district", "http://127.0.0.1:9001/", "k1", None, "ops")
    assert "已登记对端 (peer added) district：http://127.0.0.1:9001" in capsys.readouterr().out
    assert cli(["peers", "remove", "district", "--by", "ops"]) == 0
    assert calls[1] == ("district", "ops") and "镜像数据集保留为只读" in capsys.readouterr().out
    assert cli(["peers", "cosignatures", "--dataset", "bl.smr"]) == 0
    out = capsys.readouterr().out
    assert "见证签名" in out and "province.example" in out and "A" * 100 not in out


def test_json_stdout_is_the_json_alone_while_airflow_logs(monkeypatch, capsys):
    """Reading the credential's Airflow connection sets up Airflow's logging, which binds a
    handler to the stdout of that moment; with --json its lines go to stderr, not into the JSON."""
    import logging
    import sys

    import exchange.mirroring
    from exchange import peers

    def logs(*result):
        def run(*_a, **_k):
            handler = logging.StreamHandler(sys.stdout)        # as Airflow's logging set-up does
            log = logging.getLogger("test.peers.airflow")
            log.addHandler(handler)
            try:
                log.warning("Skipping masking for a secret as it's too short")
            finally:
                log.removeHandler(handler)
            return result[0]
        return run

    monkeypatch.setattr(exchange.mirroring, "sync_peer", logs(SUMMARY))
    monkeypatch.setattr(peers, "add", logs(PEER))
    assert cli(["peers", "sync", "district", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["outcome"] == "ok" and "Skipping masking" in out.err
    assert cli(["peers", "add", "district", "http://x", "--fingerprint", "k1", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["name"] == "district" and "Skipping masking" in out.err
