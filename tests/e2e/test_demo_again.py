"""`./run demo` twice in one home: both runs exit 0 and the second, over unchanged silos,
publishes nothing new (every source "unchanged" with the first run's counts and version).
The first run says each source as it finishes, not all at the end, when its output is a pipe;
its silo connections are left in Airflow's metadata database, for `./run serve`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.conftest import ROOT, TEST_PASSPHRASE, free_port, reachable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
LINE = re.compile(r"^(?P<source>\w+) \((?P<silo>\w+)\): (?P<state>\w+)")


def _demo(env: dict) -> tuple[int, dict | None, list[tuple[float, str]], str]:
    """Run the demo with its output on pipes; (exit code, summary, timed stderr lines, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", "demo", "--rows", "2000", "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend(
        (time.monotonic(), line) for line in iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    out = proc.stdout.read()
    code = proc.wait(timeout=1200)
    reader.join(10)
    summary = json.loads(out) if code == 0 else None
    return code, summary, lines, "".join(line for _, line in lines)


def _airflow_connection_ids(env: dict) -> set[str]:
    """conn_ids stored in Airflow's metadata database (no AIRFLOW_CONN_* in the environment),
    their passwords encrypted with the home's fernet key."""
    code = ("import json\nfrom base.airflow_env import use_fernet_key\nuse_fernet_key()\n"
            "from airflow.models import Connection\nfrom airflow.utils.session import create_session\n"
            "with create_session() as s:\n    print(json.dumps([[c.conn_id, c.is_encrypted, c._password is not None] "
            "for c in s.query(Connection)]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    with_secret = [(conn_id, encrypted) for conn_id, encrypted, has_secret in found if has_secret]
    assert with_secret and all(encrypted for _, encrypted in with_secret), f"secrets stored in clear: {found}"
    return {conn_id for conn_id, _, _ in found}


def _counts(summary: dict) -> dict:
    return {s["source"]: (s["silo"], s["extracted"], s["accepted"], s["quarantined"], s["version"])
            for s in summary["sources"]}


def test_the_demo_runs_twice_and_the_second_run_publishes_nothing_new(home, tmp_path):
    from demo.departments import MARIADB, PG
    from demo.sql_silos import drop_database

    missing = [u for u in (PG, MARIADB) if not reachable(u)]
    if missing:
        pytest.skip(f"database servers not reachable on this machine: {missing}")
    prefix = f"t_again_{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update({"EXCHANGE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
                "EXCHANGE_KEY_PASSPHRASE": TEST_PASSPHRASE, "EXCHANGE_DEMO_DB_PREFIX": prefix,
                "EXCHANGE_DEMO_API_PORT": str(free_port())})
    try:
        code, first, lines, err = _demo(env)
        assert code == 0, err[-3000:]
        sources = [s["source"] for s in first["sources"]]
        assert len(sources) == 6 and first["notes"] == []
        assert all(s["state"] == "published" and s["version"] == 1 for s in first["sources"])

        # one line per source as it finishes, flushed: they arrive apart, not all at the end
        said = [(t, m) for t, line in lines if (m := LINE.match(line))]
        assert [m["source"] for _, m in said] == sources, err[-3000:]
        assert all(m["state"] == "published" for _, m in said)
        assert said[-1][0] - said[0][0] > 10, "the sources' lines came all at once"

        # the silos' connections outlive the demo: in Airflow's metadata database
        conn_ids = {c for p in (home / "sources").glob("*.toml")
                    for c in re.findall(r'^conn_id = "(\w+)"', p.read_text("utf-8"), re.M)}
        assert len(conn_ids) == 3, conn_ids        # PostgreSQL, MariaDB, the HTTP API
        assert conn_ids <= _airflow_connection_ids(env)

        # one objection (disputed while open, upheld by the steward) and its outcome as a signed notice
        told = first["objection_and_notice"]
        assert told["disputed_while_open"] is True and told["objection"]["state"] == "upheld"
        assert told["notice"]["type"] == "cn.gov.exchange.objection.upheld" and told["notice"]["verified"] is True

        code, second, lines, err = _demo(env)
        assert code == 0, err[-3000:]
        again = second["objection_and_notice"]         # the same objection and notice, not a second of each
        assert again["objection"] == told["objection"] and again["notice"]["seq"] == told["notice"]["seq"]
        assert _counts(second) == _counts(first)
        assert {s["source"]: s["state"] for s in second["sources"]} == dict.fromkeys(sources, "unchanged")
        assert [m["state"] for _, line in lines if (m := LINE.match(line))] == ["unchanged"] * 6
        for k in ("dataset", "version", "records", "root_hash", "extracted", "accepted", "quarantined"):
            assert second[k] == first[k], k
        assert second["sample_bundle_verified"] is True
        assert not list((home / "drops").glob("*/rejected/*")), "the demo delivered a file twice"
    finally:
        for server, kind in ((PG, "transport"), (MARIADB, "culture_tourism")):
            try:
                drop_database(server, f"{prefix}_{kind}")
            except Exception:
                pass
