"""Airflow's [core] hostname_callable for the scale-out cluster (bench/cluster.py): two Celery
workers on one machine report themselves by name (EXCHANGE_WORKER_NAME), so TaskInstance.hostname
says which worker ran each task. Kept tiny: every task process imports it."""
from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("EXCHANGE_WORKER_NAME") or socket.getfqdn()
