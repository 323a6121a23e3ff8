"""Workers that share no disk: a whole source's run with EXCHANGE_STORE_URL on an S3 server
(moto's, on 127.0.0.1) and a shared catalogue; then another machine (another EXCHANGE_HOME,
the first one deleted) reads a record, exports a bundle and verifies it. Nothing depends on the
first home: the catalogue names versions by store keys, every file is in the bucket."""
from __future__ import annotations

import json
import shutil

import pytest
import sqlalchemy as sa

from base.settings import get_settings, reset_settings
from cli import main as cli
from exchange import stages
from tests.conftest import TODAY, catalog, register_demo_source

pytestmark = pytest.mark.timeout(600)
SOURCE = "smr_business_licence"
PURPOSE = "DJ-SCJG-0003"          # a service item that needs a business licence


def test_a_run_in_an_s3_store_is_read_from_another_home(home, s3_store, silo_2k, tmp_path, monkeypatch, capsys):
    shared_db = f"sqlite:///{tmp_path / 'shared' / 'catalog.db'}"
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("EXCHANGE_STORE_URL", s3_store.url())
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", shared_db)
    reset_settings()
    reg = register_demo_source(home, silo_2k[0])

    published = stages.run_all(SOURCE, "r1", TODAY)
    assert published["state"] == "published" and published["tree_size"] > 1_500
    keys = s3_store.list()
    version = f"store/{reg.dataset}/v000001"
    files = ("records.parquet", "index.parquet", "map.bin", "head.jws", "checkpoint")
    assert {f"{version}/{n}" for n in files} <= set(keys)
    assert f"store/{reg.dataset}/log/tile/0/000" in keys and f"store/{reg.dataset}/log/checkpoint" in keys
    assert f"mirror/{SOURCE}.arrow" in keys and f"staging/{SOURCE}/r1/quarantine.parquet" in keys
    assert any(k.startswith(f"staging/{SOURCE}/r1/data_docs/") for k in keys)
    assert not any(k.endswith(("conformed.arrow", "accepted.arrow", "extracted.arrow", "pending.json")) for k in keys)
    assert not (home / "store").exists() and not (home / "staging").exists() and not (home / "mirror").exists()
    engine = sa.create_engine(shared_db)
    with engine.connect() as c:
        assert c.scalar(sa.text("select path from dataset_versions")) == version
        docs = c.scalar(sa.text("select data_docs from run_quality"))
        rid = c.scalar(sa.text("select record_id from records where status = 'valid' and valid_to is null "
                               "order by leaf_index limit 1"))
    engine.dispose()
    assert docs == f"staging/{SOURCE}/r1/data_docs/index.html" and s3_store.exists(docs)

    # another machine: its own home, the same catalogue and store; the first home is gone
    other = tmp_path / "other-home"                                # its registration: the catalogue's
    pem = next((home / "keys").glob("*.pem"))                      # a worker is given the active key
    shutil.copy(pem, tmp_path / "signing.pem")
    shutil.rmtree(home)
    monkeypatch.setenv("EXCHANGE_HOME", str(other))
    monkeypatch.setenv("EXCHANGE_SIGNING_KEY_FILE", str(tmp_path / "signing.pem"))
    reset_settings()
    assert get_settings().store.url() == s3_store.url()
    cat = catalog()
    bundle = cat.bundle(rid, today=TODAY)
    assert bundle["record"]["record_id"] == rid and bundle["audit_path"]
    assert cat.record_status(rid, today=TODAY)["status"] == "valid"

    from catalog.db.engine import engine_for
    from catalog.serving.access import Access

    access = Access(engine_for(shared_db), 0)
    access.add_department("other-machine", "A department on another machine")
    key = access.issue_credential("other-machine")["key"]
    out = tmp_path / "bundle.json"
    assert cli(["export", rid, "--key", key, "--purpose", PURPOSE, "-o", str(out)]) == 0
    assert json.loads(out.read_text())["record"]["record_id"] == rid
    capsys.readouterr()
    assert cli(["verify", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["record_id"] == rid
    assert cli(["audit-chain", reg.dataset, "--json"]) == 0          # every version's files, from the bucket
    chain = json.loads(capsys.readouterr().out)
    assert chain["ok"] is True and chain["records_checked"] == published["tree_size"]

    # the run again on this machine: the mirror comes from the store, nothing new is published
    again = stages.run_all(SOURCE, "r2", TODAY)
    assert again["state"] == "unchanged" and again["version"] == 1
    assert not (other / "store").exists() and not (other / "staging").exists()
