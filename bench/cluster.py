"""A scale-out exchange on this one machine, laid out as issue #16 deploys it on several: Airflow 3
on the CeleryExecutor (Redis broker), PostgreSQL for Airflow's metadata and for the catalogue, an
S3-compatible server (moto) on 127.0.0.1, Airflow's API server, scheduler and DAG processor, and
N Celery workers that share no disk: each has its own EXCHANGE_HOME and AIRFLOW_HOME; only the
repository (code, dags/) and the departments' silos are common. tests/e2e/test_scaleout.py and
`./run bench scale` use it.

Every process runs in its own session (process group); stop() kills the groups of every process
it started and of their descendants (Airflow's task processes make groups of their own). Logs go
to <root>/logs/<name>.log. Names other helpers of issue #16 decide are kept at the top.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from base import clock
from base.settings import ROOT

# --- the names issue #16's other parts settle: change them here ------------------------------
STORE_URL = "EXCHANGE_STORE_URL"                 # where staging and versions live (file://, s3://)
S3_ENDPOINT = "EXCHANGE_S3_ENDPOINT_URL"         # an S3-compatible server (moto here)
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "scaleout", "AWS_SECRET_ACCESS_KEY": "scaleout-secret",
                  "AWS_DEFAULT_REGION": "us-east-1"}
# Registrations live in the catalogue (`exchange register` stores them there); =1 also gives the
# workers the control machine's registration folder, as before the catalogue held them.
SHARED_REGISTRATIONS = os.environ.get("EXCHANGE_SCALEOUT_SHARED_SOURCES") == "1"
PARTITIONS = 4


def partitioned(registration_text: str) -> str:
    """The big source's partition setting: its run split into PARTITIONS key ranges, one mapped
    extract, conform and validate each (registration/partitioning.py)."""
    return f"{registration_text.rstrip()}\n\n[run]\npartitions = {PARTITIONS}\n"
# ----------------------------------------------------------------------------------------------

PG = os.environ.get("EXCHANGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("EXCHANGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
PASSPHRASE = "scale-out cluster passphrase"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def absent_services(pg: str = PG, redis_url: str = REDIS) -> list[str]:
    """The services the cluster needs that do not answer (PostgreSQL, Redis), with why."""
    import redis

    missing = []
    try:
        sa.create_engine(pg, poolclass=sa.NullPool, connect_args={"connect_timeout": 3}).connect().close()
    except Exception as exc:
        missing.append(f"PostgreSQL at {sa.make_url(pg).render_as_string()} ({type(exc).__name__}; "
                       "set EXCHANGE_TEST_PG)")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:
        missing.append(f"Redis at {redis_url} ({type(exc).__name__}; set EXCHANGE_TEST_REDIS)")
    return missing


@dataclass
class Proc:
    name: str
    machine: str
    popen: subprocess.Popen
    log: Path


@dataclass
class Memory:
    """Peak resident memory seen on a worker's process tree (sampled): the tree's sum and its
    largest single process."""
    tree_mb: float = 0.0
    process_mb: float = 0.0


@dataclass
class Cluster:
    root: Path
    workers: int = 2
    store: str = "s3"                 # "s3" (moto on 127.0.0.1) or "file" (one shared folder)
    concurrency: int = 2              # task slots per worker
    pg: str = PG
    redis: str = REDIS
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    conns: dict[str, str] = field(default_factory=dict)        # AIRFLOW_CONN_* every machine gets
    worker_env: dict[str, str] = field(default_factory=dict)   # what only workers get (the key)
    timings: dict[str, float] = field(default_factory=dict)
    paused: bool = False              # DAGs paused at creation (the bench unpauses one at a time)
    # the workers share one EXCHANGE_HOME: a check of the harness itself, not of the exchange
    shared_home: bool = os.environ.get("EXCHANGE_SCALEOUT_SHARED_HOME") == "1"

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.logs = self.root / "logs"
        self.silos = self.root / "silos"          # the departments' side: drops, files
        for d in (self.logs, self.silos):
            d.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, Proc] = {}
        self.memory: dict[str, Memory] = {}
        self.databases: list[str] = []
        self.killed: set[str] = set()             # components kill() took down on purpose
        self.queue = f"scaleout_{self.id}"
        self.api_port = free_port()
        self.fernet = Fernet.generate_key().decode()
        self.jwt_secret = secrets.token_urlsafe(32)
        self.bucket = f"exchange-{self.id}"
        self.s3_server = None
        self.meta_url = self.catalog_url = ""
        self._meta: sa.Engine | None = None
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    # --- machines -----------------------------------------------------------------------------
    @property
    def worker_names(self) -> list[str]:
        return [f"w{i}" for i in range(1, self.workers + 1)]

    def home(self, machine: str) -> Path:
        """A machine's EXCHANGE_HOME (its AIRFLOW_HOME is <root>/<machine>/airflow)."""
        if self.shared_home and machine != "control":
            return self.root / "shared-home"
        return self.root / machine / "home"

    def store_env(self) -> dict[str, str]:
        if self.store == "s3":
            assert self.s3_server is not None, "start_store() first"
            return {STORE_URL: f"s3://{self.bucket}/exchange", S3_ENDPOINT: self.s3_endpoint, **S3_CREDENTIALS}
        return {STORE_URL: (self.root / "shared-store").as_uri()}

    def env(self, machine: str) -> dict[str, str]:
        """The environment of one machine: 'control' (scheduler, API server, DAG processor, the
        steward's commands) or a worker."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EXCHANGE_"))}
        if today := os.environ.get(clock.TODAY_ENV):
            base[clock.TODAY_ENV] = today
        home = self.home(machine)
        env = {
            **base,
            "EXCHANGE_ROOT": str(ROOT), "EXCHANGE_HOME": str(home),
            "AIRFLOW_HOME": str(self.root / machine / "airflow"),
            "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
            "GX_ANALYTICS_ENABLED": "false", "SCARF_ANALYTICS": "false", "DO_NOT_TRACK": "1",
            "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}",
            "EXCHANGE_CATALOG_URL": self.catalog_url, "EXCHANGE_KEY_PASSPHRASE": PASSPHRASE,
            "EXCHANGE_SILO_ROOTS": str(self.silos), "EXCHANGE_RUN_DEADLINE": "0",
            "EXCHANGE_AIRFLOW_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
            "AIRFLOW__CORE__FERNET_KEY": self.fernet,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(self.paused),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "bench.cluster_host.hostname",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.meta_url,
            # psycopg 3 is async too: no asyncpg needed
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.meta_url,
            "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__CELERY__BROKER_URL": self.redis,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.meta_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            # one queue per cluster: another cluster on the same Redis takes none of its tasks
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            # a killed worker's task is failed after a minute, not five
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            **self.conns, **self.store_env(),
        }
        if SHARED_REGISTRATIONS:
            env["EXCHANGE_SOURCES_DIR"] = str(self.home("control") / "sources")
        if machine != "control":
            env["EXCHANGE_WORKER_NAME"] = machine
            env.update(self.worker_env)
        return env

    # --- services -----------------------------------------------------------------------------
    def start_store(self) -> None:
        if self.store != "s3":
            return
        from moto.server import ThreadedMotoServer  # lazy: only the S3 variant needs moto (dev group)

        logging.getLogger("werkzeug").setLevel(logging.WARNING)    # moto's server logs every request
        port = free_port()
        self.s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.s3_server.start()
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        self.s3().create_bucket(Bucket=self.bucket)

    def s3(self):
        import boto3  # lazy: only the S3 variant needs it (dev group)

        return boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"])

    def s3_objects(self) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def database(self, what: str) -> str:
        """A fresh PostgreSQL database (dropped at stop); its URL."""
        name = f"scaleout_{self.id}_{what}"
        admin = sa.create_engine(self.pg, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with admin.connect() as c:
            c.exec_driver_sql(f'create database "{name}"')
        admin.dispose()
        self.databases.append(name)
        return sa.make_url(self.pg).set(database=name).render_as_string(hide_password=False)

    # --- commands and processes ---------------------------------------------------------------
    def run(self, machine: str, name: str, cmd: list[str], timeout: float = 300) -> str:
        """A command on a machine to its end; its output (raises with the output's tail on failure)."""
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            code = subprocess.run(cmd, env=self.env(machine), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout, start_new_session=True).returncode
        text = log.read_text("utf-8", "replace")
        if code != 0:
            raise RuntimeError(f"{name} ({' '.join(map(str, cmd[:4]))} …) on {machine} exited {code}:\n{text[-3000:]}")
        return text

    def exchange(self, machine: str, name: str, *args: str, timeout: float = 300) -> str:
        return self.run(machine, name, [str(BIN / "exchange"), *args], timeout)

    def airflow(self, machine: str, name: str, *args: str, timeout: float = 300) -> str:
        return self.run(machine, name, [str(BIN / "airflow"), *args], timeout)

    def spawn(self, name: str, machine: str, cmd: list[str]) -> Proc:
        log = self.logs / f"{name}.log"
        out = open(log, "ab")
        p = subprocess.Popen(cmd, env=self.env(machine), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.procs[name] = Proc(name, machine, p, log)
        return self.procs[name]

    def _phase(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 1)

    # --- bringing it up -----------------------------------------------------------------------
    def prepare(self) -> None:
        """Store, databases, both schemas, the signing key; Airflow's API server started."""
        t = time.monotonic()
        self.start_store()
        self.meta_url, self.catalog_url = self.database("airflow"), self.database("catalog")
        self._meta = sa.create_engine(self.meta_url, poolclass=sa.NullPool)
        self._phase("services", t)
        t = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(self.airflow, "control", "airflow-db-migrate", "db", "migrate"),
                    pool.submit(self.exchange, "control", "exchange-db-upgrade", "db", "upgrade")]
            for f in done:
                f.result()
        self._phase("migrate", t)
        t = time.monotonic()
        self.spawn("airflow-api-server", "control", [str(BIN / "airflow"), "api-server"])
        # one machine makes the key; every worker is given its encrypted PEM (docs/deploy.md)
        self.exchange("control", "exchange-keys-create", "keys", "create")
        keys = self.home("control") / "keys"
        [pem] = [p for p in keys.glob("*.pem")]
        self.worker_env["EXCHANGE_SIGNING_KEY"] = pem.read_text()
        self._phase("signing key", t)

    def register(self, name: str, text: str) -> None:
        """`exchange register FILE` on the control machine (checks, tests the silo, adds it)."""
        path = self.root / "registrations" / f"{name}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.exchange("control", f"exchange-register-{name}", "register", str(path), "--by", "scaleout", "--json")

    def start_airflow(self, timeout: float = 240) -> None:
        """Once the API server answers: the scheduler, the DAG processor and the workers."""
        t = time.monotonic()
        self.until(lambda: self._healthy(("metadatabase",)), timeout, "Airflow's API server")
        self.spawn("airflow-scheduler", "control", [str(BIN / "airflow"), "scheduler"])
        self.spawn("airflow-dag-processor", "control", [str(BIN / "airflow"), "dag-processor"])
        for w in self.worker_names:
            self.start_worker(w)
        self.until(lambda: all(self.worker_ready(w) for w in self.worker_names), timeout, "the Celery workers")
        self.until(lambda: self._healthy(("metadatabase", "scheduler", "dag_processor")), timeout, "Airflow")
        self._phase("airflow up", t)
        self._sampling.set()
        if self._sampler is None:
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()

    def start_worker(self, name: str) -> Proc:
        self.memory.setdefault(name, Memory())
        self.killed.discard(name)
        return self.spawn(name, name, [str(BIN / "airflow"), "celery", "worker", "-q", self.queue,
                                       "-c", str(self.concurrency), "-H", f"{name}@{self.queue}",
                                       "--skip-serve-logs", "--without-mingle", "--without-gossip"])

    def worker_ready(self, name: str) -> bool:
        p = self.procs[name]
        self.alive(name)
        return f"{name}@{self.queue} ready" in p.log.read_text("utf-8", "replace")

    def _healthy(self, need: tuple[str, ...]) -> bool:
        for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
            if name in self.procs:
                self.alive(name)
        try:
            r = requests.get(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=3)
            body = r.json() if r.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            return False
        return all((body.get(k) or {}).get("status") == "healthy" for k in need)

    def alive(self, name: str) -> None:
        p = self.procs[name]
        if p.popen.poll() is not None:
            raise RuntimeError(f"{name} exited {p.popen.returncode}:\n{self.tail(name)}")

    def until(self, predicate, timeout: float, what: str, every: float = 1.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if got := predicate():
                return got
            time.sleep(every)
        raise TimeoutError(f"no {what} after {timeout:.0f} s")

    # --- Airflow's metadata -------------------------------------------------------------------
    def meta(self, sql: str, **params) -> list[dict]:
        assert self._meta is not None
        with self._meta.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.text(sql), params)]

    def wait_dags(self, dag_ids: list[str], timeout: float = 240) -> None:
        def parsed() -> bool:
            found = {r["dag_id"] for r in self.meta("select dag_id from dag where not is_stale")}
            return set(dag_ids) <= found
        self.until(parsed, timeout, f"DAGs {dag_ids} parsed")

    def trigger(self, dag_id: str, run_id: str) -> tuple[str, str]:
        self.airflow("control", "airflow-trigger", "dags", "trigger", dag_id, "--run-id", run_id, timeout=120)
        return dag_id, run_id

    def runs(self, dag_id: str | None = None) -> list[dict]:
        sql = "select dag_id, run_id, run_type, state, start_date, end_date from dag_run"
        if dag_id:
            return self.meta(sql + " where dag_id = :d order by id", d=dag_id)
        return self.meta(sql + " order by id")

    def wait_runs(self, runs: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], str]:
        """Until each (dag_id, run_id) has finished; their states."""
        def finished():
            for name in self.procs:
                if (name.startswith("airflow-") or name in self.worker_names) and name not in self.killed:
                    self.alive(name)
            states = {(r["dag_id"], r["run_id"]): r["state"] for r in self.runs()}
            got = {k: states.get(k) for k in runs}
            return got if all(s in ("success", "failed") for s in got.values()) else None
        return self.until(finished, timeout, f"end of the runs {runs}", every=2)

    def task_instances(self, dag_id: str | None = None, run_id: str | None = None) -> list[dict]:
        where = " and ".join([*(["dag_id = :d"] if dag_id else []), *(["run_id = :r"] if run_id else [])])
        return self.meta("select dag_id, run_id, task_id, map_index, state, hostname, try_number, start_date,"
                         f" end_date from task_instance {'where ' + where if where else ''}"
                         " order by start_date nulls last", d=dag_id, r=run_id)

    # --- workers: killing, memory -------------------------------------------------------------
    def _tree(self, name: str) -> list[psutil.Process]:
        try:
            top = psutil.Process(self.procs[name].popen.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self, name: str) -> None:
        """SIGKILL the process groups of a component and of all its descendants (a task process
        sits in a group of its own)."""
        groups = set()
        for p in self._tree(name):
            try:
                groups.add(os.getpgid(p.pid))
            except ProcessLookupError:
                pass
        groups.add(self.procs[name].popen.pid)
        for g in groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.procs[name].popen.wait(30)
        self.killed.add(name)

    def _sample(self) -> None:
        while True:
            if self._sampling.is_set():
                for w, mem in list(self.memory.items()):
                    if w not in self.procs or self.procs[w].popen.poll() is not None:
                        continue
                    sizes = []
                    for p in self._tree(w):
                        try:
                            sizes.append(p.memory_info().rss / 2**20)
                        except psutil.Error:
                            pass
                    if sizes:
                        mem.tree_mb = max(mem.tree_mb, sum(sizes))
                        mem.process_mb = max(mem.process_mb, max(sizes))
            time.sleep(0.25)

    # --- what happened ------------------------------------------------------------------------
    def tail(self, name: str, lines: int = 40) -> str:
        p = self.procs.get(name)
        path = p.log if p else self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])

    def task_log(self, machine: str, dag_id: str, run_id: str, task_id: str) -> Path | None:
        """The last attempt's log of a task, on the worker that ran it."""
        logs = sorted((self.root / machine / "airflow" / "logs").glob(
            f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/**/attempt=*.log"))
        return logs[-1] if logs else None

    def task_errors(self, machine: str, dag_id: str, run_id: str, task_id: str) -> list[str]:
        """The errors a task logged (Airflow 3 writes JSON lines): event, exception type and value."""
        path = self.task_log(machine, dag_id, run_id, task_id)
        if path is None:
            return [f"(no log of {task_id} on {machine})"]
        errors = []
        for line in path.read_text("utf-8", "replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("error", "critical"):
                detail = "; ".join(f"{d.get('exc_type')}: {d.get('exc_value')}"
                                   for d in entry.get("error_detail") or [])
                errors.append(f"{entry.get('event')}{': ' + detail if detail else ''}")
        return errors or [f"(no error logged; see {path})"]

    def report(self, lines: int = 30) -> str:
        """Every component's log tail, for a failure message."""
        return "\n".join(f"----- {n} ({self.logs / (n + '.log')})\n{self.tail(n, lines)}" for n in self.procs)

    # --- taking it down -----------------------------------------------------------------------
    def stop(self) -> None:
        self._sampling.clear()
        for p in self.procs.values():
            if p.popen.poll() is None:
                try:
                    os.killpg(p.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        end = time.monotonic() + 15
        for p in self.procs.values():
            try:
                p.popen.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for name in self.procs:
            self.kill(name)
        if self.s3_server is not None:
            self.s3_server.stop()
        if self._meta is not None:
            self._meta.dispose()
        if self.databases:
            admin = sa.create_engine(self.pg, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            with admin.connect() as c:
                for name in self.databases:
                    c.exec_driver_sql(f'drop database if exists "{name}" with (force)')
            admin.dispose()
        try:
            import redis

            r = redis.Redis.from_url(self.redis, socket_connect_timeout=3)
            r.delete(self.queue, f"_kombu.binding.{self.queue}")
        except Exception:  # noqa: BLE001 - a leftover queue key is harmless
            pass

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def sql_registration(source_id: str, department: str, conn_id: str, table: str = "yyzz_djxx") -> str:
    """A full-pull SQL source (no watermark: nothing kept between runs) on the demo's mapping of
    a business-licence silo, with the partition setting."""
    text = (ROOT / "demo" / "silo_kinds" / "transport_business_licence.toml").read_text("utf-8")
    head, rest = text.split("[connector]", 1)
    rest = rest[rest.index("[mapping]"):]
    head = (head.replace('id = "transport_business_licence"', f'id = "{source_id}"')
                .replace('department = "transport"', f'department = "{department}"'))
    return partitioned(f'{head}[connector]\nkind = "sql"\nconn_id = "{conn_id}"\ntable = "{table}"\nkey = "ID"\n\n'
                       f'{rest}')


def seed_sql_silo(cluster: Cluster, conn_id: str, rows: int, seed: int = 31) -> str:
    """A PostgreSQL silo database of `rows` business licences, given to every machine as the
    Airflow connection `conn_id`; its URL."""
    from demo.sql_silos import seed as fill
    from demo.synth import business_licences

    url = cluster.database(f"silo_{conn_id}")
    fill(url, business_licences(rows, seed=seed)[0])
    cluster.conns[f"AIRFLOW_CONN_{conn_id.upper()}"] = sa.make_url(url).set(drivername="postgres").render_as_string(
        hide_password=False)
    return url
