"""A source added with `exchange register` is a DAG on Airflow's next parse of the DAG folder."""
from __future__ import annotations

import json

from cli import main
from demo.silo_server import SiloServer
from demo.synth import COLUMNS
from tests.conftest import ROOT
from tests.integration.exchange.test_register import registration


def test_registered_sources_appear_in_the_dagbag(home, silo_2k, tmp_path, capsys):
    sql = registration(tmp_path / "a.toml", "smr_dag", {"kind": "sql", "url": f"sqlite:///{silo_2k[0]}",
                                                        "table": "yyzz_djxx"})
    assert main(["register", str(sql), "--sample", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["registered"]
    with SiloServer([]) as silo:        # an API with no rows yet: it answers, the sample is empty
        api = registration(tmp_path / "b.toml", "hrss_dag", {
            "kind": "http", "url": silo.url, "path": "/licences", "fields": list(COLUMNS)})
        assert main(["register", str(api), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "hrss_dag" and out["validation"]["extracted"] == 0 and out["preview"] == []

    from airflow.dag_processing.dagbag import DagBag  # after: Airflow's logging writes to stdout

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"source__smr_dag", "source__hrss_dag", "exchange_watch", "exchange_notices"}
    dag = bag.dags["source__smr_dag"]
    assert dag.description == "营业执照 (市场监督管理局)"
    assert [t.task_id for t in dag.topological_sort()] == [
        "plan", "extract", "conform", "validate", "publish", "announce", "notify"]
