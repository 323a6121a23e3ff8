"""The whole path of one large SQL source on Airflow's CeleryExecutor (bench/cluster.py: workers
sharing no disk, PostgreSQL, Redis, an S3 server on 127.0.0.1), three ways:

    1w-file   one worker, storage file://            the reference
    2w-file   two workers, storage file://           workers ratio: 1w-file / 2w-file
    1w-s3     one worker, storage S3 (moto)          storage ratio: 1w-s3 / 1w-file

After an untimed warm-up run, each way is its own source (own dataset) on the same silo,
unpaused alone so the scheduler runs it while the other workers are stopped; its time is the DAG
run's (start to end in Airflow's metadata), its memory the peak resident size of each worker's
process tree (sampled). A way that fails is reported with the failing task, its worker and its
error, and the others still run. The last line is the figures as JSON."""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.cluster import Cluster, absent_services, seed_sql_silo, sql_registration

WAYS = (("1w-file", 1, "file"), ("2w-file", 2, "file"), ("1w-s3", 1, "s3"))
# a first run on both workers, not timed: a worker's first task pays for cold imports and caches
# (at 20,000 rows the first way took 44 s, the same way after it 12 s)
WARM_UP = ("warm-up", 2, "file")


def _use(cluster: Cluster, workers: int, store: str) -> None:
    """Run `workers` workers on `store`: restart every worker whose setting changed."""
    for name in cluster.worker_names:
        if name in cluster.procs and name not in cluster.killed:
            cluster.kill(name)
    cluster.store = store
    for name in cluster.worker_names[:workers]:
        cluster.start_worker(name)
    cluster.until(lambda: all(cluster.worker_ready(w) for w in cluster.worker_names[:workers]), 180, "workers")
    for name in cluster.worker_names:
        cluster.memory[name] = type(cluster.memory[name])()


def _way(cluster: Cluster, name: str, source: str, workers: int, store: str) -> dict:
    _use(cluster, workers, store)
    dag = f"source__{source}"
    objects = len(cluster.s3_objects())
    cluster.airflow("control", f"airflow-unpause-{source}", "dags", "unpause", dag)
    [run] = cluster.until(lambda: [(r["dag_id"], r["run_id"]) for r in cluster.runs(dag)] or None, 120, "the run")
    state = cluster.wait_runs([run], timeout=3600)[run]
    [r] = [r for r in cluster.runs(dag) if r["run_id"] == run[1]]
    tis = cluster.task_instances(*run)
    out = {"state": state, "workers": workers, "store": store,
           "seconds": round((r["end_date"] - r["start_date"]).total_seconds(), 1),
           "tasks": {f"{t['task_id']}" + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""):
                     {"state": t["state"], "worker": t["hostname"],
                      "seconds": round((t["end_date"] - t["start_date"]).total_seconds(), 1)
                      if t["end_date"] and t["start_date"] else None} for t in tis},
           "peak_mb": {w: {"tree": round(m.tree_mb), "process": round(m.process_mb)}
                       for w, m in cluster.memory.items() if w in cluster.worker_names[:workers]},
           "s3_objects_written": len(cluster.s3_objects()) - objects}
    if state != "success":
        out["errors"] = [f"{t['task_id']} on {t['hostname']}: {e}" for t in tis if t["state"] == "failed"
                         for e in cluster.task_errors(t["hostname"], *run, t["task_id"])]
    return out


def main(rows: int) -> int:
    if missing := absent_services():
        print("bench scale needs " + " and ".join(missing), file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="exchange-bench-scale-"))
    cluster = Cluster(root, workers=2, store="s3", paused=True)
    results: dict[str, dict] = {}
    try:
        t = time.monotonic()
        cluster.prepare()
        seed_sql_silo(cluster, "silo_bench_pg", rows)
        print(f"cluster prepared and a {rows:,}-row PostgreSQL silo seeded in {time.monotonic() - t:.0f} s "
              f"(logs: {cluster.logs})", file=sys.stderr)
        sources = {name: f"scale_{name.replace('-', '_')}" for name, _, _ in (WARM_UP, *WAYS)}
        for name, source in sources.items():       # one dataset each: a department of its own
            cluster.register(source, sql_registration(source, f"bench_{name.replace('-', '_')}", "silo_bench_pg"))
        cluster.start_airflow()
        cluster.wait_dags([f"source__{s}" for s in sources.values()])
        warm = _way(cluster, WARM_UP[0], sources[WARM_UP[0]], WARM_UP[1], WARM_UP[2])
        print(f"warm-up run (both workers; not timed): {warm['state']} in {warm['seconds']} s", file=sys.stderr)
        for name, workers, store in WAYS:
            results[name] = r = _way(cluster, name, sources[name], workers, store)
            peaks = ", ".join(f"{w} {p['tree']} MB (largest process {p['process']} MB)"
                              for w, p in r["peak_mb"].items())
            print(f"{name}: {r['state']} in {r['seconds']} s, {rows / r['seconds']:,.0f} rows/s; peak {peaks}; "
                  f"{r['s3_objects_written']} S3 objects written")
            for e in r.get("errors", []):
                print(f"  {name} failed: {e}")
    finally:
        cluster.stop()
    ok = {k: v for k, v in results.items() if v["state"] == "success"}
    ratios = {}
    if {"1w-file", "2w-file"} <= set(ok):
        ratios["workers_2_vs_1"] = round(ok["1w-file"]["seconds"] / ok["2w-file"]["seconds"], 2)
    if {"1w-file", "1w-s3"} <= set(ok):
        ratios["storage_s3_vs_file"] = round(ok["1w-s3"]["seconds"] / ok["1w-file"]["seconds"], 2)
    for k, v in (("two workers / one (speed-up)", "workers_2_vs_1"), ("S3 / file:// (time)", "storage_s3_vs_file")):
        print(f"ratio {k}: " + (f"{ratios[v]}x" if v in ratios else "n/a (a way failed)"))
    print(json.dumps({"rows": rows, "ways": results, "ratios": ratios, "timings": cluster.timings},
                     ensure_ascii=False, default=str))
    return 0
