"""`exchange register FILE` against real silos: a SQLite database, the HTTP silo server on
127.0.0.1 and a CSV drop. Dry runs and failed steps write nothing; a broken connection is
named; re-registering with another steward records the change."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from cli import main
from demo.silo_server import SiloServer, licence_rows
from demo.synth import COLUMNS, business_licences
from schemas.normalize import code_key_scalar
from tests.conftest import ROOT, TODAY, catalog, toml_value

pytestmark = pytest.mark.integration
TEMPLATE = (ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")
# planted defects whose expectation looks at one row only (uniqueness spans rows)
ROW_RULES = {
    "bad_uscc_check": "expect_column_values_to_be_valid_uscc(holder_code)",
    "blank_holder_name": "expect_column_values_to_not_be_null(holder_name)",
    "validity_inverted": "expect_column_pair_values_a_to_be_greater_than_b(valid_to,valid_from)",
    "bad_date": "expect_column_values_to_be_parsable_dates(issue_date)",
}


def registration(path: Path, source_id: str, connector: dict, **replace) -> Path:
    """The market-regulation sample registration with another id and connector section."""
    head, rest = TEMPLATE.split("[connector]", 1)
    head = head.replace('id = "smr_business_licence"', f'id = "{source_id}"')
    head = head.replace('department = "market_regulation"', f'department = "{source_id}"')
    for old, new in replace.items():
        assert old in head, old
        head = head.replace(old, new)
    conn = "\n".join(f"{k} = {toml_value(v)}" for k, v in connector.items())
    path.write_text(f"{head}[connector]\n{conn}\n\n{rest[rest.index('[mapping]'):]}", encoding="utf-8")
    return path


def register(capsys, *argv) -> tuple[int, dict]:
    code = main(["register", *map(str, argv), "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """Where the sample's temporary staging goes: must be empty again after each command."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def left_in(scratch: Path) -> list[Path]:
    """What the exchange left in the scratch folder (Jinja's bytecode cache, made there when GX
    first renders in this process, is not the exchange's)."""
    return [p for p in scratch.iterdir() if not p.name.startswith("_jinja2-cache")]


def test_sqlite_source_dry_run_writes_nothing_then_registers_and_keeps_history(
        home, silo_2k, tmp_path, capsys, scratch):
    silo, manifest = silo_2k
    f = registration(tmp_path / "smr.toml", "smr_reg", {"kind": "sql", "url": f"sqlite:///{silo}",
                                                        "table": "yyzz_djxx"})
    code, out = register(capsys, f, "--dry-run", "--sample", 300)
    assert code == 0, out
    assert [(s["number"], s["state"]) for s in out["steps"]] == [
        (1, "ok"), (2, "ok"), (3, "ok"), (4, "ok"), (5, "skipped")]
    assert not out["registered"] and not home.exists(), "a dry run writes nothing"
    assert left_in(scratch) == [], "the sample's staging is removed"
    conn = out["steps"][1]["detail"]
    assert conn["table"] == "yyzz_djxx" and "ID" in conn["unmapped_columns"]
    assert out["steps"][2]["detail"] == {"rows": 300, "limit": 300, "stopped_early": True}
    # the first twenty rows, conformed: codes normalised, dates parsed, statuses mapped
    assert [r["_row"] for r in out["preview"]] == list(range(1, 21))
    assert all(r["licence_type_code"] and r["licence_id"] for r in out["preview"])
    assert {r["status"] for r in out["preview"]} <= {"valid", "revoked", "cancelled", "suspended"}
    v = out["validation"]
    assert v["extracted"] == v["accepted"] + v["quarantined"] == 300
    failing = {x["expectation"]: x for x in v["failing"]}
    planted = 0
    for kind, rule in ROW_RULES.items():
        in_sample = [i for i in manifest[kind] if i <= 300]
        planted += len(in_sample)
        assert failing.get(rule, {}).get("rows", 0) == len(in_sample), (kind, failing.get(rule))
        if in_sample:
            assert failing[rule]["example"]["row"] in in_sample
    assert planted > 0 and v["quarantined"] >= planted

    code, out = register(capsys, f, "--sample", 50, "--by", "alice")
    assert code == 0 and out["registered"]
    target = home / "sources" / "smr_reg.toml"
    assert target.read_bytes() == f.read_bytes()
    assert out["steps"][4]["detail"]["action"] == "new"
    assert "business_licence.smr_reg" in [d["dataset"] for d in catalog().datasets()]

    # the steward changes: the file is replaced and the change kept
    f.write_text(f.read_text("utf-8").replace(
        'steward = "市场监管局数据管理员 <steward@smr.example.gov.cn>"', 'steward = "王芳 <wf@smr.example.gov.cn>"'),
        encoding="utf-8")
    code, out = register(capsys, f, "--sample", 20, "--by", "bob")
    assert code == 0 and out["steps"][4]["detail"]["changed"] == ["steward"]
    assert out["steps"][4]["detail"]["action"] == "update"
    assert [p.name for p in (home / "sources").iterdir()] == ["smr_reg.toml"]
    assert "王芳" in target.read_text("utf-8")
    assert main(["dataset", "business_licence.smr_reg", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["steward"] == "王芳 <wf@smr.example.gov.cn>"
    assert len(info["history"]) == 8 and {h["changed_by"] for h in info["history"][:7]} == {"alice"}
    last = info["history"][-1]
    assert (last["field"], last["old_value"], last["new_value"], last["changed_by"], last["source_file"]) == (
        "steward", "市场监管局数据管理员 <steward@smr.example.gov.cn>", "王芳 <wf@smr.example.gov.cn>",
        "bob", str(target))
    assert left_in(scratch) == []


def test_http_source_pulls_only_the_pages_of_the_sample(home, tmp_path, capsys, scratch):
    rows = licence_rows(1_050, seed=3)
    with SiloServer(rows) as silo:
        f = registration(tmp_path / "api.toml", "hrss_api", {
            "kind": "http", "url": silo.url, "path": "/licences", "fields": list(COLUMNS),
            "page_size": 100, "backoff": 0.01})
        code, out = register(capsys, f, "--sample", 250, "--by", "alice")
        assert code == 0, out
        assert out["steps"][1]["detail"]["first_page_records"] == 100
        # one page for the connection test, three for 250 rows: never the whole silo (11 pages)
        assert len(silo.log.requests) == 4
        assert all(status == 200 for *_, status in silo.log.requests)
    assert out["validation"]["extracted"] == 250
    assert [r["licence_number"] for r in out["preview"]] == [code_key_scalar(str(r["ZCH"])) for r in rows[:20]]
    assert (home / "sources" / "hrss_api.toml").is_file()
    assert left_in(scratch) == []


def test_file_drop_source_is_sampled_without_moving_files(home, tmp_path, capsys, scratch):
    from demo.drops import write_csv

    drop = tmp_path / "drop"
    drop.mkdir()
    table = business_licences(400, seed=9, today=TODAY, defect_rate=0.0,
                              cosmetic_rate=0.0)[0]
    write_csv(table, drop / "export.csv", "gbk")
    f = registration(tmp_path / "drop.toml", "ca_drop", {"kind": "files", "path": str(drop),
                                                         "pattern": "*.csv"})
    code, out = register(capsys, f, "--sample", 150)
    assert code == 0, out
    assert out["steps"][1]["detail"]["files"] == ["export.csv"]
    v = out["validation"]
    assert (v["extracted"], v["quarantined"], v["failing"]) == (150, 0, []), "a clean export passes"
    assert out["preview"][0]["holder_name"] == table.column("QYMC")[0].as_py().strip()
    assert sorted(p.name for p in drop.iterdir()) == ["export.csv"], "nothing taken or moved"

    # a file cut short: reported at step 2, naming the file; it is not moved to rejected/
    (drop / "export.csv").write_bytes((drop / "export.csv").read_bytes()[:-1] + b"\xd5")
    registration(f, "ca_drop2", {"kind": "files", "path": str(drop), "pattern": "*.csv",
                                 "encoding": "utf-8"})
    code, out = register(capsys, f, "--dry-run")
    assert code == 4 and out["failed_step"] == 2
    assert "source ca_drop2" in out["message"] and "export.csv" in out["message"]
    assert sorted(p.name for p in drop.iterdir()) == ["export.csv"]
    assert not (home / "sources" / "ca_drop2.toml").exists()


def test_a_broken_connection_is_reported_naming_the_source_and_nothing_is_written(
        home, tmp_path, capsys, scratch):
    f = registration(tmp_path / "gone.toml", "smr_gone", {"kind": "sql", "url": f"sqlite:///{tmp_path}/no.db",
                                                          "table": "yyzz_djxx"})
    code, out = register(capsys, f)
    assert code == 3 and out["failed_step"] == 2 and out["error"] == "SourceError"
    assert "source smr_gone" in out["message"] and "no.db" in out["message"]
    assert [s["state"] for s in out["report"]["steps"]] == ["ok", "failed"]

    with SiloServer([]) as silo:
        url = silo.url                      # a port that nothing listens on once stopped
    f = registration(tmp_path / "down.toml", "hrss_down", {
        "kind": "http", "url": url, "path": "/licences", "fields": list(COLUMNS), "backoff": 0.01})
    code, out = register(capsys, f)
    assert code == 3 and out["failed_step"] == 2
    assert "source hrss_down" in out["message"] and "/licences" in out["message"]

    f = registration(tmp_path / "nodrop.toml", "ca_nodrop", {"kind": "files", "path": str(tmp_path / "absent")})
    code, out = register(capsys, f)
    assert code == 3 and "source ca_nodrop" in out["message"] and "drop folder" in out["message"]
    assert not home.exists() and left_in(scratch) == []


def test_mapped_columns_missing_from_the_silo_are_named(home, silo_2k, tmp_path, capsys):
    f = registration(tmp_path / "smr.toml", "smr_cols", {"kind": "sql", "url": f"sqlite:///{silo_2k[0]}",
                                                         "table": "yyzz_djxx"})
    f.write_text(f.read_text("utf-8").replace('holder_name = "QYMC"', 'holder_name = "QYMC_NEW"'), "utf-8")
    code, out = register(capsys, f)
    assert code == 2 and out["failed_step"] == 2
    assert "'QYMC_NEW'" in out["message"] and "QYMC" in out["message"] and "smr_cols" in out["message"]
    assert not home.exists()


def test_a_catalogue_that_fails_leaves_no_registration_file(home, silo_2k, tmp_path, capsys, monkeypatch):
    from base.settings import reset_settings

    monkeypatch.setenv("EXCHANGE_CATALOG_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    reset_settings()
    f = registration(tmp_path / "smr.toml", "smr_nocat", {"kind": "sql", "url": f"sqlite:///{silo_2k[0]}",
                                                          "table": "yyzz_djxx"})
    code, out = register(capsys, f, "--sample", 20)
    assert code == 1 and out["failed_step"] == 1          # step 1 asks the catalogue about the id
    assert "catalogue could not be read" in out["message"] and "nothing was registered" in out["message"]
    assert not (home / "sources").exists() or list((home / "sources").iterdir()) == []


@pytest.mark.parametrize("silo", ["pg_silo", "maria_silo"])
def test_server_silos_are_sampled_and_the_pull_stopped_early(request, home, tmp_path, capsys, silo):
    """PostgreSQL (ADBC COPY) and MariaDB (unbuffered server-side cursor): the sample stops
    the stream after N rows of 6,000 and leaves the server usable."""
    import sqlalchemy as sa

    url = request.getfixturevalue(silo)
    f = registration(tmp_path / "s.toml", f"smr_{silo}", {
        "kind": "sql", "url": url.render_as_string(hide_password=False), "table": "yyzz_djxx"})
    code, out = register(capsys, f, "--dry-run", "--sample", 120)
    assert code == 0, out
    assert out["steps"][2]["detail"] == {"rows": 120, "limit": 120, "stopped_early": True}
    assert out["validation"]["extracted"] == 120 and len(out["preview"]) == 20
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM yyzz_djxx").scalar() == 6_000
    engine.dispose()
    assert not home.exists()
