"""Building a Delta run's version (issue 17): the whole-state path (Catalog.current_state +
stage_log_version) beside the proportional one (Catalog.delta_base + log_delta), on a dataset
published once in full from a generated silo (bench/path.py), after 0.1 % of its rows changed.
The run is cut to the changed rows' licence numbers (as change detection would hand it over);
both builds are timed in this process, each twice (the second with warm caches), and checked
equal. Prints the figures; the last line is JSON. Home and silo copy in a temporary folder.

    ./run bench delta-publish --rows 100000    (or python -m bench.delta_publish --fraction 0.01)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from base.settings import ROOT
from bench.path import TODAY, silo

SOURCE, TABLE, SEED = "smr_business_licence", "yyzz_djxx", 23


def main(rows: int = 100_000, fraction: float = 0.001) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-delta-") as tmp:
        home = Path(tmp) / "home"
        os.environ.update(EXCHANGE_HOME=str(home), EXCHANGE_KEY_PASSPHRASE="bench passphrase, not a secret",
                          EXCHANGE_CHANGE_DETECTION="0")     # full runs: this bench cuts the delta itself
        os.environ.pop("EXCHANGE_CATALOG_URL", None)
        path = home / "silos" / "silo.db"
        path.parent.mkdir(parents=True)
        roots = os.environ.get("EXCHANGE_SILO_ROOTS")      # the copy's folder: one more silo root
        os.environ["EXCHANGE_SILO_ROOTS"] = os.pathsep.join(filter(None, [roots, str(path.parent)]))
        shutil.copy(silo(rows), path)
        print(json.dumps(_measure(home, path, fraction)))
    return 0


def _measure(home: Path, path: Path, fraction: float) -> dict:
    from base.settings import get_settings
    from catalog.signing.keys import KeyStore
    from exchange import stages

    s = get_settings()
    KeyStore(s.keys_dir, s.key_passphrase()).create(exist_ok=True)
    s.sources_dir.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")
    (s.sources_dir / f"{SOURCE}.toml").write_text(template.replace("{silo}", str(path)), "utf-8")
    from exchange.sources import store_file

    store_file(s.sources_dir / f"{SOURCE}.toml")   # registrations live in the catalogue
    t = time.perf_counter()
    first = stages.run_all(SOURCE, "full", TODAY)
    print(f"full run: {first['records']:,} records in {time.perf_counter() - t:.1f}s")
    with sqlite3.connect(path) as db:
        numbers = sorted({n for (n,) in db.execute(f"SELECT ZCH FROM {TABLE}")})
        picked = random.Random(SEED).sample(numbers, max(1, round(fraction * len(numbers))))
        db.executemany(f"UPDATE {TABLE} SET ZS = ZS || '-变更' WHERE ZCH = ?", ((n,) for n in picked))
    figures: dict = {"records": first["records"], "licences_changed": len(picked)}
    stages._publish_version = _timed(stages._publish_version, picked, figures)
    stages.run_all(SOURCE, "delta", TODAY)
    for k, v in figures.items():
        print(f"{k:>22}: {v}")
    return figures


def _timed(original, licences: list[str], figures: dict):
    import pyarrow as pa
    import pyarrow.compute as pc

    from base import staging
    from catalog.publish import log_delta, log_version

    def publish_version(catalog, reg, run, keys, accepted, conformed, scratch, delta=None, on=None,
                        carried_rows=None):
        numbers = pa.array(licences, pa.string())
        acc, conf = staging.read_table(accepted), staging.read_table(conformed)
        inside = pc.is_in(acc.column("licence_number"), value_set=numbers)
        carried = acc.filter(pc.and_(pc.invert(inside), pc.not_equal(acc.column("status"), "withdrawn"))).num_rows
        delta = log_version.Delta(numbers, carried)
        paths = []
        for name, table in (("cut_accepted", acc.filter(inside)),
                            ("cut_conformed", conf.filter(pc.is_in(conf.column("licence_number"), value_set=numbers)))):
            paths.append(staging.transient(scratch, name))
            with staging.transient_writer(paths[-1], table.schema) as w:
                w.write_table(table)
        built = {}
        for attempt in ("cold", "warm"):
            t = time.perf_counter()
            _, state, versions, size = catalog.current_state(reg.dataset)
            built["whole"] = log_version.stage_log_version(*paths, state, versions, catalog.store, reg.dataset,
                                                           reg.ctype, size, scratch / f"whole-{attempt}", delta)
            figures[f"whole_state_s_{attempt}"] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            _, versions, size, base = catalog.delta_base(reg.dataset)
            built["delta"] = log_delta.stage_delta_version(*paths, base, versions, catalog.store, reg.dataset,
                                                           reg.ctype, size, scratch / f"delta-{attempt}", delta)
            figures[f"delta_s_{attempt}"] = round(time.perf_counter() - t, 3)
            figures["delta_rows_read"] = base.reader.rows_read
        a, b = built["whole"], built["delta"]
        assert (a.leaves.tobytes(), a.record_ids, a.record_count, a.map.root(), a.changes) == \
            (b.leaves.tobytes(), b.record_ids, b.record_count, b.map.root(), b.changes)
        figures["appended"] = a.appended
        t = time.perf_counter()
        result = original(catalog, reg, run, keys, *paths, scratch, delta, catalog.current_version(reg.dataset)[0])
        figures["publish_s"] = round(time.perf_counter() - t, 3)
        return result

    return publish_version


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--fraction", type=float, default=0.001)
    a = ap.parse_args()
    raise SystemExit(main(a.rows, a.fraction))
