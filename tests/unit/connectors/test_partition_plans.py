"""Partition plans per connector kind (connectors/partitions.py): SQL key ranges by NTILE on a
real SQLite silo, HTTP page ranges from a real API's record count, file drops by whole files;
an empty silo, fewer rows than partitions, uneven ranges, equal keys and NULL keys."""
from __future__ import annotations

import json
import sqlite3

import pyarrow as pa
import pytest

import connectors
from connectors.partitions import WHOLE, plan, plan_files, plan_pages, split_evenly, wanted
from demo.silo_server import SiloServer


def _silo(path, keys) -> str:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (ID INTEGER, NAME TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(k, f"n{i}") for i, k in enumerate(keys)])
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def _sql(url: str, part=None, **kw):
    return connectors.build({"kind": "sql", "url": url, "table": "t", "key": "ID", **kw}, "t", part=part)


def _pull(conn) -> list[tuple]:
    table = pa.Table.from_batches(list(conn.batches()))
    return list(zip(table.column("ID").to_pylist(), table.column("NAME").to_pylist()))


def test_counts_and_even_splits():
    assert wanted({"partitions": 4}, 1_000) == 4 and wanted({"partitions": 4}, 3) == 3
    assert wanted({"partition_rows": 250}, 1_001) == 5 and wanted({"partition_rows": 250}, 0) == 1
    assert wanted({"partition_rows": 1}, 10**6) == 256, "at most 256 partitions"
    assert split_evenly(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    parts = plan_pages(1_001, 100, {"partitions": 4})
    assert json.loads(json.dumps(parts)) == parts, "a plan travels by XCom"


def test_http_pages_uneven_ranges_and_small_totals():
    parts = plan_pages(1_001, 100, {"partitions": 4})           # 11 pages: 3 + 3 + 3 + 2
    assert [(p["first"], p["last"]) for p in parts] == [(1, 3), (4, 6), (7, 9), (10, None)]
    assert [(p["index"], p["of"]) for p in parts] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert plan_pages(0, 100, {"partitions": 4}) == [WHOLE], "an empty silo: one partition"
    assert plan_pages(150, 100, {"partitions": 4}) == plan_pages(150, 100, {"partitions": 2})
    assert len(plan_pages(150, 100, {"partitions": 4})) == 2, "no more partitions than pages"


def test_http_plan_and_pulls_from_a_real_api():
    rows = [{"ZCH": f"L{i:04d}", "QYMC": f"企业{i}"} for i in range(1, 1_002)]
    with SiloServer(rows) as silo:
        cfg = {"kind": "http", "url": silo.url, "path": "/licences", "fields": ["ZCH", "QYMC"],
               "page_size": 100, "total": "total"}
        parts = plan(connectors.build(cfg, "t"), {"partitions": 4})
        assert len(parts) == 4 and json.loads(json.dumps(parts)) == parts
        pulled = []
        for p in parts:
            conn = connectors.build(cfg, "t", part=p)
            pulled.append([r for b in conn.batches() for r in b.column("ZCH").to_pylist()])
        assert [len(p) for p in pulled] == [300, 300, 300, 101]
        assert [r for p in pulled for r in p] == [r["ZCH"] for r in rows], "every record once, in order"
        bad = {**cfg, "total": "count"}
        with pytest.raises(Exception, match="has no record count 'count'"):
            plan(connectors.build(bad, "t"), {"partitions": 4})


def test_file_drops_split_by_whole_files(home, tmp_path):
    assert plan_files([], {"partitions": 4}) == [WHOLE]
    assert plan_files(["a.csv"], {"partitions": 4}) == [WHOLE]
    parts = plan_files(["c.csv", "a.csv", "e.csv", "b.csv", "d.csv"], {"partitions": 2})
    assert [p["files"] for p in parts] == [["a.csv", "b.csv", "c.csv"], ["d.csv", "e.csv"]]
    assert len(plan_files(["a.csv", "b.csv"], {"partitions": 4})) == 2, "fewer files than partitions"
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("x.csv", "y.csv", "z.csv"):
        (drop / name).write_text(f"ID,NAME\n{name[0]},n\n", encoding="utf-8")
    cfg = {"kind": "files", "path": str(drop), "pattern": "*.csv"}
    parts = plan(connectors.build(cfg, "t"), {"partitions": 3})
    got = [[r for b in connectors.build(cfg, "t", part=p).batches() for r in b.column("ID").to_pylist()]
           for p in parts]
    assert got == [["x"], ["y"], ["z"]]
    (drop / "y.csv").unlink()
    with pytest.raises(Exception, match="y.csv planned for partition 2 of 3 is no longer in the drop"):
        list(connectors.build(cfg, "t", part=parts[1]).batches())


@pytest.mark.parametrize("adbc", [True, False])
def test_sql_key_ranges_hold_every_row_once_with_nulls_in_the_last(home, tmp_path, adbc):
    keys = [7, 3, None, 10, 1, 2, None, 9, 8, 4, 6, 5, 11]
    url = _silo(tmp_path / "silo.db", keys)
    parts = plan(_sql(url), {"partitions": 4})
    assert [(p["after"], p["upto"], p["nulls"]) for p in parts] == [
        (None, "3", False), ("3", "6", False), ("6", "9", False), ("9", None, True)]
    pulls = [_pull(_sql(url, p, adbc=adbc)) for p in parts]
    assert [sorted(k for k, _ in p if k) for p in pulls] == [
        ["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["10", "11"]], "numeric order, not text"
    assert sum(k is None for k, _ in pulls[-1]) == 2, "rows without a key come with the last partition"
    assert sorted(map(str, (r for p in pulls for r in p))) == sorted(map(str, _pull(_sql(url, adbc=adbc))))


def test_sql_equal_keys_never_straddle_and_tiny_or_empty_silos(home, tmp_path):
    url = _silo(tmp_path / "same.db", [1, 1, 1, 1, 1, 1, 2, 3])
    parts = plan(_sql(url), {"partitions": 4})
    pulls = [[k for k, _ in _pull(_sql(url, p))] for p in parts]
    assert pulls[0] == ["1"] * 6 and sorted(k for p in pulls[1:] for k in p) == ["2", "3"]
    assert plan(_sql(_silo(tmp_path / "empty.db", [])), {"partitions": 4}) == [WHOLE]
    assert plan(_sql(_silo(tmp_path / "one.db", [5])), {"partitions": 4}) == [WHOLE]
    two = plan(_sql(_silo(tmp_path / "two.db", [5, 6])), {"partitions": 4})
    assert [(p["after"], p["upto"]) for p in two] == [(None, "5"), ("5", None)], "fewer rows than partitions"
    assert plan(_sql(_silo(tmp_path / "nulls.db", [None, None, None])), {"partitions": 4}) == [WHOLE]
    assert plan(_sql(url), {"partitions": 1}) == [WHOLE]
