"""Partition plans on real PostgreSQL and MariaDB servers (and SQLite): NTILE over an integer
key and over a text key (the licence number, planted duplicates and all), each partition pulled
on its own; together they hold every row of the silo exactly once."""
from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
import sqlalchemy as sa

import connectors
from connectors.partitions import plan
from demo.synth import TABLE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sqlite_silo(tmp_path_factory, silo_rows):
    from demo.sql_silos import seed

    url = sa.make_url(f"sqlite:///{tmp_path_factory.mktemp('silo') / 'silo.db'}")
    seed(url, silo_rows[0])
    return url


@pytest.mark.parametrize("silo", ["sqlite_silo", "pg_silo", "maria_silo"])
@pytest.mark.parametrize("key,n", [("ID", 4), ("ZCH", 3)])
def test_partitions_hold_every_row_once(home, request, silo, key, n, silo_rows):
    url = request.getfixturevalue(silo).render_as_string(hide_password=False)
    cfg = {"kind": "sql", "url": url, "table": TABLE, "key": key}
    parts = plan(connectors.build(cfg, "t"), {"partitions": n})
    assert len(parts) == n and [p["index"] for p in parts] == list(range(n))
    pulled = []
    for p in parts:
        table = pa.Table.from_batches(list(connectors.build(cfg, "t", part=p).batches()))
        pulled.append(table.column("ID").to_pylist())
    everything = Counter(i for part in pulled for i in part)
    assert everything == Counter(map(str, silo_rows[0].column("ID").to_pylist())), "each row once"
    sizes = [len(p) for p in pulled]
    assert max(sizes) - min(sizes) <= 2 + 2 * (key == "ZCH"), f"about even ranges: {sizes}"
