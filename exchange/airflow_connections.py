"""Connections kept in Airflow's metadata database (what `airflow connections add` does, made or
replaced in one transaction), so that they outlive the process that made them: the scheduler's
task runs and `./run serve` find them where AIRFLOW_CONN_* variables would be long gone.

`put` runs in a subprocess with Airflow's environment (AIRFLOW_HOME, airflow.cfg) and hands it
the connections on stdin, never on a command line.
"""
from __future__ import annotations

import json
import subprocess
import sys

from base.airflow_env import airflow_env
from base.errors import ConfigError


def put(connections: dict[str, str], env: dict | None = None) -> None:
    """conn_id -> URI or Airflow's JSON form; an existing connection of that id is replaced.
    Needs Airflow's metadata database migrated (`airflow db migrate`)."""
    if not connections:
        return
    out = subprocess.run([sys.executable, "-m", "exchange.airflow_connections"],
                         input=json.dumps(connections), env=env or airflow_env(),
                         capture_output=True, text=True)
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        raise ConfigError(f"could not store the connections {sorted(connections)} in Airflow's "
                          f"metadata database: {last}")


def _store(connections: dict[str, str]) -> None:
    from airflow.models import Connection  # lazy: Airflow loads its config and ORM on import
    from airflow.utils.session import create_session  # lazy: as above

    with create_session() as s:
        for conn_id, value in connections.items():
            s.query(Connection).filter(Connection.conn_id == conn_id).delete()
            s.add(Connection.from_json(value, conn_id=conn_id) if value.lstrip().startswith("{")
                  else Connection(conn_id=conn_id, uri=value))


if __name__ == "__main__":
    _store(json.loads(sys.stdin.read()))
