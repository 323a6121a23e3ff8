"""Objections (数据异议) through real Airflow 3 runs (`airflow dags test`): an objection filed, the
steward marks it corrected, the silo row is put right, the source's DAG publishes the next
version and the objection closes as corrected by it, counted on the scorecard; another, past
its deadline, is alerted once by the exchange_watch DAG."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from base import clock
from tests.alertsinks import WebhookReceiver
from tests.conftest import ROOT, TEST_PASSPHRASE, catalog, register_demo_source

pytestmark = [pytest.mark.notices, pytest.mark.e2e]
SOURCE, DATASET, ITEM = "smr_business_licence", "business_licence.market_regulation", "DJ-SCJG-0003"


def _airflow(args, env) -> None:
    exe = Path(sys.executable).with_name("airflow")
    r = subprocess.run([str(exe), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_an_objection_closes_when_the_dag_publishes_the_correction_and_an_overdue_one_alerts(
        home, silo_2k, tmp_path):
    from catalog.ledger import monitoring
    from cli import main
    from demo.synth import TABLE
    from exchange import stages
    from exchange.catalogue import open_access, open_consumer
    from exchange.objections import check_overdue

    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    reg = register_demo_source(home, silo)
    stages.run_all(SOURCE, "r1")
    access = open_access()
    access.add_department("transport", "交通运输局")
    caller = access.authenticate(access.issue_credential("transport")["key"])
    with catalog().engine.connect() as c:
        (rid, number), (other, _) = c.execute(sa.text(
            "select record_id, licence_number from records where status = 'valid' order by leaf_index limit 2")).all()
    consumer = open_consumer()
    o = consumer.file_objection(caller, ITEM, rid, "企业名称与营业执照原件不一致")
    late = consumer.file_objection(caller, ITEM, other, "住所地址有误")
    assert main(["objections", "resolve", str(o["id"]), "--corrected", "--by", "市场监管局数据管理员"]) == 0
    with sqlite3.connect(silo) as db:
        assert db.execute(f'update {TABLE} set "QYMC" = "QYMC" || \'（更正）\' where "ZCH" = ?',
                          (number,)).rowcount == 1

    hook = WebhookReceiver()
    env = {**os.environ, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE, "EXCHANGE_ALERTS": f"webhook:{hook.url}"}
    try:
        _airflow(["db", "migrate"], env)
        _airflow(["dags", "test", reg.dag_id], env)
        closed = consumer.objection(caller, ITEM, o["id"])
        assert (closed["state"], closed["corrected_version"]) == ("corrected", 2)
        assert catalog().record_status(rid)["disputed"] is False
        assert catalog().record_status(other)["disputed"] is True

        with catalog().engine.begin() as c:      # the second one's deadline has passed
            c.execute(sa.text("update objections set due_at = :t where id = :i"),
                      {"t": clock.now() - timedelta(hours=1), "i": late["id"]})
        _airflow(["dags", "test", "exchange_watch"], env)
        alerts = [h for h in hook.received if h["kind"] == "objection_overdue"]
        assert len(alerts) == 1 and f"#{late['id']}" in alerts[0]["message"] and alerts[0]["dataset"] == DATASET
        assert check_overdue() == []             # said once, not again
    finally:
        hook.close()
    [card] = [c for c in monitoring.scorecards(catalog(), "week") if c["department"] == "market_regulation"]
    assert (card["objections_received"], card["objections_resolved"], card["objections_on_time"],
            card["objections_open_overdue"]) == (2, 1, 1, 1)
    assert card["objections_median_days"] is not None and card["objections_median_days"] < 1
