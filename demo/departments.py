"""The demo's departments: six silos of five kinds, each feeding a certificate type.

    market_regulation   SQLite database                business_licence            (demo.synth)
    transport           PostgreSQL database (conn_id)  road_transport_licence
    culture_tourism     MariaDB database (conn_id)     travel_agency_licence
    human_resources     HTTP API, cursor pages, bearer social_insurance_record
    civil_affairs       GBK CSV drop, traditional 字   marriage_certificate
    natural_resources   XLSX export drop               real_estate_title

Each registration is the type's sample registration (demo/registrations/) with its
[connector] section replaced by the silo kind's. A silo whose server is unreachable is
skipped with a note; the others still run.

Made again, the silos are the same (seeded; dated `today`). The database silos' and the API's
credentials are Airflow connections, for the demo to keep in Airflow's metadata database; the
API's token stays the same from run to run (kept in EXCHANGE_HOME/silos, mode 600). A drop
export whose content the exchange already took is not delivered again: a department sends an
export once, and the exchange refuses the same file twice.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import registration
from connectors.files import sha256_of
from demo import http_silo, sql_silos
from demo.drops import write_csv, write_xlsx
from demo.synth_types import REGISTRATIONS, sample_registration, silo_table
from schemas.normalize import opencc_convert

PG = os.environ.get("EXCHANGE_DEMO_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB = os.environ.get("EXCHANGE_DEMO_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql")
KINDS = {   # sample registration -> silo kind
    "tr_road_transport": "postgresql",
    "ct_travel_agency_licence": "mariadb",
    "hrss_social_insurance": "http",
    "ca_marriage_certificate": "gbk_csv",
    "nr_real_estate_title": "xlsx",
}
DB_PREFIX = os.environ.get("EXCHANGE_DEMO_DB_PREFIX", "demo")
API_PORT = int(os.environ.get("EXCHANGE_DEMO_API_PORT", "8765"))
EXPORTED = datetime(2026, 1, 1)      # the XLSX export's stated creation time: same table, same bytes


@dataclass
class Silos:
    registrations: dict[str, str] = field(default_factory=dict)   # source id -> TOML text
    connections: dict[str, str] = field(default_factory=dict)     # conn_id -> URI or Airflow JSON
    kinds: dict[str, str] = field(default_factory=dict)           # source id -> silo kind
    api: dict | None = None                                      # the silo API's source and port
    notes: list[str] = field(default_factory=list)


def toml_section(name: str, values: dict) -> str:
    lines = [f"[{name}]"]
    for k, v in values.items():
        lines.append(f"{k} = {json.dumps(v, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def with_connector(sample_text: str, connector: dict) -> str:
    """The sample registration with its [connector] section replaced."""
    return re.sub(r"\[connector\]\n(?:(?!\[).*\n)*", toml_section("connector", connector) + "\n",
                  sample_text, count=1)


def traditional(table: pa.Table, columns) -> pa.Table:

    for c in columns:
        i = table.column_names.index(c)
        table = table.set_column(i, c, opencc_convert(table.column(i), "s2t"))
    return table


def _conn_uri(url) -> str:
    return url.set(drivername="postgres" if url.get_backend_name() == "postgresql" else "mysql"
                   ).render_as_string(hide_password=False)


def make(home: Path, rows: int = 2_000, api_port: int = API_PORT, taken=None,
         today: date | None = None, kinds: tuple[str, ...] | None = None) -> Silos:
    """taken(source_id) -> the SHA-256 of the files the exchange already took from that drop;
    kinds: only these silo kinds (default: all)."""

    out = Silos()
    for seed, (sample_id, kind) in enumerate(KINDS.items(), start=31):
        if kinds is not None and kind not in kinds:
            continue
        reg = next(r for r in _samples() if r.id == sample_id)
        table, _, _ = silo_table(reg.certificate_type, rows, seed=seed, today=today)
        sample_text = sample_registration(reg.certificate_type).path.read_text("utf-8")
        try:
            connector = _place(kind, reg, table, home, api_port, out, taken(reg.id) if taken else set())
        except Exception as exc:     # a server that is not there: the demo goes on without it
            out.notes.append(f"{reg.id} ({kind}) skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        out.registrations[reg.id] = with_connector(sample_text, connector)
        out.kinds[reg.id] = kind
    return out


def _samples():
    return [registration.parse(tomllib.loads(p.read_text("utf-8")), str(p))
            for p in sorted(REGISTRATIONS.glob("*.toml"))]


def _place(kind, reg, table, home, api_port, out: Silos, taken: set[str]) -> dict:
    silo_table_name = reg.connector["table"]
    if kind in ("postgresql", "mariadb"):
        url = sql_silos.create_database(PG if kind == "postgresql" else MARIADB, f"{DB_PREFIX}_{reg.department}")
        sql_silos.seed(url, table, name=silo_table_name)
        conn_id = f"silo_{reg.department}_{kind}"
        out.connections[conn_id] = _conn_uri(url)
        return {"kind": "sql", "conn_id": conn_id, "table": silo_table_name}
    if kind == "http":
        conn_id = "silo_hrss_api"
        out.connections[conn_id] = json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{api_port}", "password": api_token(home)})
        rows_file = home / "silos" / f"{reg.id}.parquet"
        rows_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, rows_file)
        http_silo.record(home, reg.id, conn_id, rows_file, "bearer")
        out.api = {"source": reg.id, "port": api_port}
        return {"kind": "http", "conn_id": conn_id, "path": "/licences",
                "pagination": "cursor", "auth": "bearer", "page_size": 500,
                "fields": table.column_names}
    drop = home / "drops" / reg.department
    if kind == "gbk_csv":
        names = [c for f, c in reg.mapping.items() if f.endswith("name") or f == "address"]
        deliver(drop, f"{reg.department}_导出.csv", lambda p: _write_gbk(traditional(table, names), p), taken)
        return {"kind": "files", "path": str(drop), "pattern": "*.csv"}
    deliver(drop, f"{reg.department}_导出.xlsx",
            lambda p: write_xlsx(table, p, created=EXPORTED), taken)
    return {"kind": "files", "path": str(drop), "pattern": "*.xlsx"}


def _write_gbk(table: pa.Table, path: Path) -> None:
    try:
        write_csv(table, path, "gbk")
    except UnicodeEncodeError:   # a character outside GBK: GB18030 holds them all
        write_csv(table, path, "gb18030")


def deliver(drop: Path, name: str, write, taken: set[str]) -> bool:
    """The department's export, made beside the drop folder, is put into it unless its content
    was already taken (the run then finds nothing new). Earlier exports not yet taken are
    replaced: the drop holds the department's latest export only. True if delivered."""
    drop.mkdir(parents=True, exist_ok=True)
    export = drop.parent / f".{drop.name}.export"
    export.mkdir(exist_ok=True)
    made = export / name
    write(made)
    for old in drop.glob("*"):
        if old.is_file():
            old.unlink()
    if sha256_of(made) in taken:
        made.unlink()
        return False
    made.replace(drop / name)
    return True


def api_token(home: Path) -> str:
    """The demo API's bearer token, the same from run to run (a running silo server keeps
    answering the source's runs); kept in EXCHANGE_HOME/silos (mode 600)."""
    path = home / "silos" / "hrss-api-token"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24))
    return path.read_text().strip()
