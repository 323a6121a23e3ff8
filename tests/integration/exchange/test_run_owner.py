"""No run stays "running" after its process is gone: a run started by `exchange run` or
`exchange approve` records its owner (host, pid, process start); `exchange status`, `runs` and
the next start of that source mark it failed once the owner is gone (killed, or its pid reused)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from cli import main as cli
from tests.conftest import ROOT, ledger, register_demo_source

SOURCE = "smr_business_licence"


def _state(key: str) -> tuple[str, str | None]:
    run = ledger().get_run(SOURCE, key)
    return run.state, run.message


def test_a_sigkilled_exchange_run_is_marked_failed(home, silo_2k, capsys):
    register_demo_source(home, silo_2k[0])
    proc = subprocess.Popen([sys.executable, "-m", "cli", "run", SOURCE, "--local", "--key", "k1"],
                            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:            # until the run is recorded, still at work
            runs = [r for r in ledger().runs(SOURCE) if r["run_key"] == "k1"]
            if runs and runs[0]["state"] == "running":
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            raise AssertionError("the run never showed as running")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert _state("k1")[0] == "running"                 # nobody has looked yet

    capsys.readouterr()
    assert cli(["status", "--json", "--source", SOURCE]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["result"] == "failed"
    state, message = _state("k1")
    assert state == "failed"
    assert f"pid {proc.pid} on {socket.gethostname()}" in message and "exchange run" in message
    assert cli(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "failed"


def test_the_next_start_of_the_source_fails_a_run_whose_process_is_gone(home, silo_2k):
    register_demo_source(home, silo_2k[0])
    code = ("import os\nfrom catalog.ledger import run_owner\n"
            "from base.settings import get_settings\nfrom catalog.service import Catalog\n"
            "from catalog.ledger.service import Ledger\nfrom exchange.listing import source_listing\n"
            "from catalog import registrations\n"
            "s = get_settings()\nc = Catalog(s.catalog_url, s.store)\n"
            f"c.register(source_listing(registrations.get(s.catalog_url, {SOURCE!r})))\n"
            f"with run_owner.owning():\n    Ledger(s.catalog_url).start_run({SOURCE!r}, 'gone')\n"
            "os._exit(0)\n")                             # exits without finishing the run
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), check=True)
    assert _state("gone")[0] == "running"
    ledger().start_run(SOURCE, "airflow-run")           # the source starts again (an Airflow task)
    state, message = _state("gone")
    assert state == "failed" and "is gone" in message
    assert cli(["runs", "--json"]) == 0
    assert _state("airflow-run")[0] == "running"         # no owner here: Airflow's callback answers for it


def test_a_live_owner_is_left_alone_and_a_reused_pid_is_not(home):
    from catalog.ledger import run_owner

    me = run_owner.this_process()
    assert run_owner.gone(me) is False
    assert run_owner.gone({**me, "start": me["start"] + "0"}) is True     # the pid now runs another process
    assert run_owner.gone({**me, "host": me["host"] + ".elsewhere"}) is None   # cannot tell from here
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert run_owner.gone({**me, "pid": child.pid}) is True
