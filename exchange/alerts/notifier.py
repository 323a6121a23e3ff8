"""Airflow's side of alerting: a BaseNotifier for a source DAG's on_failure_callback (runs in the
DAG processor, or in-process under `dags test`) and for its deadline alert (runs in the
triggerer), and the deadline itself: a run not finished one update cycle after it was queued."""
from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import BaseNotifier
from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

from base.errors import NotFound
from base.settings import get_settings
from exchange.alerts import Alert, log, send
from registration import CYCLES


def settle_run(source: str, run_id: str | None, task: str | None, reason) -> str | None:
    """The catalogue's message for the failed run: what the failing stage recorded, or, when
    the task died without recording anything (killed, out of memory), the run is marked failed
    here, so that it does not stay "running" in the catalogue for ever."""
    if not run_id:
        return None
    from catalog.ledger.service import FINAL, Ledger  # lazy: DAG parse (the notifier loads with each DAG)
    from exchange.stages import run_key  # lazy: DAG parse

    s = get_settings()
    try:
        cat = Ledger(s.catalog_url)
        run = cat.get_run(source, run_key(run_id))
        if run.state in FINAL or run.message:
            return run.message
        message = (f"task {task} failed before the exchange recorded the outcome ({reason}); "
                   "see the task's log in Airflow")
        cat.fail_run(run.id, message)
        return message
    except NotFound:
        return None
    except Exception as exc:
        log.error("run %s of %s not settled: %s: %s", run_id, source, type(exc).__name__, exc)
        return None


def held(source: str, run_id: str | None) -> bool:
    """Whether the catalogue's run for this Airflow run waits for a steward (a quality gate held
    it): its task fails in Airflow, but the run is held, not failed."""
    if not run_id:
        return False
    from catalog.ledger.service import Ledger  # lazy: DAG parse (the notifier loads with each DAG)
    from exchange.stages import run_key  # lazy: DAG parse

    try:
        return Ledger(get_settings().catalog_url).get_run(source, run_key(run_id)).state == "held"
    except Exception:                 # not known, or the catalogue unreachable: alert as failed
        return False


class ExchangeNotifier(BaseNotifier):
    """Sends an exchange alert for one source's DAG; never raises into Airflow."""

    def __init__(self, source: str, dataset: str, kind: str = "failed", context=None):
        super().__init__(context)
        self.source, self.dataset, self.kind = source, dataset, kind

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing templated. (Under `dags test`, Airflow 3.3.2 passes a SerializedDAG that has
        no get_template_env, so BaseNotifier's rendering would fail the callback.)"""

    def notify(self, context) -> None:
        """on_failure_callback: the failed task and the run's error."""
        try:
            dag = context.get("dag")
            ti = context.get("ti")
            run_id = context.get("run_id")
            task = getattr(ti, "task_id", None)
            if held(self.source, run_id):     # the stage sent its own "held" alert, with the command
                log.info("run %s of %s is held by a gate, not failed: no failure alert", run_id, self.source)
                return
            message = settle_run(self.source, run_id, task, context.get("reason")) or (
                f"task {task} failed before the exchange recorded the run ({context.get('reason')}); "
                "see the task's log in Airflow")
            send(Alert(self.kind, self.dataset, source=self.source,
                       dag_id=getattr(dag, "dag_id", None), run_id=run_id,
                       task=task, state="failed", message=message))
        except Exception as exc:
            log.error("alert for %s not sent: %s: %s", self.source, type(exc).__name__, exc)

    def late_alert(self, context) -> Alert:
        """A deadline missed: context is what the scheduler hands the triggerer."""
        run = (context or {}).get("dag_run") or {}
        deadline = (context or {}).get("deadline") or {}
        return Alert(self.kind, self.dataset, source=self.source, dag_id=run.get("dag_id"),
                     run_id=run.get("dag_run_id") or run.get("run_id"), state=run.get("state"),
                     message=f"run not finished by its deadline {deadline.get('deadline_time')} "
                             f"(queued {run.get('queued_at')}); state {run.get('state')}")

    async def async_notify(self, context) -> None:
        try:
            alert = self.late_alert(context)
            await asyncio.to_thread(send, alert)
        except Exception as exc:
            log.error("late-run alert for %s not sent: %s: %s", self.source, type(exc).__name__, exc)


def deadline_interval(reg, settings) -> timedelta:
    if settings.run_deadline:
        return timedelta(seconds=settings.run_deadline)
    return timedelta(days=CYCLES[reg.update_cycle])


def under_dags_test(argv: list[str] | None = None) -> bool:
    """`airflow dags test` in 3.3.2 fails every successful run of a DAG with a deadline: it
    looks the deadline up by id in a DAG it deserialised itself, where it is still a dict
    (DagRun.update_state -> DeadlineAlertModel.get_by_id). No scheduler there to check it anyway."""
    argv = sys.argv if argv is None else argv
    return len(argv) >= 3 and Path(argv[0]).name == "airflow" and argv[1:3] == ["dags", "test"]


def deadline_for(reg, settings) -> DeadlineAlert | None:
    """A run must finish within one update cycle (or EXCHANGE_RUN_DEADLINE) after it was queued.
    None (no deadline) under `airflow dags test`, or with EXCHANGE_RUN_DEADLINE=0."""
    if settings.run_deadline == 0 or under_dags_test():
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                         interval=deadline_interval(reg, settings),
                         callback=AsyncCallback(ExchangeNotifier, kwargs={
                             "source": reg.id, "dataset": reg.dataset, "kind": "late_run"}),
                         name=f"{reg.id} late")
