"""Airflow DAG file: `exchange_watch` checks every dataset's freshness every 15 minutes and alerts
when one turns late or stale, and when it recovers (exchange/alerts/watch.py); signs a
checkpoint of the access audit chain (exchange/audit_checkpoint.py); and alerts once on each
objection (数据异议) past its deadline (exchange/objections.py)."""
from datetime import UTC, datetime

from airflow.sdk import DAG, task

from base import clock

with DAG(dag_id="exchange_watch", schedule="*/15 * * * *", catchup=False, max_active_runs=1,
         start_date=datetime(2026, 1, 1, tzinfo=UTC), tags=["exchange", "watch"],
         description="freshness of every dataset against its update cycle; alerts on change; "
                     "a signed checkpoint of the audit log; overdue objections"):

    @task
    def check_freshness() -> list[dict]:
        from exchange.alerts.watch import check  # lazy: DAG parse (the catalogue)
        return [{k: a[k] for k in ("kind", "dataset", "message", "delivered")} for a in check()]

    @task
    def checkpoint_audit() -> dict:
        from exchange.audit_checkpoint import make_checkpoint  # lazy: DAG parse (the catalogue)
        doc = make_checkpoint(clock.now())
        return {k: doc[k] for k in ("size", "head_hash", "issued_at", "kid")}

    @task
    def check_objections() -> list[dict]:
        from exchange.objections import check_overdue  # lazy: DAG parse (the catalogue)
        return [{k: a[k] for k in ("kind", "objection", "dataset", "message")} for a in check_overdue()]

    check_freshness()
    checkpoint_audit()
    check_objections()
