"""OpenLineage from a source's DAG under real Airflow 3 (`airflow dags test`) through the
OpenLineage provider's file transport: every event validates against the OpenLineage JSON
schemas (the spec and its facets, vendored in tests/data/openlineage), each task has a START and
a COMPLETE, extract reads the silo with its mapped columns and row count, publish writes the
dataset with its fields and record count. Without a transport nothing is emitted and no socket leaves the machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.conftest import ROOT, TEST_PASSPHRASE, register_demo_source

pytestmark = pytest.mark.e2e
SPEC = ROOT / "tests" / "data" / "openlineage"
TASKS = ("plan", "extract", "conform", "validate", "publish", "announce", "notify")
NAMESPACE = "exchange://exchange.lineage.test"


def _airflow(args, env, check=True):
    exe = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(exe), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _registry() -> Registry:
    """The spec and its facets' schemas (vendored from OpenLineage) by their $id. The provider's
    Airflow facets name the spec's RunFacet as their schema and are checked against it (their
    own schema files in the provider do not match what the provider emits: a `pool` missing)."""
    resources = []
    for path in [*SPEC.glob("*.json"), *(SPEC / "facets").glob("*.json")]:
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _facets(event: dict):
    """(where, facet) for every facet of a run event."""
    yield from (("run", f) for f in event["run"].get("facets", {}).items())
    yield from (("job", f) for f in event["job"].get("facets", {}).items())
    for side in ("inputs", "outputs"):
        for ds in event.get(side, []):
            for group in ("facets", "inputFacets", "outputFacets"):
                yield from ((f"{side}.{group}", f) for f in ds.get(group, {}).items())


def _validate(event: dict, registry: Registry) -> set[str]:
    """Errors of `event` against the spec and of each facet against its _schemaURL's schema."""
    spec = registry.contents("https://openlineage.io/spec/2-0-2/OpenLineage.json")
    errors = [e.message for e in Draft202012Validator(spec, registry=registry).iter_errors(event)]
    checked = set()
    for where, (name, facet) in _facets(event):
        url = facet["_schemaURL"]
        try:
            registry.contents(url.split("#")[0])
        except Exception:                     # noqa: BLE001 - a facet whose schema is not known
            errors.append(f"{where}.{name}: no schema for {url}")
            continue
        validator = Draft202012Validator({"$ref": url}, registry=registry)
        errors += [f"{where}.{name}: {e.message}" for e in validator.iter_errors(facet)]
        checked.add(name)
    assert not errors, errors
    return checked


def _env(home: Path, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE"))}
    return {**env, "EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE}


def test_a_source_dag_emits_valid_openlineage_events(home, silo_2k, tmp_path):
    silo, _ = silo_2k
    reg = register_demo_source(home, silo)
    events_file = tmp_path / "lineage" / "events.jsonl"
    events_file.parent.mkdir()
    env = {**_env(home, tmp_path), "EXCHANGE_LINEAGE_NAMESPACE": NAMESPACE,
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
               {"type": "file", "log_file_path": str(events_file), "append": True})}
    _airflow(["db", "migrate"], env)
    _airflow(["dags", "test", reg.dag_id], env)

    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    registry = _registry()
    checked = set().union(*(_validate(e, registry) for e in events))
    assert {"schema", "inputStatistics", "outputStatistics", "dataQualityMetrics",
            "dataQualityAssertions", "version"} <= checked

    by_task: dict[str, dict[str, dict]] = {}
    for e in events:
        by_task.setdefault(e["job"]["name"], {})[e["eventType"]] = e
    for task in TASKS:
        assert {"START", "COMPLETE"} <= set(by_task[f"{reg.dag_id}.{task}"]), task
        assert by_task[f"{reg.dag_id}.{task}"]["COMPLETE"]["job"]["namespace"] == "exchange"

    [silo_in] = by_task[f"{reg.dag_id}.extract"]["COMPLETE"]["inputs"]
    connector = reg.connector
    assert silo_in["namespace"] == f"sqlite://{silo}" and silo_in["name"] == f"main.{connector['table']}"
    assert [f["name"] for f in silo_in["facets"]["schema"]["fields"]] == sorted(set(reg.mapping.values()))
    assert silo_in["inputFacets"]["inputStatistics"]["rowCount"] == 2_000

    from base.settings import get_settings
    from catalog.ledger.service import Ledger
    from catalog.service import Catalog

    s = get_settings()
    [run] = Ledger(s.catalog_url).runs(reg.id)
    records = Catalog(s.catalog_url, s.store).current_size(reg.dataset)
    publish = by_task[f"{reg.dag_id}.publish"]["COMPLETE"]
    [out] = publish["outputs"]
    assert (out["namespace"], out["name"]) == (NAMESPACE, reg.dataset)
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == reg.ctype.field_names
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == records == run["accepted"] > 0
    assert out["facets"]["version"]["datasetVersion"] == "1"
    [checked_in] = publish["inputs"]
    assert (checked_in["namespace"], checked_in["name"]) == (silo_in["namespace"], silo_in["name"])
    assert checked_in["inputFacets"]["dataQualityMetrics"]["rowCount"] == 2_000
    failed = {a["assertion"] for a in checked_in["facets"]["dataQualityAssertions"]["assertions"]}
    assert failed == set(run["reasons"]) and "expect_column_values_to_be_valid_uscc(holder_code)" in failed
    assert TEST_PASSPHRASE not in events_file.read_text()


AUDIT_HOOK = '''
import os, socket, sys
_log = os.environ["LINEAGE_TEST_SOCKETS"]
with open(_log, "a") as f:
    f.write(f"start {os.getpid()}\\n")
def _hook(event, args):
    if event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
        with open(_log, "a") as f:
            f.write(f"connect {os.getpid()} {args[1]!r}\\n")
sys.addaudithook(_hook)
'''


def test_without_a_transport_nothing_is_emitted_and_nothing_reaches_the_network(home, silo_2k, tmp_path):
    silo, _ = silo_2k
    reg = register_demo_source(home, silo)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT_HOOK)      # every Python process of the run
    sockets = tmp_path / "sockets.log"
    env = {**_env(home, tmp_path), "LINEAGE_TEST_SOCKETS": str(sockets),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))}
    probe = [sys.executable, "-c", "from airflow.providers.openlineage import conf; "
             "from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin as P; "
             "print(conf.is_disabled(), P.listeners)"]
    assert subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.split() == ["True", "[]"]
    _airflow(["db", "migrate"], env)
    _airflow(["dags", "test", reg.dag_id], env)
    lines = sockets.read_text().splitlines()
    assert any(line.startswith("start ") for line in lines)       # the hook watched the run
    assert not [line for line in lines if line.startswith("connect ")]
