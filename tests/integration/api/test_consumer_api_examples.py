"""docs/consumer-api.md's "Try it" examples, copied from the page and run as they stand (bash,
curl, exchange-verify) against a real `exchange serve` on a published catalogue."""
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
from rdflib import RDF, Graph, Namespace, URIRef

from tests.conftest import ROOT, free_port, wait_until_serving

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DATASET = "business_licence.market_regulation"
PURPOSE = "DJ-SCJG-0003"


def _blocks() -> list[str]:
    page = (ROOT / "docs" / "consumer-api.md").read_text(encoding="utf-8")
    section = page.split("## Try it", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the examples use curl")
def test_the_try_it_examples_run_as_written(published, tmp_path):
    from api.app import create_app

    consumer = create_app(published).state.consumer
    access = consumer.access
    access.add_department("curl-examples", "Department trying the examples")
    access.add_grant("curl-examples", DATASET, [PURPOSE], None)
    key = access.issue_credential("curl-examples")["key"]
    with consumer.engine.connect() as c:
        record, holder = c.execute(sa.text("select record_id, holder_key from records where status='valid' "
                                           "order by leaf_index limit 1")).one()
    blocks = _blocks()
    assert len(blocks) == 6 and "EXCHANGE_URL=" in blocks[0] and "EXCHANGE_KEY=" in blocks[0]
    port = free_port()
    env = {**os.environ, "EXCHANGE_HOME": str(published.home), "EXCHANGE_CATALOG_URL": published.catalog_url,
           "EXCHANGE_SOURCES_DIR": str(published.sources_dir)}
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], cwd=ROOT, env=env)
    shell = {**os.environ, "EXCHANGE_URL": f"http://127.0.0.1:{port}", "EXCHANGE_KEY": key,
             "HOLDER": holder, "RECORD": record,
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(block: str, key: bool = True) -> str:
        """`key=False`: a public example, run with no key set (bash -u fails on $EXCHANGE_KEY)."""
        env = shell if key else {k: v for k, v in shell.items() if k != "EXCHANGE_KEY"}
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (block, r.stdout[-2000:], r.stderr[-2000:])
        return r.stdout

    try:
        wait_until_serving(server, port)
        items = json.loads(run(blocks[1], key=False))
        assert PURPOSE in {i["code"] for i in items}
        run(blocks[2], key=False)                  # a portal harvesting the catalogue
        harvested = Graph().parse(tmp_path / "catalogue.jsonld", format="json-ld")
        dataset = URIRef(f"http://127.0.0.1:{port}/v1/datasets#{DATASET}")
        assert (None, DCAT.dataset, dataset) in harvested and (dataset, RDF.type, DCAT.Dataset) in harvested
        assert DATASET in {d["dataset"] for d in json.loads(run(blocks[3]))}
        out = run(blocks[4])
        assert json.loads((tmp_path / "bundle.json").read_text())["record"]["record_id"] == record
        assert holder in out and record in out
        refused = json.loads(run(blocks[5]))
        assert refused["status"] == 400 and refused["type"] == "urn:exchange:problem:InvalidRequest"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
