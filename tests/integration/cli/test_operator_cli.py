"""The operator's CLI under the same rules as the API: `lookup` and `export` act for a
department only with its exchange key, through catalog/serving/consumer.py, audited with the OS account
that asked; grants are bounded like credentials; exit codes (4 bad input, 7 not found)."""
from __future__ import annotations

import json
import os
import pwd

import pytest
import sqlalchemy as sa

from cli import main as cli

DATASET = "business_licence.market_regulation"
ITEM = "DJ-SCJG-0003"
OS_USER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def published_home(tmp_path_factory, silo_2k):
    from exchange import stages
    from tests.conftest import home_env, register_demo_source

    home = tmp_path_factory.mktemp("operator") / "home"
    with home_env(home):
        register_demo_source(home, silo_2k[0])
        stages.run_all("smr_business_licence", "op-r1")
    return home


@pytest.fixture
def op(published_home, monkeypatch, capsys):
    """The published home as this test's environment; sharing back to conditional, no grants."""
    from base.settings import reset_settings
    from tests.conftest import TEST_PASSPHRASE, catalog

    monkeypatch.setenv("EXCHANGE_HOME", str(published_home))
    monkeypatch.delenv("EXCHANGE_CATALOG_URL", raising=False)
    monkeypatch.delenv("EXCHANGE_SOURCES_DIR", raising=False)
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
    reset_settings()
    engine = catalog().engine
    with engine.begin() as c:
        c.execute(sa.text("update datasets set sharing = 'conditional' where id = :d"), {"d": DATASET})
        c.execute(sa.text("update grants set revoked_at = CURRENT_TIMESTAMP where revoked_at is null"))
        rid, holder = c.execute(sa.text("select record_id, holder_key from records where status = 'valid' "
                                        "order by leaf_index limit 1")).one()
    cli(["departments", "add", "transport", "交通运输局"])
    cli(["departments", "add", "culture", "文化和旅游局"])
    capsys.readouterr()
    yield {"engine": engine, "record_id": rid, "holder": holder}
    reset_settings()


def _key(capsys, dept: str) -> str:
    capsys.readouterr()
    assert cli(["credentials", "issue", dept, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["key"]


def _last_audit(engine, action: str) -> dict:
    with engine.connect() as c:
        row = c.execute(sa.text("select department, purpose, outcome, detail from audit_log "
                                "where action = :a order by seq desc limit 1"), {"a": action}).mappings().first()
    return {**row, "detail": json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]}


def test_lookup_without_the_departments_key_is_refused_and_audited(op, capsys):
    code = cli(["lookup", op["holder"], "--department", "transport", "--purpose", ITEM, "--json"])
    out = capsys.readouterr()
    assert code == 9, out
    assert "records" not in out.out and "--key" in out.err and "EXCHANGE_API_KEY" in out.err
    entry = _last_audit(op["engine"], "lookup")
    assert entry["outcome"] == "refused:401" and entry["department"] == "-"
    assert entry["detail"]["operator"].startswith(f"{OS_USER}@")


def test_lookup_follows_the_consumer_rules_and_audits_who_asked(op, capsys, monkeypatch):
    key = _key(capsys, "transport")
    argv = ["lookup", op["holder"], "--purpose", ITEM, "--key", key, "--json"]
    assert cli(argv) == 0
    assert json.loads(capsys.readouterr().out)["records"] == []       # conditional, no grant
    entry = _last_audit(op["engine"], "lookup")
    assert entry["department"] == "transport" and entry["purpose"] == ITEM
    assert entry["detail"]["records"] == 0 and entry["detail"]["operator"].startswith(f"{OS_USER}@")
    assert entry["detail"]["via"] == "cli"

    assert cli(["grants", "add", "transport", DATASET, "--purpose", ITEM]) == 0
    capsys.readouterr()
    monkeypatch.setenv("EXCHANGE_API_KEY", key)                        # the key from the environment
    assert cli(["lookup", op["holder"], "--purpose", ITEM, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["records"]
    assert [r["record_id"] for r in rows] == [op["record_id"]]

    with op["engine"].begin() as c:
        c.execute(sa.text("update datasets set sharing = 'not_shared' where id = :d"), {"d": DATASET})
    assert cli(["lookup", op["holder"], "--purpose", ITEM, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == []       # not shared: never


def test_a_key_acts_only_for_its_own_department(op, capsys):
    key = _key(capsys, "transport")
    code = cli(["lookup", op["holder"], "--department", "culture", "--purpose", ITEM, "--key", key])
    err = capsys.readouterr().err
    assert code == 9 and "transport" in err and "culture" in err
    assert _last_audit(op["engine"], "lookup")["outcome"] == "refused:403"


def test_lookup_needs_a_purpose_like_the_api(op, capsys):
    key = _key(capsys, "transport")
    assert cli(["lookup", op["holder"], "--key", key]) == 4
    assert "purpose" in capsys.readouterr().err


def test_export_follows_the_consumer_rules(op, capsys, tmp_path):
    out = tmp_path / "b.json"
    assert cli(["export", op["record_id"], "--department", "transport", "--purpose", ITEM, "-o", str(out)]) == 9
    assert not out.exists()
    key = _key(capsys, "transport")
    assert cli(["export", op["record_id"], "--purpose", ITEM, "--key", key, "-o", str(out)]) == 9
    assert not out.exists()                                          # conditional, no grant
    assert _last_audit(op["engine"], "bundle")["outcome"] == "refused:403"
    assert cli(["grants", "add", "transport", DATASET, "--purpose", ITEM, "--fields", "licence_number"]) == 0
    assert cli(["export", op["record_id"], "--purpose", ITEM, "--key", key, "-o", str(out)]) == 0
    bundle = json.loads(out.read_text())
    assert bundle["disclosure"] == "partial" and set(bundle["record"]) == {"record_id", "licence_number"}
    entry = _last_audit(op["engine"], "bundle")
    assert entry["department"] == "transport" and entry["outcome"] == "allowed"
    assert entry["detail"]["operator"].startswith(f"{OS_USER}@")


@pytest.mark.parametrize("holder", ["", "12345", "９１３３" + "0" * 14])
def test_a_malformed_holder_id_is_bad_input(op, capsys, holder):
    key = _key(capsys, "transport")
    assert cli(["lookup", holder, "--purpose", ITEM, "--key", key]) == 4
    err = capsys.readouterr().err
    assert "holder id" in err and "no records held" not in err


def test_an_unknown_record_is_not_found_and_a_malformed_one_bad_input(op, capsys):
    key = _key(capsys, "transport")
    assert cli(["export", "0" * 32, "--purpose", ITEM, "--key", key]) == 7
    assert cli(["export", "not-a-record", "--purpose", ITEM, "--key", key]) == 4


def test_quarantine_of_an_unknown_dataset_is_not_found(op, capsys):
    assert cli(["quarantine", "no.such_dataset"]) == 7
    assert "no dataset 'no.such_dataset'" in capsys.readouterr().err


@pytest.mark.parametrize("days", ["-1", "0", "731"])
def test_grants_are_bounded_like_credentials(op, capsys, days):
    assert cli(["grants", "add", "transport", DATASET, "--purpose", ITEM, "--days", days]) == 4
    assert "1 to 730 days" in capsys.readouterr().err
    assert cli(["credentials", "issue", "transport", "--days", days]) == 4
    with op["engine"].connect() as c:
        assert c.execute(sa.text("select count(*) from grants where revoked_at is null")).scalar_one() == 0
