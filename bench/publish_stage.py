"""The publish stage alone (exchange.stages.publish: stage the version, sign, index it in the
catalogue in one transaction) on a generated silo, on SQLite and PostgreSQL catalogues.

Extract, conform and validate run once into a prepared home (cached in bench/out); each trial
copies it (PostgreSQL: CREATE DATABASE ... TEMPLATE) and times publish in a fresh process.
Prints wall and CPU seconds (all threads) per trial and the minimum; asserts nothing.
`--code DIR` times another checkout's code on the same prepared home (before/after)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from base.settings import ROOT
from bench.path import DB_PREFIX, OUT, TODAY, silo

PG_SERVER = os.environ.get("EXCHANGE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SOURCE, KEY = "smr_business_licence", "bench"
PASSPHRASE = "bench passphrase, not a secret"


def _pg(name: str) -> str:
    return PG_SERVER.rsplit("/", 1)[0] + f"/{name}"


def _admin(sql: str) -> None:
    import sqlalchemy as sa
    engine = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as c:
        c.exec_driver_sql(sql)
    engine.dispose()


def _env(home: Path, url: str, code: Path = ROOT) -> dict:
    return {**os.environ, "EXCHANGE_HOME": str(home), "EXCHANGE_CATALOG_URL": url,
            "EXCHANGE_SOURCES_DIR": str(home / "sources"), "EXCHANGE_KEY_PASSPHRASE": PASSPHRASE,
            "EXCHANGE_ROOT": str(code), "PYTHONPATH": str(code),
            "EXCHANGE_SILO_ROOTS": os.pathsep.join(filter(None, [os.environ.get("EXCHANGE_SILO_ROOTS"), str(OUT)]))}


def _prepared(backend: str, rows: int) -> tuple[Path, str]:
    """A home where the run `bench` has been validated (and a signing key made), not published."""
    home = OUT / f"publish_stage_{backend}_{rows}"
    db = f"{DB_PREFIX}_publish_{rows}"
    url = f"sqlite:///{home / 'catalog.db'}" if backend == "sqlite" else _pg(db)
    if (home / "ready").exists():
        return home, url
    shutil.rmtree(home, ignore_errors=True)
    if backend == "postgresql":
        _admin(f"drop database if exists {db} with (force)")
        _admin(f"create database {db}")
    code = ("import sys\nfrom bench.publish_stage import _validate\n_validate(sys.argv[1])\n")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(silo(rows))], env=_env(home, url), check=True, cwd=ROOT)
    (home / "ready").write_text("")
    print(f"{backend}: prepared {rows:,} rows in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return home, url


def _validate(silo_path: str) -> None:
    from base.settings import get_settings
    from catalog.signing.keys import KeyStore
    from exchange import stages

    s = get_settings()
    s.sources_dir.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")
    (s.sources_dir / "smr.toml").write_text(template.replace("{silo}", silo_path), "utf-8")
    from exchange.sources import store_file  # lazy: after the timed imports

    store_file(s.sources_dir / "smr.toml")   # registrations live in the catalogue
    stages.extract(SOURCE, KEY)
    stages.conform(SOURCE, KEY)
    stages.validate(SOURCE, KEY, TODAY)
    KeyStore(s.keys_dir, s.key_passphrase()).create(exist_ok=True)


# run in a trial's process, from the checkout being timed (which may predate this file)
_TIMED_PUBLISH = f"""
import json, time
from catalog.service import Catalog
from exchange import stages
from base.settings import get_settings
s = get_settings()
Catalog(s.catalog_url, s.store)          # the engine and its migrations check: not timed
t, c = time.perf_counter(), time.process_time()
result = stages.publish({SOURCE!r}, {KEY!r})
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({{"wall": wall, "cpu": cpu, "state": result["state"], "tree_size": result.get("tree_size")}}))
"""


def trial(backend: str, home: Path, url: str, code: Path) -> dict:
    work = OUT / f"publish_stage_trial_{backend}"
    shutil.rmtree(work, ignore_errors=True)
    # staging files are only read or unlinked by publish: hard links; the catalogue is copied
    shutil.copytree(home, work, copy_function=os.link, ignore=shutil.ignore_patterns("catalog.db*"))
    if backend == "sqlite":
        shutil.copy2(home / "catalog.db", work / "catalog.db")
        trial_url = f"sqlite:///{work / 'catalog.db'}"
    else:
        name = url.rsplit("/", 1)[1] + "_trial"
        _admin(f"drop database if exists {name} with (force)")
        _admin(f"create database {name} template {url.rsplit('/', 1)[1]}")
        trial_url = _pg(name)
    out = subprocess.run([sys.executable, "-c", _TIMED_PUBLISH], env=_env(work, trial_url, code),
                         cwd=code, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"publish failed:\n{out.stderr[-4000:]}")
    shutil.rmtree(work, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(rows: int, trials: int = 3, backends=("sqlite", "postgresql"), codes=(ROOT,)) -> int:
    results = {}
    for backend in backends:
        home, url = _prepared(backend, rows)
        runs: dict[str, list] = {str(c): [] for c in codes}
        for _ in range(trials):          # interleaved: noise hits every checkout alike
            for c in codes:
                r = trial(backend, home, url, Path(c))
                runs[str(c)].append(r)
                print(f"{backend} {c}: wall {r['wall']:.2f} s, cpu {r['cpu']:.2f} s "
                      f"({r['state']}, {r['tree_size']:,} records)", file=sys.stderr)
        for c, rs in runs.items():
            results[f"{backend} {c}"] = {"wall_min": round(min(r["wall"] for r in rs), 2),
                                         "cpu_min": round(min(r["cpu"] for r in rs), 2),
                                         "tree_size": rs[0]["tree_size"]}
    for k, v in results.items():
        print(f"{k}: publish min of {trials}: wall {v['wall_min']:.2f} s, cpu {v['cpu_min']:.2f} s")
    print(json.dumps(results))
    return 0
