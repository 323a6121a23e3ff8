"""One publish per dataset at a time across machines (#16): two processes publish the same
dataset at once on a PostgreSQL catalogue (two sources of one dataset, each its own process, as
two Celery workers would). Both built their version on the same base; the dataset's lock lets
one commit, the other gets BaseMoved and builds again on the new version. The versions are
consecutive, none lost or numbered twice, and every one verifies (`exchange audit-chain`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from base.settings import reset_settings
from cli import main as cli
from demo.synth import make_business_licence_silo
from exchange import stages
from tests.conftest import ROOT, TODAY, catalog, register_demo_source

pytestmark = pytest.mark.integration
DATASET = "business_licence.market_regulation"

# the publish stage in a process of its own; both processes reach Catalog.publish with their
# version built before either commits (a file each, then wait for the other's), so they race
PUBLISH = """
import json, os, sys, time
from pathlib import Path
from catalog.service import Catalog
from exchange import stages

source, key, meet = sys.argv[1], sys.argv[2], Path(sys.argv[3])
real, calls = Catalog.publish, []

def publish(self, *args, **kwargs):
    calls.append(kwargs.get("base_version"))
    if len(calls) == 1:
        (meet / source).touch()
        deadline = time.monotonic() + 120
        while len(list(meet.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    return real(self, *args, **kwargs)

Catalog.publish = publish
out = stages.publish(source, key)
print(json.dumps({"source": source, "version": out["version"], "state": out["state"], "bases": calls}))
"""


@pytest.mark.parametrize("shared_catalogue", ["postgresql"], indirect=True)
def test_two_processes_publishing_one_dataset_at_once_get_consecutive_versions(shared_catalogue, home,
                                                                                monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", shared_catalogue)
    reset_settings()
    for round_ in (1, 2):                           # from an empty dataset, then from a version
        sources = []
        for name, seed in (("smr_a", 3 + round_), ("smr_b", 30 + round_)):
            silo = tmp_path / f"{name}-{round_}.db"
            make_business_licence_silo(silo, 400, seed=seed, today=TODAY)
            register_demo_source(home, silo, source_id=name)
            key = f"r{round_}"
            for stage in (stages.extract, stages.conform, stages.validate):
                stage(name, key)
            sources.append((name, key))
        meet = tmp_path / f"meet-{round_}"
        meet.mkdir()
        env = {**os.environ}
        procs = [subprocess.Popen([sys.executable, "-c", PUBLISH, name, key, str(meet)], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, key in sources]
        outs = [p.communicate(timeout=600) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-3000:] for o in outs]
        results = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
        before = 2 * (round_ - 1)
        assert sorted(r["version"] for r in results) == [before + 1, before + 2], results
        assert all(r["state"] == "published" for r in results)
        # both built on the same base; the one that lost built again on the winner's version
        assert sorted(len(r["bases"]) for r in results) == [1, 2], results
        loser = next(r for r in results if len(r["bases"]) == 2)
        assert loser["bases"] == [before or None, loser["version"] - 1], results

    versions = catalog().versions(DATASET)
    assert [v["version"] for v in versions] == [4, 3, 2, 1]
    assert len({v["run_id"] for v in versions}) == 4
    assert cli(["audit-chain", DATASET, "--json"]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert chain["ok"] is True, chain
