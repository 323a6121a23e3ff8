"""The demo's HTTP silo as a service: the demo records how to serve it (`record`), and both the
demo and `./run serve` start it the same way (`command`) while its source is registered.

The record holds no secret: the server takes its port and token from the source's Airflow
connection (`python -m demo.silo_server --conn-id ...`), the same the source's runs use.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from base.errors import ConfigError
from base.settings import get_settings
from catalog import registrations

RECORD = "http_silo.json"     # in EXCHANGE_HOME/silos/


def record(home: Path, source_id: str, conn_id: str, rows_file: Path, auth: str) -> None:
    path = home / "silos" / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": source_id, "conn_id": conn_id, "rows_file": str(rows_file),
                                "auth": auth}, ensure_ascii=False), encoding="utf-8")


def command(home: Path) -> tuple[str, list[str]] | None:
    """(source id, the server's command line) when the demo's HTTP source is registered (in
    the catalogue) with the recorded connection; None otherwise."""
    path = home / "silos" / RECORD
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    if not Path(rec["rows_file"]).is_file():
        return None
    try:
        connector = registrations.get(get_settings().catalog_url, rec["source"]).connector
    except ConfigError:             # not registered, or its registration does not load
        return None
    if connector.get("kind") != "http" or connector.get("conn_id") != rec["conn_id"]:
        return None
    return rec["source"], [sys.executable, "-m", "demo.silo_server", "--rows-file", rec["rows_file"],
                           "--conn-id", rec["conn_id"], "--auth", rec["auth"]]
