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
"""
from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

PG = os.environ.get("EXCHANGE_DEMO_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB = os.environ.get("EXCHANGE_DEMO_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql")
KINDS = {   # sample registration -> silo kind
    "tr_road_transport": "postgresql",
    "ct_travel_agency_licence": "mariadb",
    "hrss_social_insurance": "http",
    "ca_marriage_certificate": "gbk_csv",
    "nr_real_estate_title": "xlsx",
}
TOKEN_ENV = "SILO_HRSS_TOKEN"
DB_PREFIX = os.environ.get("EXCHANGE_DEMO_DB_PREFIX", "demo")
API_PORT = int(os.environ.get("EXCHANGE_DEMO_API_PORT", "8765"))


@dataclass
class Silos:
    registrations: dict[str, str] = field(default_factory=dict)   # source id -> TOML text
    environment: dict[str, str] = field(default_factory=dict)     # AIRFLOW_CONN_*, tokens
    kinds: dict[str, str] = field(default_factory=dict)           # source id -> silo kind
    api: dict | None = None                                      # how to start the silo API
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
    from schemas.normalize import opencc_convert

    for c in columns:
        i = table.column_names.index(c)
        table = table.set_column(i, c, opencc_convert(table.column(i), "s2t"))
    return table


def _conn_uri(url) -> str:
    return url.set(drivername="postgres" if url.get_backend_name() == "postgresql" else "mysql"
                   ).render_as_string(hide_password=False)


def make(home: Path, rows: int = 2_000, api_port: int = API_PORT) -> Silos:
    from demo.drops import write_csv, write_xlsx
    from demo.synth_types import sample_registration, silo_table

    out = Silos()
    for seed, (sample_id, kind) in enumerate(KINDS.items(), start=31):
        reg = next(r for r in _samples() if r.id == sample_id)
        table, _, _ = silo_table(reg.certificate_type, rows, seed=seed)
        sample_text = sample_registration(reg.certificate_type).path.read_text("utf-8")
        try:
            connector = _place(kind, reg, table, home, api_port, out, write_csv, write_xlsx)
        except Exception as exc:     # a server that is not there: the demo goes on without it
            out.notes.append(f"{reg.id} ({kind}) skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        out.registrations[reg.id] = with_connector(sample_text, connector)
        out.kinds[reg.id] = kind
    return out


def _samples():
    from demo.synth_types import REGISTRATIONS
    from exchange import registry
    import tomllib

    return [registry.parse(tomllib.loads(p.read_text("utf-8")), str(p))
            for p in sorted(REGISTRATIONS.glob("*.toml"))]


def _place(kind, reg, table, home, api_port, out: Silos, write_csv, write_xlsx) -> dict:
    silo_table_name = reg.connector["table"]
    if kind in ("postgresql", "mariadb"):
        from demo.sql_silos import create_database, seed

        url = create_database(PG if kind == "postgresql" else MARIADB, f"{DB_PREFIX}_{reg.department}")
        seed(url, table, name=silo_table_name)
        conn_id = f"silo_{reg.department}_{kind}"
        out.environment[f"AIRFLOW_CONN_{conn_id.upper()}"] = _conn_uri(url)
        return {"kind": "sql", "conn_id": conn_id, "table": silo_table_name}
    if kind == "http":
        token = secrets.token_urlsafe(24)
        out.environment[TOKEN_ENV] = token
        out.environment["AIRFLOW_CONN_SILO_HRSS_API"] = json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{api_port}", "password": token})
        rows_file = home / "silos" / f"{reg.id}.parquet"
        rows_file.parent.mkdir(parents=True, exist_ok=True)
        import pyarrow.parquet as pq
        pq.write_table(table, rows_file)
        out.api = {"rows_file": str(rows_file), "port": api_port}
        return {"kind": "http", "conn_id": "silo_hrss_api", "path": "/licences",
                "pagination": "cursor", "auth": "bearer", "page_size": 500,
                "fields": table.column_names}
    drop = home / "drops" / reg.department
    drop.mkdir(parents=True, exist_ok=True)
    for old in drop.glob("*"):
        if old.is_file():
            old.unlink()
    if kind == "gbk_csv":
        names = [c for f, c in reg.mapping.items() if f.endswith("name") or f == "address"]
        trad = traditional(table, names)
        try:
            write_csv(trad, drop / f"{reg.department}_导出.csv", "gbk")
        except UnicodeEncodeError:   # a character outside GBK: GB18030 holds them all
            write_csv(trad, drop / f"{reg.department}_导出.csv", "gb18030")
        return {"kind": "files", "path": str(drop), "pattern": "*.csv"}
    write_xlsx(table, drop / f"{reg.department}_导出.xlsx")
    return {"kind": "files", "path": str(drop), "pattern": "*.xlsx"}
