"""The demo source's DAG under real Airflow 3 (`airflow dags test`): a DagRun recorded in
Airflow's metadata database, reconciled counts, planted defects quarantined, an exported
record verified with a different JOSE library (jwcrypto) than the one that signed it."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785
from jwcrypto import jwk, jws

from tests.conftest import ROOT, TEST_PASSPHRASE, register_demo_source

pytestmark = pytest.mark.e2e


def _airflow(args, env, cwd):
    exe = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _verify_with_jwcrypto(bundle: dict, jwks: dict) -> None:
    token = jws.JWS()
    token.deserialize(bundle["signed_tree_head"])
    kid = token.jose_header["kid"]
    key = jwk.JWKSet.from_json(json.dumps(jwks)).get_key(kid)
    token.verify(key, alg="EdDSA")
    head = json.loads(token.payload)
    node = hashlib.sha256(b"\x00" + rfc8785.dumps(bundle["record"])).digest()
    fn, sn = bundle["leaf_index"], head["tree_size"] - 1
    for sibling in map(bytes.fromhex, bundle["audit_path"]):
        if fn % 2 == 1 or fn == sn:
            node = hashlib.sha256(b"\x01" + sibling + node).digest()
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hashlib.sha256(b"\x01" + node + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and node.hex() == head["root_hash"]


def test_dag_runs_under_airflow_and_publishes_a_verifiable_version(home, silo_2k, tmp_path):
    silo, manifest = silo_2k
    reg = register_demo_source(home, silo)
    env = {**os.environ, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE}
    _airflow(["db", "migrate"], env, ROOT)
    # the DAG's tasks get the passphrase only through Airflow's secrets backend
    dag_env = {k: v for k, v in env.items() if k != "EXCHANGE_KEY_PASSPHRASE"}
    dag_env["AIRFLOW_VAR_EXCHANGE_KEY_PASSPHRASE"] = TEST_PASSPHRASE
    _airflow(["dags", "test", reg.dag_id], dag_env, ROOT)

    db = sqlite3.connect(tmp_path / "airflow" / "airflow.db")
    runs = db.execute("select run_id, state from dag_run where dag_id = ?", (reg.dag_id,)).fetchall()
    assert len(runs) == 1 and runs[0][1] == "success"
    tis = dict(db.execute("select task_id, state from task_instance where dag_id = ?", (reg.dag_id,)))
    assert tis == {t: "success" for t in ("plan", "extract", "conform", "validate", "publish", "announce", "notify")}
    events = db.execute("select a.uri, e.extra from asset_event e join asset a on a.id = e.asset_id"
                        ).fetchall()
    assert [u for u, _ in events] == [f"exchange://datasets/{reg.dataset}"]
    assert json.loads(events[0][1])["version"] == 1

    cli = [sys.executable, "-m", "cli"]
    run = json.loads(subprocess.run([*cli, "runs", "--json"], env=env, capture_output=True,
                                    text=True, check=True).stdout)[0]
    assert run["extracted"] == 2_000 == run["accepted"] + run["quarantined"]
    planted = {i for k, ids in manifest.items() if k != "cosmetic" for i in ids}
    assert run["quarantined"] == len(planted)
    assert "expect_column_values_to_be_valid_uscc(holder_code)" in run["reasons"]

    from base.settings import get_settings
    from catalog.service import Catalog
    s = get_settings()
    holder = Catalog(s.catalog_url, s.store).sample_holder(reg.dataset)
    subprocess.run([*cli, "departments", "add", "transport", "交通运输局"], env=env, check=True)
    issued = subprocess.run([*cli, "credentials", "issue", "transport", "--json"], env=env,
                            capture_output=True, text=True, check=True).stdout
    asking = {**env, "EXCHANGE_API_KEY": json.loads(issued)["key"]}     # the CLI asks as a department
    found = json.loads(subprocess.run([*cli, "lookup", holder, "--purpose", "DJ-SCJG-0003", "--json"],
                                      env=asking, capture_output=True, text=True, check=True).stdout)
    record_id = found["records"][0]["record_id"]
    out = tmp_path / "bundle.json"
    subprocess.run([*cli, "export", record_id, "--purpose", "DJ-SCJG-0003", "-o", str(out)], env=asking,
                   check=True, capture_output=True)
    bundle = json.loads(out.read_text())
    _verify_with_jwcrypto(bundle, json.loads(s.jwks_path.read_text()))
    ok = subprocess.run([*cli, "verify", str(out), "--json"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["verified"] is True

    bundle["record"]["holder_name"] += "有限公司"
    out.write_text(json.dumps(bundle, ensure_ascii=False))
    bad = subprocess.run([*cli, "verify", str(out)], env=env, capture_output=True, text=True)
    assert bad.returncode == 8 and "step 5" in bad.stderr
