"""Which Airflow executor the exchange runs under, read without importing Airflow, and what it
decides: a SQLite catalogue is refused under an executor that runs tasks on other machines, and
a shared catalogue behind the code's head is upgraded by a process on its own only on one machine
(or with EXCHANGE_AUTO_MIGRATE=1)."""
from __future__ import annotations

import pytest

from base.errors import ConfigError
from base.settings import airflow_executor, get_settings, is_remote_executor, reset_settings


@pytest.mark.parametrize("executor, remote", [
    ("", False), ("LocalExecutor", False), ("SequentialExecutor", False),
    ("airflow.executors.local_executor.LocalExecutor", False),
    ("CeleryExecutor", True), ("KubernetesExecutor", True), ("EdgeExecutor", True),
    ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", True),
    ("LocalExecutor,CeleryExecutor", True), ("LocalExecutor, fast:my.module.LocalExecutor", False),
    ("edge:airflow.providers.edge3.executors.EdgeExecutor", True),
])
def test_which_executors_run_tasks_elsewhere(executor, remote):
    assert is_remote_executor(executor) is remote


def test_executor_from_the_environment_before_the_config_file(tmp_path):
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text("[core]\nexecutor = KubernetesExecutor\n")
    env = {"AIRFLOW_CONFIG": str(cfg)}
    assert airflow_executor(env.get) == "KubernetesExecutor"
    env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
    assert airflow_executor(env.get) == "CeleryExecutor"
    assert airflow_executor({"AIRFLOW_HOME": str(tmp_path)}.get) == "KubernetesExecutor"
    assert airflow_executor({"AIRFLOW_CONFIG": str(tmp_path / "absent.cfg")}.get) == ""


def test_sqlite_refused_under_a_remote_executor(home, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    reset_settings()
    with pytest.raises(ConfigError, match="EXCHANGE_CATALOG_URL to a PostgreSQL"):
        get_settings()
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", "postgresql+psycopg://exchange@db/exchange")
    reset_settings()
    assert get_settings().remote_executor


@pytest.mark.parametrize("executor, auto, dialect, migrates", [
    (None, None, "sqlite", True), (None, None, "postgresql", True), ("CeleryExecutor", None, "postgresql", False),
    ("CeleryExecutor", None, "mysql", False), ("CeleryExecutor", "1", "postgresql", True),
    (None, "0", "postgresql", False), (None, "0", "sqlite", False),
])
def test_who_upgrades_the_schema_on_first_use(home, monkeypatch, executor, auto, dialect, migrates):
    monkeypatch.setenv("EXCHANGE_CATALOG_URL", "postgresql+psycopg://exchange@db/exchange")
    for name, value in (("AIRFLOW__CORE__EXECUTOR", executor), ("EXCHANGE_AUTO_MIGRATE", auto)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    reset_settings()
    assert get_settings().migrates_itself(dialect) is migrates


def test_auto_migrate_must_be_a_switch(home, monkeypatch):
    monkeypatch.setenv("EXCHANGE_AUTO_MIGRATE", "sometimes")
    reset_settings()
    with pytest.raises(ConfigError, match="EXCHANGE_AUTO_MIGRATE"):
        get_settings()
