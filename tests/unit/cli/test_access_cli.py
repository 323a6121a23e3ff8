"""CLI for departments, credentials, grants and the audit chain; every change audited."""
from __future__ import annotations

import json

import sqlalchemy as sa

from cli import main as cli


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
    from cli import catalog
    with catalog().engine.begin() as c:
        stored = c.execute(sa.text("select secret_hash from credentials")).scalar_one()
        assert cred["key"].split(".")[1] not in stored                 # only the hash is kept
        c.execute(sa.text("update audit_log set department = 'someone-else' where seq = 2"))
    assert cli(["audit-verify"]) == 8
    assert "entry 2" in capsys.readouterr().err


def test_an_entry_outside_the_chain_fails_verification_and_stays_out_of_reports(home, capsys):
    """A row inserted without a chain position (or with one past the head) is not an entry of
    the log: audit-verify fails (exit 8) and the holder's access report does not list it."""
    from cli import catalog

    holder = "91350100M000100Y43"
    assert cli(["departments", "add", "smr-lift", "Lift office"]) == 0
    engine = catalog().engine
    insert = ("insert into audit_log (at, department, purpose, action, outcome, holder, seq) "
              "values ('2026-11-21 09:00:00.000000', 'forger', 'DJ-SCJG-0003', 'lookup', 'allowed', :h, :s)")
    for seq in (None, 99, 0):
        with engine.begin() as c:
            c.execute(sa.text(insert), {"h": holder, "s": seq})
        capsys.readouterr()
        assert cli(["access-report", holder, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == [], seq
        assert cli(["audit-verify"]) == 8, seq
        assert "outside the chain" in capsys.readouterr().err
        with engine.begin() as c:
            c.execute(sa.text("delete from audit_log where department = 'forger'"))
        assert cli(["audit-verify"]) == 0


def test_the_access_report_comes_a_page_at_a_time(home, capsys):
    """No silent cap: a page says when older entries remain, and the next page starts there."""
    from catalog.serving import audit
    from cli import catalog

    holder, engine = "91350100M000100Y43", catalog().engine
    audit.append_many(engine, [audit.entry(department=f"d{i}", purpose="DJ-SCJG-0003", action="lookup",
                                           outcome="allowed", holder=holder) for i in range(7)])
    capsys.readouterr()
    pages, before = [], []
    while True:
        assert cli(["access-report", holder, "--limit", "3", "--json", *before]) == 0
        out = capsys.readouterr()
        rows = json.loads(out.out)
        pages.append([r["department"] for r in rows])
        if "更多 (more)" not in out.err:
            break
        before = ["--before", str(rows[-1]["seq"])]
        assert f"--before {rows[-1]['seq']}" in out.err
    assert pages == [["d6", "d5", "d4"], ["d3", "d2", "d1"], ["d0"]]
    assert cli(["access-report", holder, "--limit", "0"]) == 4
