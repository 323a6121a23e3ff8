"""Federation (issue #19): mirroring a generated dataset (bench/path.py silo) from one exchange to
another, beside the origin's own publish of the same versions.

The origin runs in this process (its own home in a temp dir): `stages.run_all` in full, then
again after 1 % of the silo's rows changed (bench.incremental.change), each run timed whole and
its publish stage alone. Its API is `exchange serve` in a subprocess (demo/exchanges.Exchange on
the same home), with a peer exchange department (role exchange) and its key. The mirror is a
second whole exchange (demo/exchanges.Exchange): `exchange peers add origin URL --fingerprint KID
--credential peer_origin`, then `exchange peers sync origin --json` after each origin version.
The sync's own figures come from its summary (exchange/mirroring.py): per dataset the wall
seconds in the sync process and the bytes it downloaded (version JSONs, the two Parquet files,
consistency proofs); the CLI's wall time (process start and imports included) is printed apart.

Ratio = mirror sync seconds / origin publish seconds, for the publish stage and the whole run.
Prints the figures; the last line is JSON. Asserts only that each sync was ok and mirrored the
versions the origin published (records verified = the records of those versions).

    ./run bench federation --rows 1000000
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.path import TODAY, silo

SOURCE = "smr_business_licence"
PEER_DEPT, CONN = "mirror-ex", "peer_origin"
CHANGED = 0.01
SYNC_TIMEOUT = 6 * 3600


def main(rows: int = 1_000_000) -> int:
    from demo.exchanges import Exchange

    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        origin = Exchange("origin", Path(tmp))
        try:
            figures = measure(origin, Path(tmp), rows)
        finally:
            origin.close()
        for k, v in figures.items():
            if not isinstance(v, dict):
                print(f"{k:>36}: {v}")
        for name in ("first", "changed"):
            _print_sync(name, figures[name])
        print(json.dumps(figures))
    return 0


def _print_sync(name: str, f: dict) -> None:
    print(f"{name} version {f['version']}: origin publish stage {f['origin_publish_s']} s, whole run "
          f"{f['origin_run_s']} s; mirror sync {f['sync_s']} s ({f['sync_cli_s']} s with the CLI's start), "
          f"{f['records']:,} records verified, {f['records_per_s']:,} records/s, {f['mb']} MB moved, "
          f"{f['bytes_per_record']} B/record; ratio mirror / publish stage {f['ratio_publish_stage']}x, "
          f"mirror / whole run {f['ratio_whole_run']}x")


def _origin_env(origin) -> None:
    """This process is the origin: the served exchange's environment (its home, catalogue, key
    passphrase, log origin), nothing else of EXCHANGE_* but the silo roots and today."""
    keep = {"EXCHANGE_SILO_ROOTS", "EXCHANGE_TODAY", "EXCHANGE_BENCH_OUT"}
    for k in [k for k in os.environ if k.startswith("EXCHANGE_") and k not in keep]:
        del os.environ[k]
    os.environ.update({k: v for k, v in origin.env.items() if k.startswith("EXCHANGE_")})
    from base.settings import get_settings

    get_settings.cache_clear()


def _timed_run(key: str) -> tuple[dict, float, float]:
    """stages.run_all(SOURCE, key) here: its result, whole seconds, publish-stage seconds."""
    from bench.publish_timer import timed_publish
    from exchange import stages

    with timed_publish() as timed:
        t = time.perf_counter()
        result = stages.run_all(SOURCE, key, TODAY)
        whole = time.perf_counter() - t
    if result.get("state") != "published":
        raise SystemExit(f"the origin's run {key} did not publish: {result}")
    return result, whole, timed["publish_s"]


def _sync(mirror, dataset: str) -> tuple[dict, float]:
    """`exchange peers sync origin --json` at the mirror: the dataset's summary entry, CLI seconds."""
    t = time.perf_counter()
    summary = mirror.run("peers", "sync", "origin", json=True, timeout=SYNC_TIMEOUT)
    wall = time.perf_counter() - t
    entries = [d for d in summary["datasets"] if d["dataset"] == dataset]
    if summary["outcome"] != "ok" or len(entries) != 1 or entries[0]["state"] != "ok":
        raise SystemExit(f"the mirror's sync was not ok: {json.dumps(summary, ensure_ascii=False)}")
    return entries[0], wall


def _figures(result: dict, run_s: float, publish_s: float, entry: dict, cli_s: float) -> dict:
    sync_s, moved, records = entry["seconds"], entry["bytes"], entry["records"]
    if entry["to"] != result["version"]:
        raise SystemExit(f"the mirror holds version {entry['to']}, the origin published {result['version']}")
    return {"version": result["version"], "origin_records": result["records"],
            "origin_appended": result["appended"], "origin_tree_size": result["tree_size"],
            "origin_publish_s": round(publish_s, 3), "origin_run_s": round(run_s, 3),
            "records": records, "sync_s": sync_s, "sync_cli_s": round(cli_s, 3),
            "records_per_s": round(records / sync_s) if sync_s else None,
            "bytes": moved, "mb": round(moved / 1e6, 2),
            "bytes_per_record": round(moved / records, 1) if records else None,
            "ratio_publish_stage": round(sync_s / publish_s, 2) if publish_s else None,
            "ratio_whole_run": round(sync_s / run_s, 2) if run_s else None}


def measure(origin, folder: Path, rows: int) -> dict:
    from bench.incremental import change
    from demo.exchanges import Exchange

    path = origin.home / "silos" / "silo.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(silo(rows), path)
    os.environ["EXCHANGE_SILO_ROOTS"] = os.pathsep.join(filter(None, [os.environ.get("EXCHANGE_SILO_ROOTS"),
                                                                       str(path.parent)]))
    _origin_env(origin)
    from base.settings import ROOT, get_settings
    from exchange.sources import store_file

    s = get_settings()
    kid = origin.create_key()
    s.sources_dir.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")
    (s.sources_dir / f"{SOURCE}.toml").write_text(template.replace("{silo}", str(path)), "utf-8")
    store_file(s.sources_dir / f"{SOURCE}.toml")
    origin.add_department(PEER_DEPT, "镜像平台 (bench)", "exchange")
    key = origin.issue_key(PEER_DEPT)

    first, first_run_s, first_publish_s = _timed_run("full")
    dataset = first["dataset"]
    origin.serve()
    conn = json.dumps({"conn_type": "http", "password": key})
    with Exchange("mirror", folder, env={f"AIRFLOW_CONN_{CONN.upper()}": conn}) as mirror:
        mirror.create_key()
        mirror.run("peers", "add", "origin", origin.url, f"--fingerprint={kid}", "--credential", CONN, json=True)
        entry, cli_s = _sync(mirror, dataset)
        one = _figures(first, first_run_s, first_publish_s, entry, cli_s)
        touched = change(path, CHANGED, 1)
        second, run_s, publish_s = _timed_run("changed")
        entry, cli_s = _sync(mirror, dataset)
        two = _figures(second, run_s, publish_s, entry, cli_s)
    return {"rows": rows, "dataset": dataset, "versions": second["version"],
            "records_changed_at_source": touched,
            "first_sync_s": one["sync_s"], "first_records_per_s": one["records_per_s"], "first_mb": one["mb"],
            "first_ratio_publish_stage": one["ratio_publish_stage"], "first_ratio_whole_run": one["ratio_whole_run"],
            "changed_sync_s": two["sync_s"], "changed_records_per_s": two["records_per_s"],
            "changed_mb": two["mb"], "changed_ratio_publish_stage": two["ratio_publish_stage"],
            "changed_ratio_whole_run": two["ratio_whole_run"],
            "first": one, "changed": two}
