"""File drops: encodings declared or detected, XLSX and JSON Lines, each file taken once,
truncated or undecodable files rejected with a reason, and the pipeline around them."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from base.errors import DataError
from connectors.files import FileDropConnector
from demo.synth import business_licences
from exchange import stages
from registration.connector import FileDropSettings
from tests.conftest import TODAY, catalog, register_source

pytestmark = pytest.mark.integration
TRAD = "臺灣新竹縣張偉貿易有限公司"


@pytest.fixture(scope="module")
def table() -> pa.Table:
    t = business_licences(400, seed=9, today=TODAY, defect_rate=0.0, cosmetic_rate=0.0)[0]
    names = t.column("QYMC").to_pylist()
    names[0] = TRAD
    return t.set_column(t.column_names.index("QYMC"), "QYMC", pa.array(names))


def write_csv(t: pa.Table, path: Path, encoding: str = "utf-8") -> Path:
    from demo.drops import write_csv as export
    return export(t, path, encoding)


def _pull(drop: Path, **kw) -> tuple[FileDropConnector, pa.Table]:
    conn = FileDropConnector(FileDropSettings(path=str(drop), **kw), "drop")
    return conn, pa.Table.from_batches(list(conn.batches()))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
@pytest.mark.parametrize("declared", [True, False])
def test_csv_in_every_encoding_declared_or_detected(tmp_path, table, encoding, declared):
    write_csv(table, tmp_path / "export.csv", encoding)
    conn, got = _pull(tmp_path, encoding=encoding if declared else None)
    assert got.num_rows == 400
    assert got.column("QYMC")[0].as_py() == TRAD, "traditional characters survive GBK"
    assert got.column("QYMC").to_pylist() == table.column("QYMC").to_pylist()
    assert got.column("ID").to_pylist()[:3] == ["1", "2", "3"]
    assert [c.name for c in conn.claims] == ["export.csv"]


def test_xlsx_export_is_read_as_text(tmp_path, table):
    from demo.drops import write_xlsx

    write_xlsx(table, tmp_path / "export.xlsx")
    _, got = _pull(tmp_path)
    assert got.num_rows == 400 and got.column("QYMC")[0].as_py() == TRAD
    assert got.column("ID").to_pylist()[:2] == ["1", "2"], "whole numbers lose Excel's .0"
    assert got.column("FZRQ").to_pylist() == table.column("FZRQ").to_pylist()


def test_json_lines_and_a_truncated_last_line(tmp_path, table):
    lines = [json.dumps(r, ensure_ascii=False) for r in table.slice(0, 50).to_pylist()]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, got = _pull(tmp_path)
    assert got.num_rows == 50 and got.column("ID")[49].as_py() == "50"
    (tmp_path / "a.jsonl").write_text("\n".join(lines)[:-30], encoding="utf-8")
    with pytest.raises(DataError, match="line 50 is not valid JSON.*truncated"):
        _pull(tmp_path)
    assert (tmp_path / "rejected" / "a.jsonl").exists()


@pytest.mark.parametrize("cut", ["mid_row", "mid_character", "checksum"])
def test_a_truncated_csv_is_rejected_with_its_reason(tmp_path, table, cut):
    data = write_csv(table, tmp_path / "x.csv", "gbk").read_bytes()
    if cut == "mid_row":
        data = data[: data.rindex(b"\n", 0, len(data) // 2) + 40]
    elif cut == "mid_character":
        data = data[: data.index("臺".encode("gbk")) + 1]
    else:
        import hashlib
        (tmp_path / "x.csv.sha256").write_text(hashlib.sha256(data).hexdigest() + "  x.csv\n")
        data = data[: data.rindex(b"\n", 0, len(data) - 5) + 1]   # cut at a line end
    (tmp_path / "x.csv").write_bytes(data)
    with pytest.raises(DataError, match=r"source drop.*file x.csv was rejected: .*(truncated|cut short)"):
        _pull(tmp_path)
    assert not (tmp_path / "x.csv").exists()
    reason = (tmp_path / "rejected" / "x.csv.reason.txt").read_text("utf-8")
    assert "x.csv" in reason and ("truncated" in reason or "cut short" in reason)


def test_a_wrongly_declared_encoding_is_rejected(tmp_path, table):
    write_csv(table, tmp_path / "x.csv", "gbk")
    with pytest.raises(DataError, match="is not valid utf-8; declare the file's real encoding"):
        _pull(tmp_path, encoding="utf-8")


def _drop_source(home, drop: Path, **kw):
    register_source(home, "drop_silo", {"kind": "files", "path": str(drop), **kw},
                    department="civil_affairs")


def test_each_file_is_taken_once_and_moved_after_publish(home, tmp_path, table):
    drop = tmp_path / "drop"
    drop.mkdir()
    _drop_source(home, drop)
    write_csv(table, drop / "day1.csv", "gb18030")
    first = stages.run_all("drop_silo", "r1", TODAY)
    assert first["state"] == "published" and first["tree_size"] == 400
    assert (drop / "processed" / "day1.csv").exists() and not (drop / "day1.csv").exists()
    with catalog().engine.connect() as c:
        assert c.scalar(sa.text("select name from taken_files")) == "day1.csv"
    # nothing new: the last snapshot stands, nothing is withdrawn
    assert stages.run_all("drop_silo", "r2", TODAY)["state"] == "unchanged"
    # the same content dropped again is refused
    write_csv(table, drop / "again.csv", "gb18030")
    with pytest.raises(DataError, match="already taken"):
        stages.run_all("drop_silo", "r3", TODAY)
    assert (drop / "rejected" / "again.csv.reason.txt").exists()
    assert stages.run_all("drop_silo", "r3", TODAY)["state"] == "unchanged"


def test_a_truncated_drop_fails_the_run_and_the_redropped_file_completes(home, tmp_path, table):
    drop = tmp_path / "drop"
    drop.mkdir()
    _drop_source(home, drop)
    good = write_csv(table, tmp_path / "good.csv", "gbk").read_bytes()
    (drop / "export.csv").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="file export.csv was rejected"):
        stages.run_all("drop_silo", "r1", TODAY)
    assert catalog().datasets()[0]["version"] is None
    (drop / "export.csv").write_bytes(good)           # the department drops it again, whole
    result = stages.run_all("drop_silo", "r1", TODAY)
    assert result["state"] == "published" and result["tree_size"] == 400
    assert (drop / "rejected" / "export.csv").exists() and (drop / "processed" / "export.csv").exists()
