"""CLI for departments, credentials, grants and the audit chain; every change audited."""
from __future__ import annotations

import json

import sqlalchemy as sa

from exchange.cli import main as cli


def test_admin_commands_are_audited_and_chain_verifies(home, capsys):
    assert cli(["departments", "add", "smr-lift", "Lift office", "--json"]) == 0
    assert cli(["credentials", "issue", "smr-lift", "--days", "30", "--json"]) == 0
    cred = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cred["key"].startswith(f"exk_{cred['key_id']}.")
    assert cli(["credentials", "revoke", cred["key_id"]]) == 0
    assert cli(["credentials", "revoke", cred["key_id"]]) == 7          # not found: already revoked
    assert cli(["grants", "add", "nobody", "x.y", "--purpose", "DJ-SCJG-0003"]) == 7
    capsys.readouterr()
    assert cli(["audit-verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["entries"] == 3
    from exchange.cli import catalog
    with catalog().engine.begin() as c:
        stored = c.execute(sa.text("select secret_hash from credentials")).scalar_one()
        assert cred["key"].split(".")[1] not in stored                 # only the hash is kept
        c.execute(sa.text("update audit_log set department = 'someone-else' where seq = 2"))
    assert cli(["audit-verify"]) == 8
    assert "entry 2" in capsys.readouterr().err
