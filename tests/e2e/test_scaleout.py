"""Issue #16's proof: the exchange on Airflow 3's CeleryExecutor with two workers that share no
disk (bench/cluster.py lays it out: Redis broker, PostgreSQL for Airflow's metadata and the
catalogue, an S3 server on 127.0.0.1, each worker its own EXCHANGE_HOME and AIRFLOW_HOME).

Three sources (a big PostgreSQL silo, an HTTP silo, a GBK CSV drop) are registered with
`exchange register`; their runs must all succeed with tasks on both workers; every dataset
verifies from either worker's home and its chain audits; two API hosts with different homes
serve one JWKS; a worker killed inside publish's catalogue transaction leaves no partial
version and the next run publishes. `./run test -m scaleout` runs it alone; it skips only where PostgreSQL or Redis is
absent. The logs of every component stay under the test's tmp dir and are printed on failure."""
from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
import sqlalchemy as sa

from bench.cluster import BIN, Cluster, absent_services, seed_sql_silo, sql_registration
from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.scaleout, pytest.mark.e2e, pytest.mark.timeout(1500)]

BIG_ROWS = 20_000            # the big source: enough to split into partitions (bench/cluster.partitioned)
BIG = "scale_transport"
HTTP = "hrss_business_licence"
DROP = "civil_business_licence"
SOURCES = (BIG, HTTP, DROP)
ITEM = "DJ-SCJG-0003"        # the purpose a department names to export a bundle


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if missing := absent_services():
        pytest.skip("the scale-out test needs " + " and ".join(missing))
    c = Cluster(tmp_path_factory.mktemp("scaleout"), workers=2, store="s3")
    try:
        yield c
    finally:
        c.stop()
        print(f"scale-out phases (s): {c.timings}; logs in {c.logs}")


@pytest.fixture(scope="module")
def http_silo():
    from demo.silo_server import SiloServer, licence_rows

    server = SiloServer(licence_rows(3_000, seed=41), auth="bearer", secret="scaleout-silo-token").start()
    yield server
    server.stop()


@contextmanager
def phase(cluster: Cluster, name: str):
    started = time.monotonic()
    yield
    cluster.timings[name] = round(time.monotonic() - started, 1)


def _drop(cluster: Cluster) -> str:
    from demo.drops import write_csv
    from demo.silos import traditional
    from demo.synth import business_licences

    folder = cluster.silos / "drops" / "civil_affairs"      # the department's drop, read by both workers
    folder.mkdir(parents=True)
    table = traditional(business_licences(2_000, seed=21, cosmetic_rate=0.0)[0])
    try:
        write_csv(table, folder / "民政_营业执照_导出.csv", "gbk")
    except UnicodeEncodeError:
        write_csv(table, folder / "民政_营业执照_导出.csv", "gb18030")
    return str(folder)


def _catalogue(cluster: Cluster, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(cluster.catalog_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def _json(out: str):
    """The command's JSON: the log's last JSON document (Airflow may log before it)."""
    for start in reversed([m.start() for m in re.finditer(r"^[\[{]", out, re.M)]):
        try:
            return json.loads(out[start:])
        except ValueError:
            continue
    raise AssertionError(f"no JSON in {out[-2000:]!r}")


def _failures(cluster: Cluster, states: dict) -> str:
    """Each failed run: its failed tasks, the worker each ran on, the catalogue's message and
    the task log's tail."""
    lines = []
    for (dag_id, run_id), state in states.items():
        if state == "success":
            continue
        lines.append(f"== {dag_id} {run_id}: {state}")
        for ti in cluster.task_instances(dag_id, run_id):
            lines.append(f"   {ti['task_id']}[{ti['map_index']}] {ti['state']} on {ti['hostname']}")
            if ti["state"] == "failed" and ti["hostname"]:
                lines.extend(f"      {e}" for e in cluster.task_errors(ti["hostname"], dag_id, run_id, ti["task_id"]))
        source = dag_id.removeprefix("source__")
        for r in _catalogue(cluster, "select state, message from runs where source_id = :s and dag_run_id = :r",
                            s=source, r=run_id):
            lines.append(f"   catalogue run: {r['state']}: {r['message']}")
    return "\n".join(lines)


def test_two_workers_without_a_shared_disk_run_verify_and_survive_a_kill(cluster, http_silo):
    try:
        _scenario(cluster, http_silo)
    except BaseException:
        print(cluster.report())
        raise


def _scenario(cluster: Cluster, http_silo) -> None:
    with phase(cluster, "setup"):
        cluster.prepare()
        seed_sql_silo(cluster, "silo_scale_pg", BIG_ROWS)
        cluster.conns["AIRFLOW_CONN_SILO_HRSS_API"] = json.dumps(
            {"conn_type": "http", "host": http_silo.url, "password": http_silo.secret})
        drop = _drop(cluster)
        civil = (ROOT / "demo" / "silo_kinds" / f"{DROP}.toml").read_text("utf-8").replace("{drop_civil}", drop)
        hrss = (ROOT / "demo" / "silo_kinds" / f"{HTTP}.toml").read_text("utf-8")
        with ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(cluster.register, BIG, sql_registration(BIG, "transport", "silo_scale_pg")),
                      pool.submit(cluster.register, HTTP, hrss), pool.submit(cluster.register, DROP, civil)]:
                f.result()
        cluster.start_airflow()

    dags = [f"source__{s}" for s in SOURCES]
    with phase(cluster, "first runs"):
        cluster.wait_dags(dags)
        # unpaused at creation: the scheduler starts each source's run at once
        first = cluster.until(lambda: [(r["dag_id"], r["run_id"]) for r in cluster.runs() if r["dag_id"] in dags]
                              if {r["dag_id"] for r in cluster.runs()} >= set(dags) else None, 120, "scheduled runs")
        states = cluster.wait_runs(first, timeout=600)
    assert set(states.values()) == {"success"}, "runs failed:\n" + _failures(cluster, states)

    tis = cluster.task_instances()
    by_run = defaultdict(set)
    for ti in tis:
        by_run[ti["dag_id"], ti["run_id"]].add(ti["hostname"])
    assert {ti["hostname"] for ti in tis} == set(cluster.worker_names), by_run
    assert any(len(hosts) > 1 for hosts in by_run.values()), f"no run had tasks on both workers: {dict(by_run)}"

    datasets = _catalogue(cluster, "select id, current_version from datasets order by id")
    assert len(datasets) == 3 and all(d["current_version"] == 1 for d in datasets), datasets
    with phase(cluster, "verify"):
        cluster.exchange("control", "exchange-departments", "departments", "add", "scaleout-check", "核验部门")
        key = _json(cluster.exchange("control", "exchange-credentials", "credentials", "issue", "scaleout-check",
                                     "--json"))["key"]
        _verify_everywhere(cluster, [d["id"] for d in datasets], key)
    with phase(cluster, "api hosts"):
        _same_jwks(cluster)
    with phase(cluster, "kill"):
        dataset = _kill_mid_publish(cluster)
    with phase(cluster, "verify after the kill"):
        _verify_everywhere(cluster, [dataset], key)


def _verify_everywhere(cluster: Cluster, datasets: list[str], key: str) -> None:
    """A record of every dataset's current version, exported (as the department of `key`) and
    verified from each worker's home; every dataset's chain (all its versions) audited there."""

    def check(machine: str, dataset: str) -> tuple[str, str, dict, dict]:
        [rid] = [r["record_id"] for r in _catalogue(
            cluster, "select r.record_id from records r where r.dataset_id = :d and r.superseded_in is null"
                     " and r.status = 'valid' order by r.leaf_index limit 1",     # a current record
            d=dataset)]
        bundle = cluster.root / machine / f"{dataset}.{rid}.bundle.json"
        cluster.exchange(machine, f"exchange-export-{machine}-{dataset}-{rid}", "export", rid, "--purpose", ITEM,
                         "--key", key, "-o", str(bundle))
        verified = _json(cluster.exchange(machine, f"exchange-verify-{machine}-{dataset}-{rid}", "verify", str(bundle),
                                          "--online", "--json"))
        chain = _json(cluster.exchange(machine, f"exchange-audit-chain-{machine}-{dataset}-{rid}", "audit-chain",
                                       dataset, "--json"))
        return machine, dataset, verified, chain

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda a: check(*a), [(m, d) for m in cluster.worker_names for d in datasets]))
    for machine, dataset, verified, chain in results:
        assert verified["verified"] is True, (machine, dataset, verified)
        assert chain["ok"] is True, (machine, dataset, chain)


def _same_jwks(cluster: Cluster) -> None:
    """`exchange serve` on each worker's home (no key directory there): one JWKS, the catalogue's."""
    ports = {}
    for w in cluster.worker_names:
        ports[w] = free_port()
        cluster.spawn(f"api-{w}", w, [str(BIN / "exchange"), "serve", "--host", "127.0.0.1",
                                      "--port", str(ports[w])])

    def up() -> bool:
        for w in ports:
            cluster.alive(f"api-{w}")
        try:
            return all(requests.get(f"http://127.0.0.1:{p}/health", timeout=2).status_code == 200
                       for p in ports.values())
        except requests.RequestException:
            return False
    cluster.until(up, 120, "two API hosts", every=0.5)
    served = [requests.get(f"http://127.0.0.1:{p}/.well-known/jwks.json", timeout=10) for p in ports.values()]
    assert all(r.status_code == 200 for r in served)
    assert served[0].content == served[1].content
    kid = json.loads((cluster.home("control") / "keys" / "jwks.json").read_text())["keys"][0]["kid"]
    assert [k["kid"] for k in served[0].json()["keys"]] == [kid]


def _kill_mid_publish(cluster: Cluster) -> str:
    """The big silo changes; its next run's publish is held inside its catalogue transaction (the
    test holds an EXCLUSIVE lock on `records`, so publish waits once it has written the version's
    row) and the worker running it is killed there (SIGKILL to every process group of its tree).
    The dataset keeps its version and gets no records; the worker comes back and the next run
    publishes the change."""
    dag, dataset = f"source__{BIG}", "business_licence.transport"
    silo = sa.make_url(cluster.conns["AIRFLOW_CONN_SILO_SCALE_PG"]).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(silo, poolclass=sa.NullPool)
    with engine.begin() as c:
        changed = c.execute(sa.text("""update yyzz_djxx set "DJZT" = '注销' where mod(cast("ID" as bigint), 50) = 0""")
                            ).rowcount
    engine.dispose()
    assert changed == BIG_ROWS // 50
    before = _catalogue(cluster, "select version, head_hash from dataset_versions where dataset_id = :d", d=dataset)
    catalogue = sa.create_engine(cluster.catalog_url, poolclass=sa.NullPool)
    run = cluster.trigger(dag, "manual__killed_mid_publish")

    def task_states(task: str) -> set[str | None]:
        tis = cluster.task_instances(*run)
        if any(t["state"] in ("failed", "upstream_failed") for t in tis):
            raise AssertionError("the run failed before publish:\n" + _failures(cluster, {run: "failed"}))
        return {t["state"] for t in tis if t["task_id"] == task}

    cluster.until(lambda: task_states("validate") == {"success"}, 400, "validate done (every partition)", every=0.2)
    blocker = catalogue.connect()
    tx = blocker.begin()
    try:
        blocker.exec_driver_sql("lock table records in exclusive mode")   # readers pass, writers wait
        # a writer waiting for us: publish's transaction, its version row written (COPY records waits)
        held = ("select pid, backend_xid::text as xid, left(query, 120) as query from pg_stat_activity"
                " where datname = current_database() and wait_event_type = 'Lock' and backend_xid is not null")
        # autocommit: pg_stat_activity is read once per transaction
        with catalogue.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
            waiting = cluster.until(lambda: [dict(r._mapping) for r in watch.exec_driver_sql(held)], 300,
                                    "publish waiting in its transaction", every=0.2)
        print(f"publish held at: {waiting}")
        [ti] = [t for t in cluster.task_instances(*run) if t["task_id"] == "publish"]
        assert ti["state"] == "running", ti
        worker = ti["hostname"]
        cluster.kill(worker)
    finally:
        tx.rollback()
        blocker.close()
    catalogue.dispose()
    states = cluster.wait_runs([run], timeout=300)
    assert states[run] == "failed"
    after = _catalogue(cluster, "select version, head_hash from dataset_versions where dataset_id = :d", d=dataset)
    assert after == before, "a killed publish left a version"
    assert not _catalogue(cluster, "select 1 from records where dataset_id = :d and version > :v",
                          d=dataset, v=max(v["version"] for v in before))
    chain = _json(cluster.exchange("control", "exchange-audit-chain-after-kill", "audit-chain", dataset, "--json"))
    assert chain["ok"] is True, chain

    cluster.start_worker(worker)
    cluster.until(lambda: cluster.worker_ready(worker), 120, f"{worker} back")
    again = cluster.trigger(dag, "manual__after_the_kill")
    assert cluster.wait_runs([again], timeout=400)[again] == "success", _failures(cluster, {again: "failed"})
    [current] = _catalogue(cluster, "select current_version from datasets where id = :d", d=dataset)
    assert current["current_version"] == max(v["version"] for v in before) + 1
    chain = _json(cluster.exchange("control", "exchange-audit-chain-last", "audit-chain", dataset, "--json"))
    assert chain["ok"] is True, chain
    return dataset
