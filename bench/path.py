"""The whole path (extract, conform, validate, publish) on a generated silo, beside the naive
baseline (pandas.read_sql + GX COMPLETE + json.dumps and one Ed25519 signature per row + one
ORM insert per row) in the same run. Each side runs in its own process for its peak memory.
Library imports happen before both clocks (the naive side never timed its own) and are printed
apart; everything a run does (GX context, catalogue connections, keys) is timed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from base.settings import ROOT
from bench.memory import peak_mb

# where generated silos and prepared homes are cached, and the prefix of the PostgreSQL
# databases the benches make (tests point both elsewhere)
OUT = Path(os.environ.get("EXCHANGE_BENCH_OUT") or ROOT / "bench" / "out")
DB_PREFIX = os.environ.get("EXCHANGE_BENCH_DB_PREFIX", "exchange_bench")
TODAY = date(2026, 11, 21)


def silo(rows: int) -> Path:
    from demo.synth import make_business_licence_silo

    path = OUT / f"silo_{rows}.db"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        make_business_licence_silo(path, rows, seed=7, today=TODAY)   # the day the runs validate as of
        print(f"generated {rows:,}-row silo in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return path


def project(silo_path: str) -> dict:
    imports = _libraries()
    from base.settings import get_settings
    from exchange import stages

    s = get_settings()
    s.sources_dir.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")
    (s.sources_dir / "smr.toml").write_text(template.replace("{silo}", silo_path), "utf-8")
    from exchange.sources import store_file  # lazy: after the timed imports

    store_file(s.sources_dir / "smr.toml")   # registrations live in the catalogue
    from catalog.signing.keys import KeyStore
    KeyStore(s.keys_dir, s.key_passphrase()).create(exist_ok=True)   # as `exchange keys create`
    times, cpu, peaks = {}, {}, {}
    for name, fn in (("extract", stages.extract), ("conform", stages.conform),
                     ("validate", lambda a, b: stages.validate(a, b, TODAY)),
                     ("publish", stages.publish)):
        t, c = time.perf_counter(), time.process_time()
        result = fn("smr_business_licence", "bench")
        times[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
        peaks[name] = peak_mb()
        if name == "validate":
            counts = result
    return {"times": times, "cpu": cpu, "imports": imports, "peaks": peaks, "rows": counts["extracted"],
            "accepted": counts["accepted"], "peak_rss_mb": peak_mb()}


def _libraries() -> float:
    """Import the libraries both sides use before either clock starts: the naive side never
    timed its imports, so neither side does (the figure is printed apart). Import only:
    nothing of a run (GX's context, connections, keys) is made here."""
    t = time.perf_counter()
    import adbc_driver_sqlite.dbapi  # noqa: F401
    import datafusion  # noqa: F401
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401
    import sqlalchemy  # noqa: F401
    return time.perf_counter() - t


def naive(silo_path: str, sample: int) -> dict:
    imports = _libraries()
    import great_expectations as gx
    import pandas as pd
    import sqlalchemy as sa
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.orm import DeclarativeBase, Session

    from quality import suites
    from schemas.types import get_type

    ctype = get_type("business_licence")
    reg_map = _mapping()
    t0, c0 = time.perf_counter(), time.process_time()
    engine = sa.create_engine(f"sqlite:///{silo_path}")
    df = pd.read_sql(f"SELECT * FROM yyzz_djxx LIMIT {sample}", engine)
    t1 = time.perf_counter()
    df = df.rename(columns={v: k for k, v in reg_map.items()})
    for f in ctype.fields:
        if f.type == "date":
            parsed = pd.to_datetime(df.get(f.name), errors="coerce", format="mixed")
            df[f"_unparsed_{f.name}"] = df.get(f.name).where(parsed.isna() & df.get(f.name).notna())
            df[f.name] = parsed
        elif f.name not in df:
            df[f.name] = None
    context = gx.get_context(mode="ephemeral")      # stock GX: no tuning
    batch = (context.data_sources.add_pandas("naive").add_dataframe_asset("rows")
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df}))
    result = batch.validate(suites.to_gx(suites.read(ctype.name)), result_format="COMPLETE",
                            expectation_parameters={"today": TODAY.isoformat()})
    bad = {i for r in result.results for i in (r.result.get("unexpected_index_list") or [])}
    t2 = time.perf_counter()

    class Base(DeclarativeBase):
        pass

    class Row(Base):
        __tablename__ = "signed"
        id = sa.Column(sa.Integer, primary_key=True)
        body = sa.Column(sa.Text)
        sig = sa.Column(sa.LargeBinary)

    key = Ed25519PrivateKey.generate()
    db = sa.create_engine(f"sqlite:///{tempfile.mkdtemp()}/naive.db")
    Base.metadata.create_all(db)
    with Session(db) as s:
        for i, row in enumerate(df.astype(str).to_dict("records")):
            if i in bad:
                continue
            body = json.dumps(row, ensure_ascii=False, sort_keys=True)
            s.add(Row(body=body, sig=key.sign(body.encode())))
            s.flush()
        s.commit()
    t3 = time.perf_counter()
    return {"rows": len(df), "cpu": time.process_time() - c0, "imports": imports,
            "times": {"read_sql": t1 - t0, "gx_complete": t2 - t1, "sign_and_insert_per_row": t3 - t2},
            "peak_rss_mb": peak_mb()}


def _mapping() -> dict:
    import tomllib
    return tomllib.loads((ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8"))["mapping"]


def _child(kind: str, *args) -> dict:
    env = {**os.environ, "EXCHANGE_HOME": tempfile.mkdtemp(prefix="bench-home-")}
    env.setdefault("EXCHANGE_KEY_PASSPHRASE", "bench passphrase, not a secret")
    out = subprocess.run([sys.executable, "-m", "bench.path", kind, *map(str, args)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(rows: int, sample: int) -> int:
    from rich.console import Console
    from rich.table import Table

    path = str(silo(rows))
    base_mb = _child("baseline-interpreter")["peak_rss_mb"]
    ours = _child("project", path)
    theirs = _child("naive", path, min(sample, rows))
    t = Table(title=f"Whole path on a {rows:,}-row SQLite silo (peak memory: the process's RSS, "
                    "memory-mapped hand-off files included)")
    for c in ("stage", "seconds", "rows/s", "CPU s (all threads)", "peak MB so far"):
        t.add_column(c, justify="right" if c != "stage" else "left")
    for stage, sec in ours["times"].items():
        t.add_row(stage, f"{sec:.2f}", f"{ours['rows'] / sec:,.0f}", f"{ours['cpu'][stage]:.2f}",
                  f"{ours['peaks'][stage]:,.0f}")
    total, total_cpu = sum(ours["times"].values()), sum(ours["cpu"].values())
    ours_rate = ours["rows"] / total
    t.add_row("[bold]whole path[/]", f"{total:.2f}", f"[bold]{ours_rate:,.0f}[/]", f"{total_cpu:.2f}")
    naive_total = sum(theirs["times"].values())
    naive_rate = theirs["rows"] / naive_total
    t.add_row(f"naive baseline (sample of {theirs['rows']:,} rows)", f"{naive_total:.2f}",
              f"{naive_rate:,.0f}", f"{theirs['cpu']:.2f}")
    Console().print(t)
    print("naive stages: " + ", ".join(f"{k} {theirs['rows'] / v:,.0f} rows/s"
                                         for k, v in theirs["times"].items()))
    print(f"imports before the clocks (pyarrow, pandas, SQLAlchemy, ADBC, DataFusion, Great Expectations), "
          f"not timed on either side: project {ours['imports']:.2f} s, naive {theirs['imports']:.2f} s")
    print(f"peak memory: project {ours['peak_rss_mb']:.0f} MB, naive {theirs['peak_rss_mb']:.0f} MB, "
          f"bare interpreter with imports {base_mb:.0f} MB")
    print(f"ratio whole path / naive baseline: {ours_rate / naive_rate:.1f}x (target >= 5x); "
          f"in CPU time: {(ours['rows'] / total_cpu) / (theirs['rows'] / theirs['cpu']):.1f}x")
    print(json.dumps({"rows": ours["rows"], "project_rows_per_s": round(ours_rate),
                      "naive_rows_per_s": round(naive_rate), "ratio": round(ours_rate / naive_rate, 2),
                      "stages_rows_per_s": {k: round(ours["rows"] / v) for k, v in ours["times"].items()},
                      "peak_rss_mb": round(ours["peak_rss_mb"])}))
    return 0


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "project":
        print(json.dumps(project(args[0])))
    elif kind == "naive":
        print(json.dumps(naive(args[0], int(args[1]))))
    elif kind == "baseline-interpreter":
        import pyarrow  # noqa: F401
        print(json.dumps({"peak_rss_mb": peak_mb()}))
