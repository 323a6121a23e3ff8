"""Signing keys are made only by `exchange keys` commands: a run that finds none fails (exit 2)
saying what to run, and mints nothing."""
from __future__ import annotations

import json
import shutil

from base.settings import get_settings
from cli import main as cli
from tests.conftest import catalog, ledger, register_demo_source

SOURCE = "smr_business_licence"


def test_a_run_without_a_signing_key_fails_and_mints_none(home, silo_2k, capsys):
    keys_dir = get_settings().keys_dir
    register_demo_source(home, silo_2k[0])
    shutil.rmtree(keys_dir)                      # the helper made one: this machine has none
    assert cli(["run", SOURCE, "--local", "--key", "r1"]) == 2
    err = capsys.readouterr().err
    assert "no signing key in" in err and "run `exchange keys create`" in err
    assert not list(keys_dir.glob("*.pem")) if keys_dir.exists() else True
    run = ledger().get_run(SOURCE, "r1")
    assert run.state == "failed" and "exchange keys create" in run.message
    assert catalog().datasets()[0]["version"] is None                  # nothing published

    assert cli(["keys", "create", "--json"]) == 0
    kid = json.loads(capsys.readouterr().out)["active"]
    assert json.loads(get_settings().jwks_path.read_text())["keys"][0]["kid"] == kid
    assert cli(["keys", "create"]) == 2                                  # once: then `rotate`
    assert "already has a signing key" in capsys.readouterr().err
    assert cli(["run", SOURCE, "--local", "--key", "r2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "published"
    assert catalog().versions("business_licence.market_regulation")[0]["kid"] == kid


def test_keys_list_makes_no_key(home, capsys):
    assert cli(["keys", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not list(get_settings().keys_dir.glob("*.pem"))
