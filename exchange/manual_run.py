"""`exchange run SOURCE`: a source's whole path run now.

By default as a DAG run in Airflow (its REST API, exchange/airflow_api.py), so Airflow keeps the
one run history: the run id `manual__<UTC time>` is also the exchange's run key. `--local` runs
the stages in this process instead (offline checks, tests, no Airflow); it is never a silent
fallback when Airflow does not answer.
"""
from __future__ import annotations

from collections.abc import Callable

import registration
from base import clock
from base.errors import ConfigError, GateHeld, NotFound
from base.settings import get_settings
from catalog.ledger.run_owner import owning
from exchange import stages
from exchange.airflow_api import AirflowClient, AirflowNotFound, AirflowRunFailed, AirflowUnreachable, task_states
from exchange.catalogue import open_ledger

STEPS = [("extract", stages.extract), ("conform", stages.conform),
         ("validate", stages.validate), ("publish", stages.publish)]
TASKS = ("plan", "extract", "conform", "validate", "publish", "announce", "notify")   # the DAG's, in order
OnChange = Callable[[dict[str, str], str], None]


def manual_key() -> str:
    return "manual_" + clock.now().strftime("%Y%m%dT%H%M%S")


def airflow_run_id() -> str:
    """A manual DAG run's id, which stages.run_key leaves as it is."""
    return "manual__" + clock.now().strftime("%Y%m%dT%H%M%SZ")


def run_source(source: str, key: str, before: Callable[[str], None] = lambda name: None,
               after: Callable[[str], None] = lambda name: None) -> dict:
    """Each stage in turn in this process (`--local`), the run owned by this process;
    before(stage) and after(stage) for progress. Returns the publish stage's result with the
    source and run key."""
    out = {}
    with owning():
        for name, step in STEPS:
            before(name)
            out[name] = step(source, key)
            after(name)
    return {"source": source, "run_key": key, **out["publish"]}


def client() -> AirflowClient:
    return AirflowClient.from_settings(get_settings())


def unreachable(exc: AirflowUnreachable, flag: str = "--local") -> AirflowUnreachable:
    return AirflowUnreachable(f"{exc}; 用 {flag} 在本进程运行 (use {flag} to run in this process), "
                              "或设置 EXCHANGE_AIRFLOW_URL (or set EXCHANGE_AIRFLOW_URL)")


def ready_dag(api: AirflowClient, dag_id: str, unpause: bool) -> None:
    """The source's DAG is in Airflow and not paused (unpaused here if asked)."""
    try:
        dag = api.dag(dag_id)
    except AirflowNotFound as exc:
        raise AirflowNotFound(f"{exc}. Airflow 尚无此 DAG (no such DAG yet): its DAG processor parses a new "
                              "registration within a minute; a file that does not load has no DAG "
                              "(`exchange status`)") from None
    if dag.get("is_paused"):
        if not unpause:
            raise ConfigError(f"DAG {dag_id} 在 Airflow 中已暂停 (paused): its runs would wait for ever; "
                              f"unpause it in Airflow's UI or pass --unpause")
        api.unpause(dag_id)


def airflow_run(source: str, key: str | None = None, *, unpause: bool = False,
                on_start: Callable[[str], None] = lambda url: None, on_change: OnChange = lambda s, r: None) -> dict:
    """Triggers the source's DAG run (run id `key` or manual__<time>) and follows it to its end.
    GateHeld when the size gate held it, AirflowRunFailed when it failed; else the run's result."""
    reg = registration.get(source, get_settings().sources_dir)
    run_id = key or airflow_run_id()
    stages.handoff_prefix(source, run_id)       # a run key as the exchange takes it (ConfigError)
    api = client()
    try:
        ready_dag(api, reg.dag_id, unpause)
        api.trigger(reg.dag_id, run_id, note="exchange run")
    except AirflowUnreachable as exc:
        raise unreachable(exc) from None
    on_start(api.run_url(reg.dag_id, run_id))
    return follow(api, source, reg.dag_id, run_id, on_change)


def follow(api: AirflowClient, source: str, dag_id: str, run_id: str, on_change: OnChange) -> dict:
    """Follows the DAG run to its end; its result from Airflow and the exchange's ledger."""
    final = api.follow(dag_id, run_id, on_change)
    states = task_states(api.task_instances(dag_id, run_id))
    key = stages.run_key(run_id)
    try:
        run = open_ledger().get_run(source, key)
    except NotFound:
        run = None
    url = api.run_url(dag_id, run_id)
    out = {"source": source, "run_key": key, "dag_id": dag_id, "dag_run_id": run_id, "url": url,
           "airflow_state": final["state"], "tasks": states,
           "state": run.state if run else None, "version": run.version if run else None,
           "extracted": run.extracted if run else None, "accepted": run.accepted if run else None,
           "quarantined": run.quarantined if run else None}
    if final["state"] == "success":
        return out
    if run is not None and run.state == "held":
        raise GateHeld(f"{run.message} (Airflow: {url})", source=source, rule="size gate")
    failed = next((t for t in order(states) if states[t] == "failed"), None)
    raise AirflowRunFailed(f"DAG {dag_id} run {run_id} 失败 (failed)"
                           + (f" at task {failed}" if failed else "")
                           + (f": {run.message}" if run is not None and run.message else "")
                           + f"; see {url}")


def order(states: dict[str, str]) -> list[str]:
    """The DAG's tasks in the order they run (any others after)."""
    return [t for t in TASKS if t in states] + sorted(t for t in states if t not in TASKS)
