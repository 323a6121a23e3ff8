"""Airflow DAG file: one DAG `peer__<name>` per peer exchange, every 15 minutes (see
exchange/dag_factory.py, exchange/mirroring.py)."""
from exchange.dag_factory import build_peers

globals().update(build_peers())
