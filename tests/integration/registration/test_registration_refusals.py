"""A registration file can't reach outside its room (#14, item 3), end to end: `exchange
register` refuses malicious files with exit 2; a dataset name never writes outside the store; a
drop outside its root is not read; one bad registration hides no other source, and `exchange
status` and the dashboard list the registrations in the catalogue that could not be loaded."""
from __future__ import annotations

import json
import os
import re

import pytest

from cli import main
from exchange.listing import source_listing
from tests.conftest import catalog, dashboard_login, register_demo_source, store_unchecked
from tests.regdocs import doc, to_toml

pytestmark = pytest.mark.integration

MALICIOUS = {
    "id_number": {"id": 5},
    "batch_rows_words": {"connector": {"kind": "sql", "url": "sqlite:///x.db", "table": "t", "batch_rows": "many"}},
    "department_list": {"department": ["x"]},
    "mapping_string": {"mapping": "x"},
    "dataset_escape": {"dataset": "../../../tmp/x"},
    "department_escape": {"department": "../../x"},
    "id_newline": {"id": "smr\n"},
    "drop_escape": {"connector": {"kind": "files", "path": "../elsewhere"}},
    "drop_pattern_escape": {"connector": {"kind": "files", "path": "drop", "pattern": "../../*"}},
    "sqlite_escape": {"connector": {"kind": "sql", "url": "sqlite:///../../catalog.db", "table": "t"}},
    "secret_env": {"connector": {"kind": "http", "url": "http://127.0.0.1:9", "fields": ["a"],
                                 "auth": "bearer", "secret_env": "EXCHANGE_KEY_PASSPHRASE"}},
    "schedule_junk": {"schedule": "whenever"},
    "checks_table": {"checks": {"type": "expect_column_values_to_be_unique"}},
}


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_register_refuses_each_malicious_file_with_exit_2_and_writes_nothing(
        name, home, tmp_path, capsys):
    f = tmp_path / f"{name}.toml"
    f.write_text(to_toml({**doc(), **MALICIOUS[name]}), encoding="utf-8")
    for dry in ([], ["--dry-run"]):
        code = main(["register", str(f), "--json", *dry])
        captured = capsys.readouterr()
        out = json.loads(captured.out)
        assert code == 2, out
        assert out["failed_step"] == 1 and out["error"] in ("ConfigError", "UnknownName")
        assert "\n" not in out["message"] and out["message"].startswith(str(f))
        assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert not home.exists(), "nothing written"


def test_a_dataset_name_never_writes_outside_the_store(home, silo_2k, tmp_path, capsys):
    """Put in the catalogue by hand (not through `exchange register` or `sources sync`, which
    refuse it): the run is refused, and the store writes nothing outside itself."""
    outside = tmp_path / "outside"
    store = home / "store"
    escape = os.path.relpath(outside, store)                 # ../../outside
    reg = register_demo_source(home, silo_2k[0], source_id="smr_ok")
    path = reg.path.with_name("smr_escape.toml")
    path.write_text(reg.path.read_text("utf-8").replace('id = "smr_ok"', 'id = "smr_escape"').replace(
        'department_name = ', f'dataset = "{escape}"\ndepartment_name = '), encoding="utf-8")
    store_unchecked("smr_escape", path.read_text("utf-8"), str(path))
    assert main(["run", "smr_escape", "--local", "--key", "r1", "--json"]) == 2
    err = capsys.readouterr().err
    assert f"dataset '{escape}' is not allowed" in err and err.count("\n") == 1
    assert "registration smr_escape in the catalogue" in err
    assert not outside.exists()
    assert main(["sources", "sync", "--json"]) == 2
    synced = {r["source"]: r for r in json.loads(capsys.readouterr().out)}
    assert synced["smr_ok"]["state"] == "unchanged" and synced["smr_escape"]["state"] == "refused"
    assert f"dataset '{escape}' is not allowed" in synced["smr_escape"]["reason"]
    assert not outside.exists()
    assert main(["register", str(path), "--json"]) == 2
    capsys.readouterr()
    assert not outside.exists()
    # the other source runs, the bad file beside it notwithstanding
    assert main(["run", "smr_ok", "--local", "--key", "r1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "published" and (store / "business_licence.market_regulation" / "v000001").is_dir()
    assert not outside.exists()


def test_a_drop_outside_its_root_is_refused_and_not_read(home, tmp_path, capsys, monkeypatch):
    from datetime import date

    from base.settings import reset_settings
    from demo.drops import write_csv
    from demo.synth import business_licences

    drops, elsewhere = tmp_path / "drops", tmp_path / "elsewhere"
    drops.mkdir()
    elsewhere.mkdir()
    table = business_licences(50, seed=9, today=date(2026, 11, 21), defect_rate=0.0, cosmetic_rate=0.0)[0]
    write_csv(table, elsewhere / "secret.csv", "utf-8")
    monkeypatch.setenv("EXCHANGE_SILO_ROOTS", str(drops))
    monkeypatch.chdir(drops)            # where a relative path used to be read from
    reset_settings()
    for path in ("../elsewhere", str(elsewhere), "ok/../../elsewhere"):
        f = tmp_path / "drop.toml"
        f.write_text(to_toml({**doc(), "id": "ca_drop", "department": "ca_drop",
                              "connector": {"kind": "files", "path": path, "pattern": "*.csv"}}), "utf-8")
        code = main(["register", str(f), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert code == 2 and out["failed_step"] == 1, out
        assert "connector.path" in out["message"] and str(drops) in out["message"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret.csv"], "nothing read or moved"
    assert not (home / "sources").exists()


def test_status_and_dashboard_list_the_registrations_that_could_not_be_loaded(home, silo_2k, capsys,
                                                                            monkeypatch):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from catalog.serving.access import Access

    good = register_demo_source(home, silo_2k[0])
    catalog().register(source_listing(good))
    broken = register_demo_source(home, silo_2k[0], source_id="smr_b")
    catalog().register(source_listing(broken))        # registered; then its stored text no longer parses
    spoilt = broken.path.read_text("utf-8").replace('title = "营业执照', 'title = 5\n#')
    store_unchecked("smr_b", spoilt, str(broken.path))
    sources = good.path.parent
    store_unchecked("smr_typed", to_toml({**doc(), "id": "smr_typed", "batch_rows": 1}),
                    str(sources / "typed.toml"))
    store_unchecked("smr_junk", "id = ", str(sources / "junk.toml"))

    assert main(["status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_file = {r["registration_file"]: r for r in rows}
    assert set(by_file) == {str(sources / n) for n in
                            ("smr_business_licence.toml", "smr_b.toml", "typed.toml", "junk.toml")}
    ok = by_file[str(good.path)]
    assert ok["source"] == "smr_business_licence" and ok["registration_error"] is None
    b = by_file[str(broken.path)]          # in the catalogue's sources: its own row says why
    assert b["source"] == "smr_b" and b["dataset"] == broken.dataset
    assert b["registration_error"].startswith(
        f"registration smr_b in the catalogue (from {broken.path}): title must be a string, not an integer (5)")
    typed = by_file[str(sources / "typed.toml")]
    assert typed["source"] == "smr_typed" and typed["result"] is None and typed["dataset"] is None
    assert "unknown keys ['batch_rows']" in typed["registration_error"]
    junk = by_file[str(sources / "junk.toml")]
    assert junk["source"] == "smr_junk" and "not valid TOML" in junk["registration_error"]
    assert all("\n" not in (r["registration_error"] or "") for r in rows)
    assert main(["status", "--source", "smr_b", "--json"]) == 0
    assert [r["source"] for r in json.loads(capsys.readouterr().out)] == ["smr_b"]
    assert main(["sources", "list", "--json"]) == 0
    listed = {r["source"]: r for r in json.loads(capsys.readouterr().out)}
    assert {k: r["state"] for k, r in listed.items()} == {
        "smr_business_licence": "ok", "smr_b": "not loaded", "smr_typed": "not loaded", "smr_junk": "not loaded"}
    assert listed["smr_business_licence"]["dag_id"] == "source__smr_business_licence"

    monkeypatch.setenv("COLUMNS", "400")          # each reason on one line of the table
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "registrations not loaded" in text
    for name in ("typed.toml", "junk.toml", "smr_b.toml", "title must be a string"):
        assert name in text

    access = Access(catalog().engine, ttl=0)
    access.add_department("audit-office", "审计局", role="auditor")
    key = access.issue_credential("audit-office")["key"]
    with TestClient(create_app()) as client:
        assert dashboard_login(client, key).status_code == 303
        for page in ("/dashboard/", "/dashboard/freshness"):
            html = client.get(page).text
            section = re.search(r'<section id="unloaded-registrations".*?</section>', html, re.S)
            assert section, page
            for name, reason in (("typed.toml", "unknown keys"), ("junk.toml", "not valid TOML"),
                                 ("smr_b.toml", "title must be a string")):
                assert name in section.group(0) and reason in section.group(0), (page, name)
            assert "smr_business_licence.toml" not in section.group(0)


