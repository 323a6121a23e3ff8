"""One DAG per registered source: plan -> extract -> conform -> validate (each mapped over the
run's partitions) -> publish -> announce, and beside announce notify (change notices to the
dataset's subscribers: exchange/notifying.py).

Only wiring here: every task calls exchange.stages with ids and passes paths on; extract and
publish note their OpenLineage datasets (exchange/lineage.py).
Parse-time cost is one SELECT of the registrations in the catalogue (catalog/registrations.py),
the same on every scheduler and DAG processor; nothing heavy is imported.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Asset, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from base.settings import get_settings
from catalog import registrations
from exchange.alerts.notifier import ExchangeNotifier, deadline_for
from registration import Registration

START = datetime(2026, 1, 1, tzinfo=UTC)
log = logging.getLogger(__name__)


def asset_for(reg: Registration) -> Asset:
    return Asset(name=f"exchange.{reg.dataset}", uri=f"exchange://datasets/{reg.dataset}")


def _key() -> str:
    from exchange.stages import run_key  # lazy: DAG parse (stages import pyarrow, GX, the catalogue)
    return run_key(get_current_context()["run_id"])


TASK_NAMES = {"plan": "计划 plan", "extract": "抽取 extract", "conform": "规整 conform",
              "validate": "校验 validate", "publish": "发布 publish", "announce": "公告 announce",
              "notify": "通知 notify"}


def display_name(reg: Registration) -> str:
    """The DAG's name in Airflow's UI: department · certificate (dag id)."""
    return f"{reg.department_name or reg.department} · {reg.ctype.title} ({reg.dag_id})"


PART_NAME = "{{ partition_name }}"       # a mapped task instance's name in the UI


def _named(part: dict) -> str:
    """Names this mapped task instance by its partition (map_index_template); the run id."""
    context = get_current_context()
    context["partition_name"] = f"分区 partition {part['index'] + 1}/{part['of']}"  # type: ignore[typeddict-unknown-key]
    return context["run_id"]


def build_dag(reg: Registration) -> DAG:
    """plan -> extract, conform, validate mapped over the plan's partitions (one for a source
    that is not split) -> publish (merging them in order) -> announce."""
    asset = asset_for(reg)
    with DAG(dag_id=reg.dag_id, dag_display_name=display_name(reg), schedule=reg.schedule,
             start_date=START, catchup=False,
             description=reg.title, tags=["exchange", reg.department, reg.certificate_type],
             default_args={"retries": 0, "retry_delay": timedelta(seconds=30)},
             max_active_runs=1,
             on_failure_callback=ExchangeNotifier(source=reg.id, dataset=reg.dataset),
             deadline=deadline_for(reg, get_settings())) as dag:

        @task(task_display_name=TASK_NAMES["plan"])
        def plan() -> list[dict]:
            from exchange import stages  # lazy: DAG parse (stages import pyarrow, GX, the catalogue)
            return stages.plan(reg.id, _key(), get_current_context()["run_id"])

        @task(task_display_name=TASK_NAMES["extract"], map_index_template=PART_NAME)
        def extract(part: dict) -> dict:
            from exchange import lineage, stages  # lazy: DAG parse
            return lineage.noted(reg, "extract", _key(), stages.extract(reg.id, _key(), _named(part), part))

        @task(task_display_name=TASK_NAMES["conform"], map_index_template=PART_NAME)
        def conform(extracted: dict) -> dict:
            from exchange import stages  # lazy: DAG parse
            _named(extracted["part"])
            return stages.conform(reg.id, _key(), extracted["part"])

        @task(task_display_name=TASK_NAMES["validate"], map_index_template=PART_NAME)
        def validate(conformed: dict) -> dict:
            from exchange import stages  # lazy: DAG parse
            _named(conformed["part"])
            return stages.validate(reg.id, _key(), part=conformed["part"])

        @task(task_display_name=TASK_NAMES["publish"])
        def publish(validated: list[dict]) -> dict:
            from exchange import lineage, stages  # lazy: DAG parse
            return lineage.noted(reg, "publish", _key(), stages.publish(reg.id, _key(), [v["part"] for v in validated]))

        @task(outlets=[asset], task_display_name=TASK_NAMES["announce"])
        def announce(published: dict, *, outlet_events=None) -> dict:
            if published["state"] != "published":
                raise AirflowSkipException(f"dataset {reg.dataset} unchanged: no new version")
            outlet_events[asset].extra = published
            return published

        @task(task_display_name=TASK_NAMES["notify"])
        def notify(published: dict) -> dict:
            """Never fails for a receiver that is down: its notices are retried later."""
            from exchange import notifying  # lazy: DAG parse
            return notifying.notify(reg.dataset)

        extracted = extract.expand(part=plan())
        published = publish(validate.expand(conformed=conform.expand(extracted=extracted)))
        announce(published)
        notify(published)
    return dag


def build_all() -> dict[str, DAG]:
    """A DAG per registration in the catalogue that loads; one that does not is skipped and
    logged (and listed by `exchange status` and the dashboard), hiding no other source's DAG."""
    dags = {}
    for reg in registrations.load_all(get_settings().catalog_url).values():
        try:
            dags[reg.dag_id] = build_dag(reg)
        except Exception as exc:  # noqa: BLE001 - one source's DAG, never every other's
            log.error("registration not loaded: %s: source %s: its DAG could not be built (%s: %s)",
                      reg.source_file, reg.id, type(exc).__name__, exc)
    return dags


# peers (issue #19): one DAG `peer__<name>` per peer exchange in the catalogue
PEER_SCHEDULE = "*/15 * * * *"


def peer_dag_id(name: str) -> str:
    return f"peer__{name}"


def build_peer_dag(peer: dict) -> DAG:
    """sync: exchange/mirroring.py::sync_peer. It alerts every refusal and failure itself
    (peer_refused, peer_failed), so no failure callback here; an outcome other than ok fails
    the task, so Airflow shows it too."""
    name, url = peer["name"], peer.get("url") or ""
    with DAG(dag_id=peer_dag_id(name), dag_display_name=f"对端 peer · {name} ({peer_dag_id(name)})",
             schedule=PEER_SCHEDULE, start_date=START, catchup=False, max_active_runs=1,
             description=f"镜像对端交换平台 (mirror peer exchange) {name}: {url}",
             tags=["exchange", "peer"], default_args={"retries": 0}) as dag:

        @task(task_display_name="同步 sync")
        def sync() -> dict:
            from exchange.mirroring import raise_for_outcome, sync_peer  # lazy: DAG parse
            return raise_for_outcome(sync_peer(name))

        sync()
    return dag


def build_peers() -> dict[str, DAG]:
    """A DAG per peer in the catalogue (Peers.list(): one read at parse time); none when the
    catalogue cannot be read (logged), hiding no other DAG."""
    try:
        from catalog.db.engine import reader_for  # lazy: only this file's parse
        from catalog.federation.peers import Peers

        peers = Peers(reader_for(get_settings().catalog_url)).list()
    except Exception as exc:  # noqa: BLE001 - the peers' DAGs, never the sources'
        log.error("peers not loaded: %s: %s", type(exc).__name__, exc)
        return {}
    dags = {}
    for p in peers:
        peer = p if isinstance(p, dict) else {"name": p.name, "url": p.url}
        dags[peer_dag_id(peer["name"])] = build_peer_dag(peer)
    return dags
