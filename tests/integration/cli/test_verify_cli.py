"""`exchange verify` says what is signed: the record inside the leaf, not the bundle's label; a
bundle whose label contradicts the signed record is refused at step 4, online or not."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from cli import main as cli
from tests.conftest import home_env

DATASET = "business_licence.market_regulation"
PURPOSE = "DJ-SCJG-0003"          # a service item that needs a business licence


@pytest.fixture(scope="module")
def exported(published, tmp_path_factory):
    """Two valid records' bundles, exported with the CLI from the published dataset."""
    engine = sa.create_engine(published.catalog_url)
    with engine.connect() as c:
        ids = c.execute(sa.text("select record_id from records where status = 'valid' and valid_to is null "
                                "order by leaf_index limit 2")).scalars().all()
    engine.dispose()
    out = tmp_path_factory.mktemp("bundles")
    with home_env(published.home):
        from catalog.db.engine import engine_for
        from catalog.serving.access import Access

        access = Access(engine_for(published.catalog_url), 0)     # an operator acts with a key
        access.add_department("verify-cli", "Verifying department")
        key = access.issue_credential("verify-cli")["key"]
        for rid in ids:
            assert cli(["export", rid, "--key", key, "--purpose", PURPOSE, "-o", str(out / f"{rid}.json")]) == 0
    return published, [(rid, out / f"{rid}.json") for rid in ids]


def test_verify_names_the_signed_record_and_lists_unsigned_fields(exported, capsys):
    published, [(rid, path), _] = exported
    bundle = json.loads(path.read_text())
    capsys.readouterr()
    with home_env(published.home):
        assert cli(["verify", str(path)]) == 0
        out = capsys.readouterr().out
        assert (f"verified: the signed record {rid} (licence {bundle['record']['licence_number']}) is leaf "
                f"{bundle['leaf_index']} of {DATASET} version 1, signed by key ") in out
        unsigned = next(line for line in out.splitlines() if line.startswith("  unsigned"))
        for name in ("status", "status_since", "status_reason"):
            assert name in unsigned
        assert "record_id" not in unsigned and "leaf_index" not in unsigned
        assert cli(["verify", str(path), "--online", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert (doc["record_id"], doc["leaf_index"], doc["dataset"], doc["status"]["status"]) == \
            (rid, bundle["leaf_index"], DATASET, "valid")
        assert doc["unsigned"]["status"] == bundle["status"] and "record_id" not in doc["unsigned"]


@pytest.mark.parametrize("online", [False, True])
def test_a_bundle_labelled_with_another_record_id_is_refused(exported, capsys, tmp_path, online):
    published, [(a, path), (b, _)] = exported
    bundle = json.loads(path.read_text())
    bundle["record_id"] = b            # record A's content under record B's label
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(bundle))
    capsys.readouterr()
    with home_env(published.home):
        assert cli(["verify", str(forged), *(["--online"] if online else [])]) == 8
    captured = capsys.readouterr()
    assert "verified" not in captured.out
    assert (f"step 4 (the bundle's fields match what is signed) failed: the bundle says record_id {b!r} "
            f"but the signed record is {a!r}") in captured.err
    assert "superseded" not in captured.err
