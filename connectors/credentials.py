"""Credentials come from Airflow Connections (`conn_id`); a URL is allowed for local development.
Inside a task through the Task SDK; outside one (CLI, demo silo server) also from the metadata
database, where `airflow connections add` and the demo keep them.

Airflow is imported only when a conn_id is used, never at import or DAG-parse time. Airflow's
secrets masker also learns the password, so task logs mask it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import sqlalchemy as sa

from base.airflow_env import use_fernet_key
from base.errors import ConfigError

SQL_DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg",
               "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql", "sqlite": "sqlite"}


@dataclass(frozen=True)
class Connection:
    conn_type: str
    host: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    port: int | None = None
    extra: dict = field(default_factory=dict, repr=False)


def airflow_connection(conn_id: str, source_id: str) -> Connection:
    try:
        from airflow.sdk import BaseHook  # lazy: Airflow only when a conn_id is used

        c = BaseHook.get_connection(conn_id)
    except ImportError as exc:  # pragma: no cover - Airflow is a dependency
        raise ConfigError(f"source {source_id}: conn_id needs Airflow installed ({exc})") from None
    except Exception as exc:
        c = _from_metadata_db(conn_id)
        if c is None:
            raise ConfigError(f"source {source_id}: Airflow connection {conn_id!r} not found "
                              f"({type(exc).__name__}); add it with `airflow connections add` or "
                              f"an AIRFLOW_CONN_{conn_id.upper()} variable") from None
    return Connection(conn_type=(c.conn_type or "").lower(), host=c.host, login=c.login,
                      password=c.password, schema=c.schema, port=c.port, extra=c.extra_dejson or {})


def _from_metadata_db(conn_id: str):
    """Outside a task (a CLI, a silo server) the Task SDK looks only at AIRFLOW_CONN_*; the
    connections `airflow connections add` stored are in the metadata database."""
    try:
        use_fernet_key()                # stored passwords are encrypted with the home's key
        from airflow.models.connection import Connection as Stored  # lazy: as above

        return Stored.get_connection_from_secrets(conn_id)
    except Exception:       # not there, no database, or inside a task (no direct DB access)
        return None


def sql_url(conn_id: str | None, url: str | None, source_id: str) -> sa.URL:
    """The SQLAlchemy URL of a SQL silo, from an Airflow connection or a development URL."""
    if url:
        return sa.make_url(url)
    if not conn_id:
        raise ConfigError(f"source {source_id}: a sql connector needs 'conn_id' (or 'url' for development)")
    c = airflow_connection(conn_id, source_id)
    driver = SQL_DRIVERS.get(c.conn_type)
    if driver is None:
        raise ConfigError(f"source {source_id}: connection {conn_id!r} has type {c.conn_type!r}; "
                          f"known: {', '.join(sorted(SQL_DRIVERS))}")
    if driver == "sqlite":
        return sa.URL.create("sqlite", database=c.host or c.schema)
    return sa.URL.create(driver, username=c.login, password=c.password, host=c.host,
                         port=c.port, database=c.schema)


def secret_from(conn_id: str | None, env: str | None, source_id: str, what: str) -> tuple[str | None, dict]:
    """(secret, extra) for an HTTP silo: the connection's password, or an environment
    variable named in the registration (development). The secret itself is never in a file."""
    if conn_id:
        c = airflow_connection(conn_id, source_id)
        return c.password, {**c.extra, **({"host": c.host} if c.host else {})}
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"source {source_id}: {what} variable {env} is not set")
        return value, {}
    return None, {}
