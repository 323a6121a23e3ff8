"""The demo's other department silos (issue 4), business-licence-shaped for now:

    transport        PostgreSQL database       registration transport_business_licence (conn_id)
    culture_tourism  MariaDB database          culture_business_licence (conn_id)
    human_resources  HTTP API (demo/silo_server.py, bearer token)   hrss_business_licence
    civil_affairs    GBK CSV drop, traditional characters           civil_business_licence
    housing          XLSX export drop                               housing_business_licence

`make(home, rows)` writes the drops, seeds the databases it can reach, and returns the
registration substitutions and the AIRFLOW_CONN_* variables to set. The API server runs as
its own process: `python -m demo.silo_server --port 8765 --auth bearer --secret-env SILO_HRSS_TOKEN`.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pyarrow as pa

from demo.drops import write_csv, write_xlsx
from demo.sql_silos import create_database
from demo.sql_silos import seed as fill
from demo.synth import business_licences
from schemas.normalize import opencc_convert

TEMPLATES = ("transport_business_licence", "culture_business_licence", "hrss_business_licence",
             "civil_business_licence", "housing_business_licence")
PG = os.environ.get("EXCHANGE_DEMO_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB = os.environ.get("EXCHANGE_DEMO_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql")


def traditional(table: pa.Table, columns=("QYMC", "FDDBR", "ZS")) -> pa.Table:
    """Names and addresses as a department in traditional characters writes them."""
    for c in columns:
        table = table.set_column(table.column_names.index(c), c, opencc_convert(table.column(c), "s2t"))
    return table


def make(home: Path, rows: int = 2_000, api_port: int = 8765, db_prefix: str = "demo") -> dict:
    home = Path(home)
    subs = {"drop_civil": str(home / "drops" / "civil_affairs"),
            "drop_housing": str(home / "drops" / "housing")}
    for key in ("drop_civil", "drop_housing"):
        Path(subs[key]).mkdir(parents=True, exist_ok=True)
    civil = traditional(business_licences(rows, seed=21, cosmetic_rate=0.0)[0])
    try:
        write_csv(civil, Path(subs["drop_civil"]) / "民政_营业执照_导出.csv", "gbk")
    except UnicodeEncodeError:          # a character outside GBK: GB18030 holds them all
        write_csv(civil, Path(subs["drop_civil"]) / "民政_营业执照_导出.csv", "gb18030")
    write_xlsx(business_licences(rows, seed=22)[0], Path(subs["drop_housing"]) / "住建_营业执照.xlsx")
    conns = {}
    for name, server, db, seed in (("silo_transport_pg", PG, f"{db_prefix}_transport", 23),
                                   ("silo_culture_mariadb", MARIADB, f"{db_prefix}_culture", 24)):
        try:
            url = create_database(server, db)
            fill(url, business_licences(rows, seed=seed)[0])
            conns[f"AIRFLOW_CONN_{name.upper()}"] = url.set(
                drivername="postgres" if url.get_backend_name() == "postgresql" else "mysql"
            ).render_as_string(hide_password=False)
        except Exception as exc:   # the demo goes on without a server it cannot reach
            print(f"note: {name} not made ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    token = secrets.token_urlsafe(24)
    conns["AIRFLOW_CONN_SILO_HRSS_API"] = json.dumps(
        {"conn_type": "http", "host": f"http://127.0.0.1:{api_port}", "password": token})
    conns["SILO_HRSS_TOKEN"] = token
    return {"substitutions": subs, "environment": conns}


def render(template: str, substitutions: dict) -> str:
    text = (Path(__file__).parent / "silo_kinds" / f"{template}.toml").read_text("utf-8")
    for k, v in substitutions.items():
        text = text.replace("{" + k + "}", v)
    return text
