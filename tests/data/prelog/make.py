"""Make the prelog fixture: a catalogue published by the exchange before its append-only log.

Run it with an OLD checkout's interpreter (commit 08243d8, the last one before the log; any
checkout without catalog/migrations/versions/0017_append_only_log.py), from that checkout:

    git clone -q /path/to/exchange /tmp/old-exchange && git -C /tmp/old-exchange checkout -q 08243d8
    cd /tmp/old-exchange && ./run setup
    .venv/bin/python /path/to/exchange/tests/data/prelog/make.py /path/to/exchange/tests/data/prelog

In a fresh EXCHANGE_HOME (a temporary folder) it: creates a signing key (`exchange keys create`,
passphrase PASSPHRASE: a throwaway test key); writes a synthetic SQLite business-licence silo
(demo.synth, ROWS rows, seed SEED, no planted defects, as of TODAY); registers the demo source
on it; publishes version 1; exports bundles of four records (as `exchange export` gives them to a
fully granted department); revokes one silo row (DJZT '吊销'), deletes one, amends one's
address; publishes version 2; exports the four records' bundles again. Then it replaces OUT's
home/, silo/, bundles/, jwks.json and picks.json (which records, and the commit that made
them) with the result (the catalogue VACUUMed; staging, scratch
and the registration files are left out: the catalogue holds the registration). Signatures and
the key differ on every run; the silo and the records do not.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

PASSPHRASE = "correct horse battery staple"   # tests/conftest.py TEST_PASSPHRASE
SOURCE, DATASET = "smr_business_licence", "business_licence.market_regulation"
ROWS, SEED = 200, 20261130
TODAY = date(2026, 11, 30)       # the silo's "as of" date; every date in it is on or before it
PICKS = ("revoked", "withdrawn", "amended", "untouched")


def _environment(old: Path, work: Path) -> None:
    """The old checkout on sys.path, and the environment ./run and tests/conftest.py give it."""
    if (old / "catalog/migrations/versions/0017_append_only_log.py").exists():
        sys.exit(f"{old} has the append-only log already: run this from a checkout of 08243d8")
    sys.path.insert(0, str(old))
    (work / "airflow").mkdir()
    os.environ.update({
        "EXCHANGE_ROOT": str(old), "EXCHANGE_HOME": str(work / "home"),
        "EXCHANGE_KEY_PASSPHRASE": PASSPHRASE, "EXCHANGE_SILO_ROOTS": str(work / "silo"),
        "EXCHANGE_TODAY": TODAY.isoformat(), "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW_CONFIG": str(old / "airflow.cfg"), "GX_ANALYTICS_ENABLED": "false",
        "SCARF_ANALYTICS": "false", "DO_NOT_TRACK": "1"})
    for name in ("EXCHANGE_CATALOG_URL", "EXCHANGE_SOURCES_DIR", "EXCHANGE_STORE_URL"):
        os.environ.pop(name, None)


def _register(old: Path, silo: Path) -> None:
    from base.settings import get_settings
    from exchange.sources import store_file

    text = (old / "demo/registrations/smr_business_licence.toml").read_text("utf-8").replace("{silo}", str(silo))
    sources = get_settings().sources_dir
    sources.mkdir(parents=True, exist_ok=True)
    (sources / f"{SOURCE}.toml").write_text(text, encoding="utf-8")
    store_file(sources / f"{SOURCE}.toml")


def _export(cat, record_id: str, path: Path) -> None:
    """The bundle as `exchange export RECORD_ID -o PATH` writes it for a fully granted department."""
    from catalog.serving.access import disclose

    bundle = disclose(cat.bundle(record_id), None)
    path.write_text(json.dumps(bundle, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _picks(cat, silo: Path) -> dict[str, tuple[str, str]]:
    """Four records of version 1 (record id, licence number), in leaf order, each one silo row,
    valid and open-ended or valid for ten more years (not expired on any day a test runs)."""
    import sqlalchemy as sa

    with cat.engine.connect() as c:
        rows = c.execute(sa.text("select record_id, licence_number from records where version = 1 "
                                 "and status = 'valid' and (valid_to is null or valid_to > :d) order by leaf_index"),
                         {"d": TODAY.replace(year=TODAY.year + 10)}).all()
    with sqlite3.connect(silo) as db:
        single = [tuple(r) for r in rows
                  if db.execute("select count(*) from yyzz_djxx where ZCH = ?", (r[1],)).fetchone()[0] == 1]
    return dict(zip(PICKS, single))


def make(old: Path, out: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="prelog-"))
    _environment(old, work)
    from base.settings import get_settings
    from catalog.db.engine import engine_for
    from cli import main as cli
    from demo.synth import make_business_licence_silo
    from exchange import stages
    from exchange.catalogue import open_catalog

    silo = work / "silo" / "market_regulation.db"
    silo.parent.mkdir()
    make_business_licence_silo(silo, ROWS, seed=SEED, defect_rate=0.0, today=TODAY)
    silo.with_suffix(".manifest.json").unlink()
    assert cli(["keys", "create"]) == 0
    _register(old, silo)
    bundles = work / "bundles"
    bundles.mkdir()

    assert stages.run_all(SOURCE, "r1")["version"] == 1
    cat = open_catalog()
    picks = _picks(cat, silo)
    for name, (rid, _) in picks.items():
        _export(cat, rid, bundles / f"v1-{name}.json")
    with sqlite3.connect(silo) as db:
        db.execute("update yyzz_djxx set DJZT = '吊销' where ZCH = ?", (picks["revoked"][1],))
        db.execute("delete from yyzz_djxx where ZCH = ?", (picks["withdrawn"][1],))
        db.execute("update yyzz_djxx set ZS = ZS || '附1号' where ZCH = ?", (picks["amended"][1],))
    time.sleep(1.05)    # issued_at has second resolution: keep the versions' times apart
    assert stages.run_all(SOURCE, "r2")["version"] == 2
    for name, (rid, _) in picks.items():
        _export(cat, rid, bundles / f"v2-{name}.json")

    home = get_settings().home
    cat.engine.dispose()
    engine_for.cache_clear()
    db = sqlite3.connect(home / "catalog.db")     # one file: the WAL folded in, compacted
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("VACUUM")
    db.close()
    assert not (home / "catalog.db-wal").exists()
    for name in ("home", "silo", "bundles", "jwks.json", "picks.json"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        target.unlink(missing_ok=True)
    (out / "home").mkdir(parents=True)
    shutil.copy(home / "catalog.db", out / "home" / "catalog.db")
    shutil.copytree(home / "store", out / "home" / "store")
    shutil.copytree(home / "keys", out / "home" / "keys", ignore=shutil.ignore_patterns(".lock"))
    shutil.copytree(silo.parent, out / "silo")
    shutil.copytree(bundles, out / "bundles")
    shutil.copy(home / "keys" / "jwks.json", out / "jwks.json")
    commit = subprocess.run(["git", "-C", str(old), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    summary = {"made_by_commit": commit or None, "dataset": DATASET, "source": SOURCE,
               "today": TODAY.isoformat(), "rows": ROWS, "seed": SEED, "old_silo_path": str(silo),
               "records": {name: {"record_id": rid, "licence_number": number} for name, (rid, number) in picks.items()}}
    (out / "picks.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(work)
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: (from an old checkout) .venv/bin/python {sys.argv[0]} OUT_FOLDER")
    print(json.dumps(make(Path.cwd(), Path(sys.argv[1]).resolve()), ensure_ascii=False, indent=1))
