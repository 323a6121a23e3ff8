"""docs/consumer-api.md's "Objections" examples (curl and Python), copied from the page and run as
they stand against a real `exchange serve` on a catalogue of their own."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, catalog, free_port, register_demo_source, wait_until_serving

pytestmark = [pytest.mark.notices, pytest.mark.integration]


def _section() -> str:
    page = (ROOT / "docs" / "consumer-api.md").read_text(encoding="utf-8")
    return page.split("## Objections (数据异议)", 1)[1].split("\n## ", 1)[0]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the example uses curl")
def test_the_objection_examples_run_as_written(home, silo_2k, tmp_path):
    from exchange import stages
    from exchange.catalogue import open_access

    silo = tmp_path / "silo.db"
    shutil.copy(silo_2k[0], silo)
    register_demo_source(home, silo)
    stages.run_all("smr_business_licence", "r1")
    access = open_access()
    access.add_department("curl-examples", "Department trying the examples")
    key = access.issue_credential("curl-examples")["key"]
    with catalog().engine.connect() as c:
        first, second = c.execute(sa.text("select record_id from records order by leaf_index limit 2")).scalars()
    sh = re.findall(r"```sh\n(.*?)```", _section(), re.S)
    py = re.findall(r"```python\n(.*?)```", _section(), re.S)
    assert len(sh) == 1 and len(py) == 1
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], cwd=ROOT,
                              env={**os.environ, "EXCHANGE_HOME": str(home)})
    env = {**os.environ, "EXCHANGE_URL": f"http://127.0.0.1:{port}", "EXCHANGE_KEY": key,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        wait_until_serving(server, port)
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", sh[0]], env={**env, "RECORD": first},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        filed = json.loads(r.stdout)
        assert (filed["record_id"], filed["state"]) == (first, "open") and filed["due_at"].endswith("+08:00")
        r = subprocess.run([sys.executable, "-c", py[0]], env={**env, "RECORD": second},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        oid, state, due = r.stdout.split()
        assert int(oid) == filed["id"] + 1 and state == "open" and due.endswith("+08:00")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
