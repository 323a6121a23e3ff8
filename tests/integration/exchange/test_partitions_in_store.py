"""A split source on an S3 store (moto's server on 127.0.0.1) whose mapped tasks run on machines
that share no disk: each partition's extract, conform and validate on a home of its own (deleted
after), publish on another. Every partition's hand-off is a key under the run's prefix in the
bucket, nothing is written under any home's staging folder, and the version is the one an
unsplit run of the same silo publishes on a local store."""
from __future__ import annotations

import shutil

import pytest

from base.settings import get_settings, reset_settings
from catalog.publish.key_status import publish_public_keys
from catalog.signing.keys import keystore_for
from exchange import stages
from tests.conftest import TODAY, catalog, home_env, ledger, register_demo_source
from tests.integration.exchange.test_partitioned_runs import SOURCE, register_split

pytestmark = pytest.mark.timeout(600)


def _machine(monkeypatch, home) -> None:
    """The settings of another worker: its own EXCHANGE_HOME, the same catalogue and store."""
    monkeypatch.setenv("EXCHANGE_HOME", str(home))
    reset_settings()


def test_a_split_run_on_s3_publishes_the_unsplit_version_from_stored_handoffs(home, s3_store, silo_2k,
                                                                               tmp_path, monkeypatch):
    silo, _ = silo_2k
    with home_env(tmp_path / "whole"):                                  # the same silo, unsplit, on disk
        register_demo_source(tmp_path / "whole", silo)
        whole = stages.run_all(SOURCE, "r1", TODAY)
        whole_counts = {k: ledger().runs(SOURCE)[0][k] for k in ("extracted", "accepted", "quarantined")}

    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("EXCHANGE_STORE_URL", s3_store.url())
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", f"sqlite:///{shared / 'catalog.db'}")
    reset_settings()
    register_split(home, silo)
    publish_public_keys(keystore_for(get_settings()), catalog().engine)    # the key machine's part
    shutil.copy(next((home / "keys").glob("*.pem")), tmp_path / "signing.pem")
    parts = stages.plan(SOURCE, "r1")
    assert [(p["index"], p["of"]) for p in parts] == [(i, 4) for i in range(4)]

    prefix = stages.handoff_prefix(SOURCE, "r1")
    workers = [tmp_path / f"worker{i}" for i in range(4)]
    for worker, part in zip(workers, parts):
        _machine(monkeypatch, worker)
        out = stages.extract(SOURCE, "r1", None, part)
        assert out["key"] == f"{prefix}/extracted.p{part['index']:04d}.arrow" and out["rows"] == 500
        assert stages.conform(SOURCE, "r1", part)["key"] == f"{prefix}/conformed.p{part['index']:04d}.arrow"
        checked = stages.validate(SOURCE, "r1", TODAY, part)
        assert checked["key"] == f"{prefix}/findings.p{part['index']:04d}.arrow" and checked["rows"] == 500
        assert not (worker / "staging").exists() and not list((worker / "scratch").glob("*")), \
            "a worker keeps nothing: its hand-offs are in the bucket, its scratch gone"
        shutil.rmtree(worker)                       # the next task cannot read this machine's disk

    stored = set(s3_store.list(prefix))
    assert {f"{prefix}/{name}.p{i:04d}.{ext}" for i in range(4)
            for name, ext in (("extracted", "arrow"), ("conformed", "arrow"), ("findings", "arrow"),
                              ("pending", "json"))} == stored, "each partition's hand-offs, as store keys"

    publisher = tmp_path / "publisher"
    _machine(monkeypatch, publisher)
    monkeypatch.setenv("EXCHANGE_SIGNING_KEY_FILE", str(tmp_path / "signing.pem"))
    reset_settings()
    split = stages.publish(SOURCE, "r1", parts)

    assert split["state"] == whole["state"] == "published"
    assert (split["root_hash"], split["tree_size"]) == (whole["root_hash"], whole["tree_size"])
    assert {k: ledger().runs(SOURCE)[0][k] for k in whole_counts} == whole_counts
    left = s3_store.list(prefix)
    assert not [k for k in left if ".p0" in k], "the partitions' hand-offs are deleted after the merge"
    assert {f"{prefix}/quarantine.parquet", f"{prefix}/validation.json", f"{prefix}/data_docs/index.html"} <= set(left)
    assert s3_store.exists(f"mirror/{SOURCE}.arrow") and not s3_store.exists(f"{prefix}/pending.json")
    for machine in (home, publisher, *workers):
        assert not (machine / "staging").exists() and not (machine / "store").exists()
    assert get_settings().store.url() == s3_store.url()
