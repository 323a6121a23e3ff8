"""Extraction: our SQL connector against pandas.read_sql (the baseline) and the Arrow-native
readers installed (ADBC, connectorx) on the same 1,000,000-row table, from SQLite and from
PostgreSQL. Each reader runs in its own subprocess; memory is its peak RSS (VmHWM) above the
RSS it had once its imports were done (the interpreter's)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench.memory import rss_mb
from bench.path import DB_PREFIX, silo
from demo.synth import TABLE

PG_SERVER = os.environ.get("EXCHANGE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DB = f"{DB_PREFIX}_extract"
READERS = ("ours", "pandas", "adbc", "connectorx")


def pg_silo(rows: int) -> str | None:
    """A PostgreSQL copy of the SQLite silo, made once (cached while the row count matches)."""
    import sqlalchemy as sa

    from demo.sql_silos import create_database, database_url, seed

    url = database_url(PG_SERVER, PG_DB)
    try:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.connect() as c:
            if c.scalar(sa.text(f"select count(*) from {TABLE}")) == rows:
                return url.render_as_string(hide_password=False)
    except Exception:
        pass
    try:
        url = create_database(PG_SERVER, PG_DB)
    except Exception as exc:
        print(f"PostgreSQL not reachable at {PG_SERVER} ({type(exc).__name__}): skipped", file=sys.stderr)
        return None
    from demo.synth import business_licences

    t = time.perf_counter()
    seed(url, business_licences(rows, seed=7)[0])
    print(f"seeded PostgreSQL with {rows:,} rows in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return url.render_as_string(hide_password=False)


def read(reader: str, url: str) -> dict:
    """Runs in the child: read the whole table, count rows."""
    import sqlalchemy as sa
    if reader == "ours":
        from connectors.sql import SqlConnector
        from registration.connector import SqlSettings
    elif reader == "pandas":
        import pandas as pd
    elif reader == "adbc":
        import adbc_driver_postgresql.dbapi  # noqa: F401
        import adbc_driver_sqlite.dbapi  # noqa: F401
    elif reader == "connectorx":
        import connectorx as cx
    import pyarrow  # noqa: F401
    base = rss_mb()
    t = time.perf_counter()
    backend = sa.make_url(url).get_backend_name()
    if reader == "ours":
        rows = sum(b.num_rows for b in SqlConnector(SqlSettings(table=TABLE, url=url), "bench").batches())
    elif reader == "pandas":
        engine = sa.create_engine(url)
        rows = len(pd.read_sql(f"SELECT * FROM {TABLE}", engine))
    elif reader == "adbc":
        rows = _adbc(url, backend)
    else:
        cx_url = (f"sqlite://{sa.make_url(url).database}" if backend == "sqlite"
                  else sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        rows = cx.read_sql(cx_url, f"SELECT * FROM {TABLE}", return_type="arrow").num_rows
    seconds = time.perf_counter() - t
    peak = rss_mb("VmHWM:")
    return {"rows": rows, "seconds": seconds, "peak_mb": peak, "base_mb": base}


def _adbc(url: str, backend: str) -> int:
    import sqlalchemy as sa

    if backend == "sqlite":
        import adbc_driver_sqlite.dbapi as adbc
        conn = adbc.connect(f"file:{sa.make_url(url).database}?mode=ro")
    else:
        import adbc_driver_postgresql.dbapi as adbc
        conn = adbc.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {TABLE}")
        return sum(b.num_rows for b in cur.fetch_record_batch())


def _child(reader: str, url: str) -> dict | None:
    out = subprocess.run([sys.executable, "-m", "bench.extract", reader, url], capture_output=True, text=True)
    if out.returncode:
        print(f"{reader} failed: {out.stderr.strip().splitlines()[-1] if out.stderr else '?'}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(rows: int) -> int:
    from rich.console import Console
    from rich.table import Table

    silos = {"SQLite": f"sqlite:///{silo(rows)}", "PostgreSQL": pg_silo(rows)}
    summary = {}
    for name, url in silos.items():
        if url is None:
            continue
        results = {r: _child(r, url) for r in READERS}
        t = Table(title=f"Extracting {rows:,} rows from {name} (each reader in its own process)")
        for c in ("reader", "seconds", "rows/s", "peak MB above interpreter"):
            t.add_column(c, justify="left" if c == "reader" else "right")
        for r, res in results.items():
            if res:
                t.add_row(r, f"{res['seconds']:.2f}", f"{res['rows'] / res['seconds']:,.0f}",
                          f"{res['peak_mb'] - res['base_mb']:.0f}")
        Console().print(t)
        rate = {r: res["rows"] / res["seconds"] for r, res in results.items() if res}
        native = max((r for r in ("adbc", "connectorx") if r in rate), key=rate.get, default=None)
        ours = results["ours"]
        s = {"ours_rows_per_s": round(rate.get("ours", 0)),
             "vs_pandas": round(rate.get("ours", 0) / rate["pandas"], 2) if "pandas" in rate else None,
             "fastest_native": native,
             "vs_fastest_native": round(rate.get("ours", 0) / rate[native], 2) if native else None,
             "ours_peak_mb_above_interpreter": round(ours["peak_mb"] - ours["base_mb"]) if ours else None}
        print(f"{name}: ours / pandas.read_sql = {s['vs_pandas']}x (target >= 3x); ours / {native} = "
              f"{s['vs_fastest_native']} (target >= 0.5); peak {s['ours_peak_mb_above_interpreter']} MB "
              "above the interpreter (target < 400)")
        summary[name] = s
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    reader, url = sys.argv[1:3]
    print(json.dumps(read(reader, url)))
