"""The [run] table of a registration: partitions or partition_rows, checked against the
connector it splits, each refusal naming the file and the key."""
from __future__ import annotations

import pytest

from base.errors import ConfigError
from registration.partitioning import parse_run

SQL = {"kind": "sql", "url": "sqlite:///x.db", "table": "t", "key": "ID"}
HTTP = {"kind": "http", "url": "http://127.0.0.1:1", "fields": ["a"], "total": "total"}
FILES = {"kind": "files", "path": "drop"}


def test_no_run_table_is_no_split():
    assert parse_run({}, SQL, "r.toml") == {}
    assert parse_run({"partitions": 1}, {"kind": "sql", "table": "t"}, "r.toml") == {"partitions": 1}


@pytest.mark.parametrize("run,connector,says", [
    ({"partitions": "4"}, SQL, "r.toml: run.partitions must be an integer, not a string ('4')"),
    ({"partitions": 0}, SQL, "r.toml: run.partitions must be between 1 and 256, not 0"),
    ({"partition_rows": 0}, SQL, "r.toml: run.partition_rows must be between 1"),
    ({"partitions": 2, "partition_rows": 10}, SQL, "give one of them, not both"),
    ({"parts": 2}, SQL, "r.toml: unknown keys in run ['parts']"),
    ({"partitions": 4}, {**SQL, "watermark": "GXSJ"}, "r.toml: run.partitions: an incremental source"),
    ({"partition_rows": 9}, {**FILES, "mode": "delta", "key": "ID"}, "r.toml: run.partition_rows: an incremental"),
    ({"partitions": 4}, {**SQL, "key": None}, "r.toml: run.partitions: a split sql silo needs connector.key"),
    ({"partitions": 4}, {**HTTP, "pagination": "cursor"}, "cannot be split"),
    ({"partitions": 4}, {**HTTP, "total": None}, "needs connector.total"),
    ({"partition_rows": 100}, FILES, "r.toml: run.partition_rows: a file drop is split by file"),
])
def test_refusals_name_the_file_and_the_key(run, connector, says):
    with pytest.raises(ConfigError) as err:
        parse_run(run, {k: v for k, v in connector.items() if v is not None}, "r.toml")
    assert says in str(err.value)


def test_a_registration_file_with_a_run_table(home, tmp_path):
    import registration
    from tests.conftest import ROOT

    text = (ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")
    text = text.replace("{silo}", str(tmp_path / "silo.db"))
    path = tmp_path / "split.toml"
    path.write_text(text.replace('table = "yyzz_djxx"', 'table = "yyzz_djxx"\nkey = "ID"')
                    + "\n[run]\npartitions = 4\n", encoding="utf-8")
    reg = registration.load(path)
    assert reg.run == {"partitions": 4} and reg.partitioned
    path.write_text(text + "\n[run]\npartitions = 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"split\.toml: run\.partitions: a split sql silo needs connector\.key"):
        registration.load(path)
    path.write_text(text, encoding="utf-8")
    assert not registration.load(path).partitioned
