"""The `celery` dependency group (pyproject.toml, uv.lock) installs an executor that imports:
celery 5.7.0 breaks provider 3.26.0 ("cannot import name 'retry' from 'celery.backends.database'")."""
from __future__ import annotations

import importlib.metadata

import pytest


def test_the_celery_executor_imports():
    try:
        importlib.metadata.version("apache-airflow-providers-celery")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the celery dependency group is not installed (uv sync --group celery)")
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor  # lazy: optional group

    assert CeleryExecutor.__name__ == "CeleryExecutor"
    assert importlib.metadata.version("celery") == "5.6.3"
    assert importlib.metadata.version("apache-airflow-providers-celery") == "3.26.0"
    importlib.import_module("redis")
