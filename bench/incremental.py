"""Incremental runs (issue 17): the whole path (`stages.run_all`) on one generated silo, first
in full, then again after 1 %, 0.1 % and 0 % of its rows changed, in one home, so each later
run publishes onto the dataset's append-only log (only the record states that changed).

The runs work on a copy of the cached silo (bench/out is never changed). A change appends
`-变更<run>` to the address (ZS) of round(fraction x rows) rows, their rowids drawn by
random.Random(SEED + run number) from all the table's rowids, in one UPDATE; rows that
validation quarantines (the silo's ~5 % defects) publish nothing, changed or not.

Each run is its own process (its peak RSS is its own, /proc VmHWM); the libraries and the
exchange's modules are imported before its clock and that time is printed apart. Measured per
run: wall and CPU seconds (all threads, and any child processes; also by stage), bytes added to
the store (files under $EXCHANGE_HOME/store), to the catalogue (SQLite pages in use, after a
WAL checkpoint; the full run's include the registration made before its clock) and to staging,
scratch and the source's mirror, records appended (the log's tree size difference), peak RSS.
Prints the issue's targets beside the figures; asserts nothing. The last line is JSON.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.memory import peak_mb, reset_peak
from bench.path import TODAY, silo

SOURCE, TABLE = "smr_business_licence", "yyzz_djxx"
SEED = 17
RUNS = (("full", None), ("1 %", 0.01), ("0.1 %", 0.001), ("0 %", 0.0))   # in this order
JSON_NAMES = {"full": "full", "1 %": "one_percent", "0.1 %": "tenth_percent", "0 %": "zero_percent"}
PASSPHRASE = "bench passphrase, not a secret"
TARGETS = {"ratio": 0.10, "ratio_with_imports": 0.15, "bytes_factor": 2.0, "peak_mb": 1024}


def change(silo_path: Path, fraction: float, run: int) -> int:
    """Append `-变更<run>` to ZS of round(fraction x rows) rows drawn by random.Random(SEED + run)
    from the table's rowids, in one UPDATE; the number of rows updated."""
    with sqlite3.connect(silo_path) as db:
        rowids = [r for (r,) in db.execute(f"SELECT rowid FROM {TABLE} ORDER BY rowid")]
        picked = sorted(random.Random(SEED + run).sample(rowids, round(fraction * len(rowids))))
        if not picked:
            return 0
        db.execute("CREATE TEMP TABLE picked (id INTEGER PRIMARY KEY)")
        db.executemany("INSERT INTO picked VALUES (?)", ((i,) for i in picked))
        cur = db.execute(f"UPDATE {TABLE} SET ZS = ZS || ? WHERE rowid IN (SELECT id FROM picked)",
                         (f"-变更{run}",))
        return cur.rowcount


def _imports() -> float:
    """The libraries (as bench/path.py) and the exchange's modules, before the clock."""
    from bench.path import _libraries

    t = time.perf_counter()
    _libraries()
    import catalog.service  # noqa: F401
    import exchange.sources  # noqa: F401
    import exchange.stages  # noqa: F401
    return time.perf_counter() - t


def _setup(silo_path: str) -> None:
    """The source registered and a signing key made, as bench/path.py project() does."""
    from base.settings import ROOT, get_settings
    from catalog.signing.keys import KeyStore
    from exchange.sources import store_file

    s = get_settings()
    s.sources_dir.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")
    (s.sources_dir / "smr.toml").write_text(template.replace("{silo}", silo_path), "utf-8")
    store_file(s.sources_dir / "smr.toml")
    KeyStore(s.keys_dir, s.key_passphrase()).create(exist_ok=True)


def _timed_stages(stages) -> tuple[dict[str, float], dict[str, float]]:
    """Wrap the stages run_all calls (it looks them up at call time) to add up their wall
    seconds per stage, and take each stage's peak RSS (MB), into the dicts returned. The
    process's peak is then the largest of them (VmHWM restarts at each stage)."""
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def timed(name: str, fn):
        def stage(*args, **kwargs):
            before = peak_mb()
            reset = reset_peak()
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
                peaks[name] = max(peaks.get(name, 0.0), peak_mb())
                if reset:
                    peaks["_before"] = max(peaks.get("_before", 0.0), before)
        return stage

    for name in ("plan", "extract", "conform", "validate", "publish"):
        setattr(stages, name, timed(name, getattr(stages, name)))
    return seconds, peaks


def measured(silo_path: str, key: str, first: bool) -> dict:
    """One run of the whole path, timed (in its own process: see _child)."""
    import resource

    imports = _imports()
    if first:
        _setup(silo_path)
    from base.settings import get_settings
    from catalog.publish.store import version_key
    from exchange import stages

    stage_s, stage_mb = _timed_stages(stages)
    t, c = time.perf_counter(), time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = stages.run_all(SOURCE, key, TODAY)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {"wall": wall, "cpu": cpu + (after.ru_utime + after.ru_stime - kids.ru_utime - kids.ru_stime),
           "imports": imports, "peak_rss_mb": max([peak_mb(), *stage_mb.values()]), "result": result,
           "stages_s": stage_s, "stages_mb": {k: v for k, v in stage_mb.items() if not k.startswith("_")}}
    from catalog.ledger.service import Ledger  # the run's counts, after the clock
    run = Ledger(get_settings().catalog_url).get_run(SOURCE, key)
    out.update(extracted=run.extracted, accepted=run.accepted, quarantined=run.quarantined)
    if result["state"] == "published":
        import pyarrow.parquet as pq

        records = get_settings().home / version_key(result["dataset"], result["version"]) / "records.parquet"
        out["records_parquet"] = {"bytes": records.stat().st_size, "rows": pq.ParquetFile(records).metadata.num_rows}
    return out


def _child(work: Path, silo_path: Path, key: str, first: bool) -> dict:
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("EXCHANGE_STORE_URL",)}
    roots = os.pathsep.join(filter(None, [env.get("EXCHANGE_SILO_ROOTS"), str(silo_path.parent)]))
    env.update({"EXCHANGE_HOME": str(home), "EXCHANGE_CATALOG_URL": f"sqlite:///{home / 'catalog.db'}",
                "EXCHANGE_SOURCES_DIR": str(home / "sources"), "EXCHANGE_SILO_ROOTS": roots})
    env.setdefault("EXCHANGE_KEY_PASSPHRASE", PASSPHRASE)
    out = subprocess.run([sys.executable, "-m", "bench.incremental", str(silo_path), key, str(int(first))],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"run {key} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _files(path: Path) -> dict[str, int]:
    """Relative path -> size of every file under `path`."""
    return {str((Path(d) / f).relative_to(path)): (Path(d) / f).lstat().st_size
            for d, _, files in os.walk(path) for f in files}


def _kind(key: str) -> str:
    """What a store file is, for the breakdown: log tiles, or the version file's name."""
    return "log tiles" if "/log/tile/" in key else key.rsplit("/", 1)[-1]


def _catalogue(db: Path) -> dict:
    """The catalogue after a WAL checkpoint: its file size, bytes in use ((pages - free pages)
    x page size: the tables' and indexes' sum) and bytes per table or index (dbstat)."""
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        page = c.execute("PRAGMA page_size").fetchone()[0]
        used = (c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]) * page
        try:
            tables = dict(c.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        except sqlite3.OperationalError:     # an SQLite without dbstat
            tables = {}
    return {"file": db.stat().st_size, "used": used, "tables": tables}


def _sizes(home: Path) -> dict:
    return {"store": _files(home / "store"), "catalogue": _catalogue(home / "catalog.db"),
            "other": sum(sum(_files(home / d).values()) for d in ("staging", "scratch", "mirror"))}


def _size(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(b) < 1024 or unit == "GB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1024
    raise AssertionError("unreachable")


def main(rows: int) -> int:
    from rich.console import Console
    from rich.table import Table

    cached = silo(rows)
    work = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    try:
        (work / "silo").mkdir()
        copy = work / "silo" / cached.name
        shutil.copy2(cached, copy)        # the runs change the copy only
        runs = _runs(work, copy)
        bare = json.loads(subprocess.run([sys.executable, "-m", "bench.incremental", "imports-only"],
                                         capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    finally:
        if os.environ.get("EXCHANGE_BENCH_KEEP"):
            print(f"kept the silo copy and home in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    full, one, tenth, zero = (runs[name] for name, _ in RUNS)

    t = Table(title=f"Incremental runs on a {rows:,}-row SQLite silo (each in its own process; "
                    "imports before the clock)")
    for c in ("run", "rows changed", "wall s", "CPU s", "imports s", "records appended",
              "store +", "catalogue +", "bytes / appended", "staging, scratch, mirror +", "peak RSS MB"):
        t.add_column(c, justify="left" if c == "run" else "right")
    for name, r in runs.items():
        per = f"{r['added'] / r['appended']:,.0f}" if r["appended"] else "-"
        t.add_row(name, "all" if name == "full" else f"{r['changed']:,}", f"{r['wall']:.2f}", f"{r['cpu']:.2f}",
                  f"{r['imports']:.2f}", f"{r['appended']:,}", _size(r["store"]), _size(r["catalogue"]),
                  per, _size(r["other"]), f"{r['peak_rss_mb']:,.0f}")
    Console(width=200).print(t)

    ratio = one["wall"] / full["wall"]
    ratio_imports = (one["wall"] + one["imports"]) / (full["wall"] + full["imports"])
    parquet = full["records_parquet"]
    record_bytes = parquet["bytes"] / parquet["rows"]
    per_changed = one["added"] / one["appended"] if one["appended"] else None
    print("store growth in the 1 % run by file: " + ", ".join(
        f"{k} {_size(v)}" for k, v in sorted(one["store_kinds"].items(), key=lambda kv: -abs(kv[1])) if v))
    grew = sorted(((k, v) for k, v in one["tables"].items() if v), key=lambda kv: -abs(kv[1]))[:8]
    print("catalogue growth in the 1 % run by table or index (dbstat, pages): "
          + (", ".join(f"{k} {_size(v)}" for k, v in grew) or "none"))
    for name, r in runs.items():
        print(f"{name} run by stage: " + ", ".join(
            f"{k} {v:.2f} s" + (f" (peak {r['stages_mb'][k]:,.0f} MB)" if k in r.get("stages_mb", {}) else "")
            for k, v in r["stages_s"].items()))
    print(f"peak RSS of the imports alone (no run): {bare['peak_rss_mb']:,.0f} MB")
    print(f"one record in Parquet (the full version's records.parquet / its {parquet['rows']:,} records): "
          f"{record_bytes:,.0f} B")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"target ratio 1 % run / full run <= {TARGETS['ratio']:.2f} (imports apart): {ratio:.3f} "
          f"({verdict(ratio <= TARGETS['ratio'])})")
    print(f"target ratio with imports <= {TARGETS['ratio_with_imports']:.2f}: {ratio_imports:.3f} "
          f"({verdict(ratio_imports <= TARGETS['ratio_with_imports'])})")
    if per_changed is not None:
        print(f"target bytes per changed record <= {TARGETS['bytes_factor']:.0f}x one record in Parquet "
              f"({TARGETS['bytes_factor'] * record_bytes:,.0f} B): {per_changed:,.0f} B "
              f"({per_changed / record_bytes:.1f}x, {verdict(per_changed <= TARGETS['bytes_factor'] * record_bytes)})")
    at = "" if rows == 1_000_000 else f" (the target is for 1,000,000 rows; this run has {rows:,})"
    print(f"target peak RSS < 1 GB at 1M rows: full run {full['peak_rss_mb']:,.0f} MB "
          f"({verdict(full['peak_rss_mb'] < TARGETS['peak_mb'])}){at}")
    figures = {
        "rows": rows, "full_s": round(full["wall"], 3), "one_percent_s": round(one["wall"], 3),
        "tenth_percent_s": round(tenth["wall"], 3), "zero_percent_s": round(zero["wall"], 3),
        "ratio_one_percent": round(ratio, 4), "ratio_one_percent_with_imports": round(ratio_imports, 4),
        "bytes_per_changed_record": round(per_changed, 1) if per_changed is not None else None,
        "record_parquet_bytes": round(record_bytes, 1), "peak_rss_mb_1m": round(full["peak_rss_mb"]),
        "imports_peak_rss_mb": round(bare["peak_rss_mb"]),
        "runs": {JSON_NAMES[name]: _run_figures(r) for name, r in runs.items()},
    }
    print(json.dumps(figures))
    return 0


def _run_figures(r: dict) -> dict:
    kept = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
            if k not in ("tables", "records_parquet", "result", "store_kinds")}
    return {**kept, "stages_s": {k: round(v, 3) for k, v in r["stages_s"].items()},
            "stages_mb": {k: round(v) for k, v in r.get("stages_mb", {}).items()},
            "state": r["result"]["state"], "changes": r["result"].get("changes")}


def _runs(work: Path, copy: Path) -> dict:
    """The runs in order, each after its change to the silo, with what it added to the home."""
    home = work / "home"
    runs, tree = {}, 0
    before: dict = {"store": {}, "catalogue": {"file": 0, "used": 0, "tables": {}}, "other": 0}
    for i, (name, fraction) in enumerate(RUNS):
        changed = change(copy, fraction, i) if fraction is not None else None
        r = _child(work, copy, JSON_NAMES[name], first=i == 0)
        after = _sizes(home)
        size = r["result"]["tree_size"]
        cat, cat0 = after["catalogue"], before["catalogue"]
        kinds: dict[str, int] = {}
        for k in after["store"].keys() | before["store"].keys():     # removed files count less
            kinds[_kind(k)] = kinds.get(_kind(k), 0) + after["store"].get(k, 0) - before["store"].get(k, 0)
        r.update(changed=changed, appended=size - tree, store=sum(kinds.values()), store_kinds=kinds,
                 catalogue=cat["used"] - cat0["used"], catalogue_file=cat["file"] - cat0["file"],
                 other=after["other"] - before["other"],
                 tables={k: v - cat0["tables"].get(k, 0) for k, v in cat["tables"].items()})
        r["added"] = r["store"] + r["catalogue"]
        print(f"{name}: {r['wall']:.2f} s, {r['appended']:,} records appended ({r['result']['state']})",
              file=sys.stderr)
        runs[name], tree, before = r, size, after
    return runs


if __name__ == "__main__":
    if sys.argv[1:] == ["imports-only"]:
        print(json.dumps({"imports": _imports(), "peak_rss_mb": peak_mb()}))
    else:
        print(json.dumps(measured(sys.argv[1], sys.argv[2], sys.argv[3] == "1")))
