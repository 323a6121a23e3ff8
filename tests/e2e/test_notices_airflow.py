"""A revocation at the source reaches a subscribing department within one run of its source's DAG
under real Airflow 3 (`airflow dags test`): the `notify` task fans the new version out and POSTs
the signed notice to the department's webhook receiver (tests/notice_receiver.py, verifying with
PyJWT), set up the way an operator and a department would, through the CLI."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_PASSPHRASE, TODAY, register_demo_source
from tests.notice_receiver import Receiver

pytestmark = [pytest.mark.notices, pytest.mark.e2e]
ITEM = "DJ-SCJG-0003"


def _run(args, env, **kw):
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_a_revocation_reaches_the_subscriber_within_one_dag_run(home, silo_2k, tmp_path):
    from catalog.serving import audit
    from exchange import stages
    from exchange.catalogue import open_catalog
    from tests.integration.catalog.test_append_only_log import single_row_records

    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    reg = register_demo_source(home, silo)
    assert stages.run_all(reg.id, "r1", TODAY)["version"] == 1
    cat = open_catalog()
    rid, number = single_row_records(cat, silo)[0]

    env = {**os.environ, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE}
    cli = [sys.executable, "-m", "cli"]

    def jwks():
        return json.loads(cat.key_material()[0])

    with Receiver(jwks) as rx:
        _run([*cli, "departments", "add", "tax", "税务局"], env)
        _run([*cli, "departments", "endpoint", "tax", rx.url], env)
        key = json.loads(_run([*cli, "credentials", "issue", "tax", "--json"], env).stdout)["key"]
        asking = {**env, "EXCHANGE_API_KEY": key}
        sub = json.loads(_run([*cli, "subscriptions", "add", "--dataset", reg.dataset, "--purpose", ITEM,
                               "--json"], asking).stdout)
        assert sub["kind"] == "dataset" and sub["department"] == "tax"

        with sqlite3.connect(silo) as db:
            db.execute("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (number,))
        _run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env)
        dag_env = {k: v for k, v in env.items() if k != "EXCHANGE_KEY_PASSPHRASE"}
        dag_env["AIRFLOW_VAR_EXCHANGE_KEY_PASSPHRASE"] = TEST_PASSPHRASE
        _run([str(Path(sys.executable).with_name("airflow")), "dags", "test", reg.dag_id], dag_env)

        assert not rx.rejected
        [(event_id, seq, event)] = rx.events
        assert event["type"] == "cn.gov.exchange.record.revoked" and event["subject"] == rid
        assert event["data"]["version"] == 2 and event["data"]["status"] == "revoked"
        assert event["id"] == event_id

    db = sqlite3.connect(tmp_path / "airflow" / "airflow.db")
    tis = dict(db.execute("select task_id, state from task_instance where dag_id = ?", (reg.dag_id,)))
    assert tis["notify"] == "success" and tis["publish"] == "success"
    listed = json.loads(_run([*cli, "notices", "list", "--department", "tax", "--json"], env).stdout)
    assert [(n["seq"], n["state"], n["record_id"]) for n in listed] == [(seq, "delivered", rid)]
    with cat.engine.connect() as c:
        import sqlalchemy as sa
        holder = c.execute(sa.text("select holder_key from records where record_id = :r"), {"r": rid}).scalar()
    report, _ = audit.holder_report(cat.engine, holder)
    assert ("tax", "notice", "delivered") in {(r["department"], r["action"], r["outcome"]) for r in report}
