"""Every benchmark runs at a tiny size and prints its result line, so that none rots unseen.

Each runs as `./run bench` runs it (`python -m bench NAME`) with 2,000 rows, its cache in this
test's tmp dir (EXCHANGE_BENCH_OUT, never bench/out/ in the repo) and its PostgreSQL databases
under a prefix of its own (EXCHANGE_BENCH_DB_PREFIX), dropped afterwards. The figures mean
nothing at this size; the test checks that each bench completes and says what it measured."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, TEST_PASSPHRASE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
PG = os.environ.get("EXCHANGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NUMBER = r"[\d,]+(?:\.\d+)?"


def _pg_reachable() -> bool:
    engine = sa.create_engine(PG, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as c:
            c.exec_driver_sql("SELECT 1")
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pg() -> bool:
    return _pg_reachable()


@pytest.fixture
def bench(tmp_path, pg):
    prefix = f"t_bench_{uuid.uuid4().hex[:6]}"
    repo_out = ROOT / "bench" / "out"
    before = sorted(repo_out.rglob("*")) if repo_out.exists() else []
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "EXCHANGE_BENCH_OUT": str(tmp_path / "out"), "EXCHANGE_BENCH_DB_PREFIX": prefix,
           "EXCHANGE_BENCH_PG": PG, "TMPDIR": str(tmp_path / "tmp"), "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE}
    env.pop("EXCHANGE_HOME", None)

    def run(*args: str, timeout: float = 600, without: tuple[str, ...] = ()) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT,
                             env={k: v for k, v in env.items() if k not in without},
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"bench {' '.join(args)} exited {out.returncode}:\n{out.stderr[-4000:]}"
        return out.stdout.splitlines()

    yield run
    after = sorted(repo_out.rglob("*")) if repo_out.exists() else []
    if pg:
        engine = sa.create_engine(PG, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with engine.connect() as c:
            for (name,) in c.exec_driver_sql(
                    "select datname from pg_database where datname like %(p)s", {"p": f"{prefix}%"}):
                c.exec_driver_sql(f'drop database if exists "{name}" with (force)')
        engine.dispose()
    assert after == before, "a benchmark wrote into bench/out/ in the repo"


def _backends(pg: bool) -> list[str]:
    return ["--backend", "sqlite", *(["--backend", "postgresql"] if pg else [])]


def _result(lines: list[str]) -> dict:
    """The last line: the bench's figures as JSON (its machine form)."""
    return json.loads(lines[-1])


def _line(lines: list[str], pattern: str) -> re.Match:
    found = [m for line in lines if (m := re.search(pattern, line))]
    assert found, f"no line matching {pattern!r} in:\n" + "\n".join(lines[-30:])
    return found[-1]


def test_bench_path(bench):
    lines = bench("path", "--rows", "2000", "--sample", "500")
    r = _result(lines)
    assert r["rows"] == 2000 and r["project_rows_per_s"] > 0 and r["naive_rows_per_s"] > 0 and r["ratio"] > 0
    assert set(r["stages_rows_per_s"]) == {"extract", "conform", "validate", "publish"}
    _line(lines, rf"ratio whole path / naive baseline: {NUMBER}x .*in CPU time: {NUMBER}x")


def test_bench_extract(bench, pg):
    lines = bench("extract", "--rows", "2000")
    r = _result(lines)
    for name in ("SQLite", *(["PostgreSQL"] if pg else [])):
        assert r[name]["ours_rows_per_s"] > 0 and r[name]["vs_pandas"] > 0, r
        _line(lines, rf"{name}: ours / pandas.read_sql = {NUMBER}x")


def test_bench_validate(bench):
    lines = bench("validate", "--rows", "2000")
    r = _result(lines)
    assert r["rows"] == 2000 and r["project_rows_per_s"] > 0 and r["stock_gx_rows_per_s"] > 0
    assert r["ratio"] > 0 and r["quarantined"] > 0
    _line(lines, rf"ratio: {NUMBER}x wall .*{NUMBER}x in CPU time")


def test_bench_publish(bench):
    lines = bench("publish", "--rows", "2000", "--sample", "500", "--bundles", "50")
    r = _result(lines)
    assert r["rows"] == 2000 and r["publish_rows_per_s"] > 0 and r["baseline_rows_per_s"] > 0
    _line(lines, rf"ratio publish / baseline: {NUMBER}x")
    _line(lines, rf"verify one bundle: median {NUMBER} ms, p99 {NUMBER} ms")


def test_bench_publish_stage(bench, pg):
    lines = bench("publish-stage", "--rows", "2000", "--trials", "1", *_backends(pg))
    r = _result(lines)
    assert len(r) == (2 if pg else 1)
    for v in r.values():
        assert v["wall_min"] > 0 and v["cpu_min"] > 0 and v["tree_size"] > 1000, r
    _line(lines, rf"sqlite .*: publish min of 1: wall {NUMBER} s, cpu {NUMBER} s")


def test_bench_api(bench, pg):
    lines = bench("api", "--rows", "2000", "--seconds", "2", "--conns", "2", *_backends(pg))
    r = _result(lines)
    assert set(r) == {"sqlite", *(["postgresql"] if pg else [])}
    for v in r.values():
        assert v["http"]["per_second"] > 0 and v["http"]["errors"] == 0 and v["http"]["p99_ms"] > 0, r
        assert v["in_process_p99_ms"] > 0, r
    _line(lines, rf"HTTP \(1 uvicorn workers, 1x2 keep-alive connections\): {NUMBER} lookups/s, "
                 rf"p50 {NUMBER} ms, p99 {NUMBER} ms")
    _line(lines, r"target: HTTP >= 1,000 lookups/s at p99 < 50 ms: (met|MISSED)")


def test_bench_scale(bench):
    from bench.cluster import absent_services

    if missing := absent_services():
        pytest.skip("bench scale needs " + " and ".join(missing))
    # Airflow's tier never runs under libfaketime (see ./run): the cluster's processes get the
    # session's today through EXCHANGE_TODAY only, as the e2e pass does
    lines = bench("scale", "--rows", "2000", timeout=900, without=("LD_PRELOAD", "FAKETIME"))
    r = _result(lines)
    assert set(r["ways"]) == {"1w-file", "2w-file", "1w-s3"}
    one = r["ways"]["1w-file"]                 # one worker on file:// works on main today
    assert one["state"] == "success" and one["seconds"] > 0, one
    assert {t["worker"] for t in one["tasks"].values()} == {"w1"} and one["peak_mb"]["w1"]["tree"] > 0, one
    for name, way in r["ways"].items():        # the others: measured, or their failure named
        line = _line(lines, rf"^{name}: (success|failed) in {NUMBER} s")
        assert line.group(1) == way["state"]
        assert way["state"] == "success" or way["errors"], way
    _line(lines, r"^ratio two workers / one \(speed-up\): ")


def test_bench_incremental(bench):
    lines = bench("incremental", "--rows", "2000", timeout=300)
    r = _result(lines)
    assert {"rows", "full_s", "one_percent_s", "tenth_percent_s", "zero_percent_s", "ratio_one_percent",
            "ratio_one_percent_with_imports", "bytes_per_changed_record", "record_parquet_bytes",
            "peak_rss_mb_1m"} <= set(r)
    assert r["rows"] == 2000 and r["full_s"] > 0 and r["record_parquet_bytes"] > 0
    full, one, tenth, zero = (r["runs"][k] for k in ("full", "one_percent", "tenth_percent", "zero_percent"))
    # the full run published every accepted row (the silo's defects quarantined, ~5 %)
    assert full["state"] == "published" and 1800 < full["accepted"] < 2000
    assert full["appended"] == full["accepted"] == full["changes"]["new"]
    # 1 %: 20 addresses changed; each appends one state unless its row is quarantined
    assert one["changed"] == 20 and 15 <= one["appended"] <= 20 and one["changes"]["changed"] == one["appended"]
    added = one["store"] + one["catalogue"]
    assert one["store"] > 0 and r["bytes_per_changed_record"] == round(added / one["appended"], 1)
    assert tenth["changed"] == 2 and tenth["appended"] <= 2
    # 0 %: nothing appended, nothing added to the store or the catalogue
    assert zero["changed"] == 0 and zero["appended"] == 0 and zero["state"] == "unchanged"
    assert zero["store"] < 1024 and zero["catalogue"] < 64 * 1024
    _line(lines, rf"target ratio 1 % run / full run <= 0.10 \(imports apart\): {NUMBER} \((met|MISSED)\)")
    _line(lines, rf"target bytes per changed record <= 2x one record in Parquet \({NUMBER} B\): {NUMBER} B")


def test_bench_delta_publish(bench):
    lines = bench("delta-publish", "--rows", "2000", timeout=300)
    r = json.loads(lines[-1])          # the two builds were checked equal before it printed
    assert r["licences_changed"] >= 1 and r["appended"] >= 1 and r["publish_s"] > 0
    assert 0 < r["delta_rows_read"] < r["records"]


def test_bench_notices(bench):
    lines = bench("notices", "--rows", "2000", "--changed", "100", "--subscribers", "3", timeout=300)
    r = _result(lines)
    # every notice owed reached the receiver (in its own process) exactly once
    assert r["subscribers"] == 3 and r["notices"] == 3 * r["records_with_notices"] > 0
    assert r["received"] == r["distinct_received"] == r["notices"]
    assert r["signatures_verified"] == -(-r["notices"] // 1000) >= 1
    assert r["deliver_s"] > 0 and r["notices_per_s"] > 0 and r["publish_to_last_delivery_s"] > 0
    _line(lines, rf"^\s+notices_per_s: {NUMBER}$")


def test_bench_help_names_every_benchmark():
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "incremental: runs with 1 %, 0.1 % and 0 % changed" in " ".join(out.stdout.split())


@pytest.mark.federation
def test_bench_federation(bench):
    lines = bench("federation", "--rows", "2000", timeout=600)
    r = _result(lines)
    first, changed = r["first"], r["changed"]
    assert r["rows"] == 2000 and r["versions"] == 2 == changed["version"] and first["version"] == 1
    # the first sync verified every record the origin published (the silo's defects quarantined, ~5 %)
    assert first["records"] == first["origin_records"] == first["origin_tree_size"] and 1800 < first["records"] < 2000
    # the 1 %-changed version: 20 addresses changed; the sync verified the states it appended
    assert r["records_changed_at_source"] == 20
    assert changed["records"] == changed["origin_appended"] == changed["origin_tree_size"] - first["origin_tree_size"]
    assert 15 <= changed["records"] <= 20
    for f in (first, changed):
        assert f["sync_s"] > 0 and f["bytes"] > 0 and f["records_per_s"] > 0 and f["bytes_per_record"] > 0, f
        assert f["origin_publish_s"] > 0 and f["origin_run_s"] >= f["origin_publish_s"], f
        assert f["ratio_publish_stage"] > 0 and f["ratio_whole_run"] > 0, f
    assert first["bytes"] > changed["bytes"]
    for k in ("first_ratio_publish_stage", "first_ratio_whole_run", "changed_ratio_publish_stage",
              "changed_ratio_whole_run"):
        assert r[k] > 0, k
    _line(lines, rf"^changed version 2: origin publish stage {NUMBER} s, .*ratio mirror / publish stage {NUMBER}x")
