"""Airflow DAG file: `exchange_notices` every two minutes: change notices for versions not yet
fanned out, the day's expiries and objection outcomes, then a delivery pass (retries that are
due, dead letters alerted). exchange/notifying.py::sweep; one run at a time."""
from datetime import UTC, datetime

from airflow.sdk import DAG, task

with DAG(dag_id="exchange_notices", schedule="*/2 * * * *", catchup=False, max_active_runs=1,
         start_date=datetime(2026, 1, 1, tzinfo=UTC), tags=["exchange", "notices"],
         description="change notices to subscribing departments: fan-out, expiries, objection "
                     "outcomes, delivery with retries and dead letters"):

    @task(task_display_name="通知 deliver notices")
    def deliver_notices() -> dict:
        from exchange.notifying import sweep  # lazy: DAG parse (the catalogue, the signing key)
        return sweep()

    deliver_notices()
