"""The consumer API under load: holder lookups per second over HTTP on 127.0.0.1 with
authentication, purpose check and audit write, against a catalogue of N records, on SQLite and
PostgreSQL; p50/p99 latency; and the in-process lookup. Prints figures; asserts nothing."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from base.settings import ROOT
from bench.path import DB_PREFIX, OUT, silo

PG_ADMIN = os.environ.get("EXCHANGE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PURPOSE = "DJ-SCJG-0003"
GROUPED, COMMIT = "lookup, audit entry group-committed apart", "group commit of 64, per entry"
DURABLE = "lookup committing its own audit entry"


def _db(rows: int) -> str:
    return f"{DB_PREFIX}_api_{rows}"


def _url(backend: str, home: Path, rows: int) -> str:
    if backend == "sqlite":
        return f"sqlite:///{home / 'catalog.db'}"
    import sqlalchemy as sa
    return sa.make_url(PG_ADMIN).set(database=_db(rows)).render_as_string(hide_password=False)


def _env(backend: str, rows: int) -> dict:
    home = OUT / f"api_{backend}_{rows}"
    return {**os.environ, "EXCHANGE_HOME": str(home), "EXCHANGE_CATALOG_URL": _url(backend, home, rows),
            "EXCHANGE_SOURCES_DIR": str(home / "sources"), "EXCHANGE_API_RATE": "1000000000",
            "EXCHANGE_API_BURST": "1000000000"}


def _published(env: dict) -> int:
    import sqlalchemy as sa
    try:
        engine = sa.create_engine(env["EXCHANGE_CATALOG_URL"], poolclass=sa.NullPool)
        with engine.connect() as c:
            return c.scalar(sa.text("select coalesce(max(tree_size), 0) from dataset_versions")) or 0
    except Exception:
        return 0
    finally:
        if "engine" in locals():
            engine.dispose()


def seed(backend: str, rows: int) -> dict:
    """Publish the generated silo through exchange.stages once; cached in bench/out."""
    env = _env(backend, rows)
    if _published(env) >= rows * 0.9:
        return env
    if backend == "postgresql":
        import sqlalchemy as sa
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f"drop database if exists {_db(rows)} with (force)"))
            c.execute(sa.text(f"create database {_db(rows)}"))
    import shutil
    shutil.rmtree(env["EXCHANGE_HOME"], ignore_errors=True)
    path = silo(rows)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"from bench.api import _publish; _publish({str(path)!r})"],
                   env=env, check=True, cwd=ROOT)
    print(f"{backend}: published {rows:,} records in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return env


def _publish(silo_path: str) -> None:
    from bench.path import project
    project(silo_path)


def _setup_consumer(env: dict) -> tuple[str, list[str]]:
    """A department with a key, and holders to look up (sampled across the catalogue)."""
    code = ("import json,sqlalchemy as sa\n"
            "from catalog.serving.access import Access\nfrom catalog.db.engine import engine_for\n"
            "import os\ne=engine_for(os.environ['EXCHANGE_CATALOG_URL'])\na=Access(e,0)\n"
            "a.add_department('bench-dept','Benchmark department')\nk=a.issue_credential('bench-dept')['key']\n"
            "with e.connect() as c:\n"
            "  h=[r[0] for r in c.execute(sa.text('select holder_key from records where mod(leaf_index, 397) = 0'))]\n"
            "print(json.dumps({'key':k,'holders':h}))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT,
                         capture_output=True, text=True).stdout
    d = json.loads(out.strip().splitlines()[-1])
    return d["key"], d["holders"]


def in_process(env: dict, key: str, holders: list[str], n: int = 10000) -> dict:
    code = f"from bench.api import _in_process; _in_process({key!r}, {holders!r}, {n})"
    out = subprocess.run([sys.executable, "-c", code],
                         env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _in_process(key: str, holders: list[str], n: int) -> None:
    """Lookups without HTTP, one at a time: the query alone; the consumer's lookup (key,
    purpose, access decision, query, audit entry) with its entry left for a group commit of 64,
    timed apart; and the lookup that commits its own entry before it returns (the durable whole,
    what the in-process target is about)."""
    from base.settings import get_settings
    from catalog.service import Catalog
    from catalog.serving import audit
    from catalog.serving.access import Access
    from catalog.serving.consumer import PENDING, Consumer

    s = get_settings()
    cat = Catalog(s.catalog_url, s.store, pre_ping=False)
    con = Consumer(cat, Access(cat.engine))
    rnd, pending, commits = random.Random(1), [], []

    def prepared(h):
        token = PENDING.set(pending)
        try:
            con.lookup(con.access.authenticate(key), PURPOSE, h)
        finally:
            PENDING.reset(token)

    def committed(h):
        con.lookup(con.access.authenticate(key), PURPOSE, h)

    out = {}
    for name, fn in (("catalog.lookup (the query)", cat.lookup),
                     (GROUPED, prepared),
                     (DURABLE, committed)):
        for h in holders[:200]:
            fn(h)
        pending.clear()
        lat = []
        for _ in range(n):
            h = rnd.choice(holders)
            t = time.perf_counter()
            fn(h)
            lat.append(time.perf_counter() - t)
            if len(pending) >= 64:
                t = time.perf_counter()
                audit.append_many(cat.engine, pending[:])
                commits.append((time.perf_counter() - t) / len(pending))
                pending.clear()
        lat.sort()
        out[name] = {"p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * .99)] * 1e3}
    commits.sort()
    out[COMMIT] = {"p50_ms": commits[len(commits) // 2] * 1e3,
                                            "p99_ms": commits[int(len(commits) * .99)] * 1e3}
    print(json.dumps(out))


def _client(port: int, key: str, holders: list[str], seconds: float, conns: int, q) -> None:
    """Keep-alive connections on asyncio streams (uvloop) with request bytes prepared before
    the clock starts: a light client, so that the 2 cores go to the server."""
    import asyncio

    import uvloop

    def request(holder: str) -> bytes:
        body = json.dumps({"holder_id": holder}).encode()
        return (f"POST /v1/holders/records?purpose={PURPOSE} HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    requests = [request(h) for h in holders]

    async def one(seed, lat, errors):
        rnd = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            req = rnd.choice(requests)
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            if not head.startswith(b"HTTP/1.1 200"):
                errors[0] += 1
        writer.close()

    async def run():
        lat, errors = [], [0]
        cpu = time.process_time()
        await asyncio.gather(*(one(i, lat, errors) for i in range(conns)))
        return lat, errors[0], time.process_time() - cpu
    q.put(uvloop.run(run()))


def _procs() -> dict[int, tuple[str, int, int]]:
    """pid -> (command, ppid, utime + stime in ticks), from /proc."""
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                comm, rest = (d / "stat").read_text().split(" (", 1)[1].rsplit(")", 1)
            except (OSError, ValueError):
                continue
            f = rest.split()
            stats[int(d.name)] = (comm, int(f[1]), int(f[11]) + int(f[12]))
    return stats


def _db_cpu_seconds() -> float:
    """CPU of the local PostgreSQL server's processes (the benchmark's backends among them)."""
    return sum(t for comm, _, t in _procs().values() if comm == "postgres") / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(root: int) -> float:
    """utime+stime of a process and its live descendants (uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {pid: (ppid, t) for pid, (_, ppid, t) in _procs().items()}
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += [c for c, (ppid, _) in stats.items() if ppid == pid]
    return total / tick


def over_http(env: dict, key: str, holders: list[str], seconds: float, workers: int,
              clients: int, conns: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port),
                               "--loop", os.environ.get("BENCH_LOOP", "auto"), "--workers", str(workers)],
                              env=env, cwd=ROOT)
    try:
        import http.client
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        q = mp.Queue()
        procs = [mp.Process(target=_client, args=(port, key, holders, seconds, conns, q)) for _ in range(clients)]
        cpu0, db0, t0 = _cpu_seconds(server.pid), _db_cpu_seconds(), time.perf_counter()
        for p in procs:
            p.start()
        results = [q.get() for _ in procs]
        elapsed, cpu = time.perf_counter() - t0, _cpu_seconds(server.pid) - cpu0
        db = _db_cpu_seconds() - db0
        for p in procs:
            p.join()
    finally:
        server.terminate()
        server.wait(10)
    lat = sorted(x for r, _, _ in results for x in r)
    return {"requests": len(lat), "errors": sum(e for _, e, _ in results), "seconds": round(elapsed, 1),
            "per_second": round(len(lat) / elapsed), "p50_ms": round(lat[len(lat) // 2] * 1e3, 2),
            "p99_ms": round(lat[int(len(lat) * .99)] * 1e3, 2),
            "server_cpu_s_per_1000": round(cpu / len(lat) * 1000, 3),
            "postgres_cpu_s_per_1000": round(db / len(lat) * 1000, 3),
            "client_cpu_s_per_1000": round(sum(c for _, _, c in results) / len(lat) * 1000, 3)}


def main(rows: int, seconds: float = 15, workers: int = 1, clients: int = 1, conns: int = 8,
         backends=("sqlite", "postgresql")) -> int:
    results = {}
    for backend in backends:
        env = seed(backend, rows)
        key, holders = _setup_consumer(env)
        print(f"\n== {backend}: {_published(env):,} records; {len(holders):,} holders sampled")
        local = in_process(env, key, holders)
        for name, r in local.items():
            print(f"  in-process {name:42s} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms")
        r = over_http(env, key, holders, seconds, workers, clients, conns)
        print(f"  HTTP ({workers} uvicorn workers, {clients}x{conns} keep-alive connections): "
              f"{r['per_second']:,} lookups/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
              f"{r['requests']:,} requests, {r['errors']} non-200; "
              f"CPU per 1000 requests: server {r['server_cpu_s_per_1000']} s, "
              + (f"PostgreSQL {r['postgres_cpu_s_per_1000']} s, " if backend == "postgresql" else "")
              + f"client {r['client_cpu_s_per_1000']} s")
        http_met = r["per_second"] >= 1000 and r["p99_ms"] < 50 and r["errors"] == 0
        lookup, alone = local[GROUPED]["p99_ms"], local[DURABLE]["p99_ms"]
        print(f"  target: HTTP >= 1,000 lookups/s at p99 < 50 ms: {'met' if http_met else 'MISSED'}; "
              f"in-process lookup p99 < 1 ms: {lookup:.3f} ms {'met' if lookup < 1 else 'MISSED'} "
              f"(its audit entry group-committed, as the API does; committing it alone: {alone:.3f} ms)")
        results[backend] = {"http": r, "in_process_p99_ms": round(lookup, 3),
                            "in_process_durable_p99_ms": round(alone, 3), "target_met": http_met and lookup < 1}
    print(json.dumps(results))
    return 0
