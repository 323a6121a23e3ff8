"""Airflow DAG file: one DAG per registered source (see exchange/dag_factory.py)."""
from exchange.dag_factory import build_all

globals().update(build_all())
