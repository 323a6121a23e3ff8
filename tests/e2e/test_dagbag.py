"""Every DAG file imports cleanly and quickly, one DAG per registered source, thin wiring.
(SQLAlchemy is not checked: Airflow itself imports it.)"""
from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import ROOT, register_demo_source


def test_dag_files_import_without_errors_and_quickly(home, silo_2k):
    register_demo_source(home, silo_2k[0])
    register_demo_source(home, silo_2k[0], source_id="smr_business_licence_b")
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    elapsed = time.perf_counter() - started
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"source__smr_business_licence", "source__smr_business_licence_b",
                                "exchange_watch", "exchange_notices"}
    dag = bag.dags["source__smr_business_licence"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "plan", "extract", "conform", "validate", "publish", "announce", "notify"]
    announce = dag.get_task("announce")
    assert [o.uri for o in announce.outlets] == ["exchange://datasets/business_licence.market_regulation"]
    assert elapsed < 10, f"parsing took {elapsed:.1f}s"
    # alerts: a failure callback and a deadline of one update cycle (daily) after queueing
    assert dag.on_failure_callback.source == "smr_business_licence"
    [deadline] = dag.deadline
    assert deadline.interval.total_seconds() == 86_400 and deadline.callback.kwargs["kind"] == "late_run"
    assert deadline.callback.path == "exchange.alerts.notifier.ExchangeNotifier"
    from airflow.serialization.serialized_objects import DagSerialization
    again = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    stored = again.deadline[0]          # what the scheduler reads back: plain serialized data
    assert stored["reference"] == {"reference_type": "DagRunQueuedAtDeadline"}
    assert stored["callback"]["__data__"]["kwargs"]["dataset"] == "business_licence.market_regulation"
    assert sorted(t.task_id for t in bag.dags["exchange_watch"].tasks) == ["check_freshness", "check_objections",
                                                                          "checkpoint_audit"]


def test_parsing_the_dag_file_imports_nothing_heavy(home, silo_2k):
    register_demo_source(home, silo_2k[0])
    code = ("import sys, runpy; runpy.run_path('dags/exchange_sources.py'); runpy.run_path('dags/exchange_watch.py');"
            "runpy.run_path('dags/exchange_notices.py'); runpy.run_path('dags/exchange_peers.py');"
            "heavy=[m for m in ('great_expectations','pandas','pyarrow','connectors.sql',"
            "'catalog.service') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([""], []), out.stdout


def test_no_deadline_under_dags_test_or_when_switched_off(monkeypatch):
    """Airflow 3.3.2's `dags test` cannot finish a successful run of a DAG with a deadline."""
    from base.settings import get_settings, reset_settings
    from exchange.alerts.notifier import deadline_for, under_dags_test

    assert under_dags_test(["/x/.venv/bin/airflow", "dags", "test", "source__a"])
    assert not under_dags_test(["/x/.venv/bin/airflow", "standalone"])
    assert not under_dags_test(["/x/.venv/bin/airflow", "dag-processor"])

    class Reg:
        id, dataset, update_cycle = "a", "t.a", "weekly"
    monkeypatch.setenv("EXCHANGE_RUN_DEADLINE", "0")
    reset_settings()
    assert deadline_for(Reg, get_settings()) is None
    monkeypatch.delenv("EXCHANGE_RUN_DEADLINE")
    reset_settings()
    assert deadline_for(Reg, get_settings()).interval.days == 7
    reset_settings()


def test_one_bad_file_hides_no_other_dag(home, silo_2k, tmp_path, monkeypatch):
    """In the catalogue, a malformed registration, one with a wrong type, one that escapes its
    room (as older code might have stored them) and one whose certificate-type file is broken:
    each is skipped and logged; the good DAGs stay."""
    import shutil

    from schemas import types as types_mod
    from tests.conftest import register_sample, store_unchecked

    good = register_demo_source(home, silo_2k[0])
    register_sample(home, "diploma", tmp_path / "diploma.db")
    store_unchecked("smr_junk", "id = ")
    store_unchecked("smr_typed", good.path.read_text("utf-8").replace('id = "smr_business_licence"', "id = 5"))
    store_unchecked("smr_escape", good.path.read_text("utf-8").replace(
        'id = "smr_business_licence"', 'id = "smr_escape"\ndataset = "../../../tmp/x"'))
    register_sample(home, "marriage_certificate", tmp_path / "marriage.db")
    types = tmp_path / "types"
    shutil.copytree(types_mod.TYPES_DIR, types)
    (types / "marriage_certificate.toml").write_text("name = ", "utf-8")
    monkeypatch.setattr(types_mod, "TYPES_DIR", types)
    types_mod.all_types.cache_clear()
    from airflow.dag_processing.dagbag import DagBag

    try:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        types_mod.all_types.cache_clear()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"source__smr_business_licence", "source__edu_diploma", "exchange_watch",
                                "exchange_notices"}
