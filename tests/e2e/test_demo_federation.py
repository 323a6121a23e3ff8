"""`exchange demo --federation --json`: two whole exchanges (a district and a city, each its own
home, key, catalogue and API port under HOME/federation/), every step checked: the district
publishes; the city pins its key by fingerprint and mirrors both datasets (the conditional one
under an agreement); a city consumer's bundle of the district's record verifies against the
district's keys and not the city's; the materials check counts the licence as held; a revocation
reaches the city within one sync; the district's auditor sees the city's requests on behalf of
its consumer; the city's cosignatures of the district's checkpoints verify."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from demo.exchanges import CONDITIONAL, PURPOSE, UNCONDITIONAL
from tests.conftest import ROOT

pytestmark = [pytest.mark.federation, pytest.mark.timeout(600)]


def test_the_federation_demo_shows_two_levels(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    proc = subprocess.run([sys.executable, "-m", "cli", "demo", "--federation", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["ok"] is True and s["failed"] is None and s["folder"] == str(home / "federation")
    steps = {x["step"]: x for x in s["steps"]}
    assert sorted(steps) == [1, 2, 3, 4, 5, 6, 7] and all(x["ok"] for x in steps.values())
    assert "区县发布 (district publishes)" == steps[1]["title"]

    one = steps[1]["facts"]
    assert {ds: (v["version"], v["sharing"]) for ds, v in one["datasets"].items()} == {
        UNCONDITIONAL: (1, "unconditional"), CONDITIONAL: (1, "conditional")}
    assert one["peer_role"] == "exchange" and one["agreement"]

    two = steps[2]["facts"]
    assert two["pinned"] == [one["district_kid"]] and two["outcome"] == "ok"
    assert two["mirrors"] == {UNCONDITIONAL: {"version": 1, "state": "ok"}, CONDITIONAL: {"version": 1, "state": "ok"}}

    three = steps[3]["facts"]
    assert three["status"] == "valid" and three["verified_with_district_jwks"] is True
    assert three["verified_with_city_jwks"] is False and three["wrong_exit"] == 8

    assert steps[4]["facts"]["answers"]["营业执照"] == "held"
    five = steps[5]["facts"]
    assert (five["district_version"], five["before"], five["after"]) == (2, "valid", "revoked")
    assert five["reports_delivered"] >= 3
    actions = {(e["department"], e["on_behalf_of"], e["purpose"], e["action"])
               for e in steps[6]["facts"]["peer_entries"]}
    assert {("city-ex", "city-market", PURPOSE, "peer_lookup"), ("city-ex", "city-market", PURPOSE, "peer_materials"),
            ("city-ex", "city-market", PURPOSE, "peer_bundle")} <= actions
    assert {f"{UNCONDITIONAL} v1", f"{UNCONDITIONAL} v2", f"{CONDITIONAL} v1"} <= set(steps[7]["facts"]["verified"])
