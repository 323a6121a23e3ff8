"""exchange register, step 1 (the file) and where a registration goes; the catalogue's
metadata history. Silos, samples and validation: tests/integration/exchange/test_register.py."""
from __future__ import annotations

import json

import pytest

from base.errors import ConfigError
from cli import main
from exchange import registering
from exchange.listing import source_listing
from tests.conftest import ROOT

TEMPLATE = (ROOT / "demo" / "registrations" / "smr_business_licence.toml").read_text("utf-8")


def reg_file(path, silo="nowhere/silo.db", **replace):     # under the silo roots
    text = TEMPLATE.replace("{silo}", str(silo))
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


def run_json(capsys, *argv) -> tuple[int, dict]:
    code = main(["register", *map(str, argv), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_unknown_key_is_refused_with_the_known_keys_and_nothing_is_written(home, tmp_path, capsys):
    f = reg_file(tmp_path / "r.toml", **{'sharing = "unconditional"': 'sharing = "unconditional"\ncolour = "blue"'})
    code, out = run_json(capsys, f)
    assert code == 2
    assert out["failed_step"] == 1 and out["error"] == "ConfigError"
    assert "colour" in out["message"]
    for known in ("certificate_type", "steward", "update_cycle", "mapping"):
        assert known in out["message"]
    assert out["report"]["steps"] == [{"number": 1, "name": "file valid", "state": "failed",
                                       "summary": out["message"], "detail": {}}]
    assert not home.exists()


def test_unknown_certificate_type_is_refused_with_the_known_types(home, tmp_path, capsys):
    f = reg_file(tmp_path / "r.toml",
                 **{'certificate_type = "business_licence"': 'certificate_type = "fishing_permit"'})
    code, out = run_json(capsys, f)
    assert code == 2 and out["error"] == "UnknownName" and out["failed_step"] == 1
    assert "'fishing_permit'" in out["message"]
    for known in ("business_licence", "diploma", "marriage_certificate", "real_estate_title"):
        assert known in out["message"]
    assert not home.exists()


def test_unknown_connector_key_and_kind_are_refused_in_step_one(home, tmp_path, capsys):
    f = reg_file(tmp_path / "r.toml", **{'table = "yyzz_djxx"': 'table = "yyzz_djxx"\ntabel = "x"'})
    code, out = run_json(capsys, f)
    assert code == 2 and out["failed_step"] == 1 and "tabel" in out["message"] and "batch_rows" in out["message"]
    f = reg_file(tmp_path / "r.toml", **{'kind = "sql"': 'kind = "ftp"'})
    code, out = run_json(capsys, f)
    assert code == 2 and "'ftp'" in out["message"] and "files, http, sql" in out["message"]


def test_a_missing_file_and_a_sample_size_out_of_range_are_refused(home, tmp_path, capsys):
    code, out = run_json(capsys, tmp_path / "absent.toml")
    assert code == 2 and "no such registration file" in out["message"]
    f = reg_file(tmp_path / "r.toml")
    with pytest.raises(ConfigError, match="between 1 and"):
        registering.register_file(f, sample_rows=0)


def test_a_new_source_goes_to_its_id_file(home, tmp_path):
    import registration

    reg = registration.load(reg_file(tmp_path / "r.toml"))
    plan = registering.plan_target(reg, tmp_path / "sources")
    assert (plan.action, plan.target) == ("new", tmp_path / "sources" / "smr_business_licence.toml")


def test_the_file_registering_the_same_id_is_the_one_updated(home, tmp_path):
    import registration

    sources = tmp_path / "sources"
    sources.mkdir()
    reg_file(sources / "hand_named.toml")             # put there by hand, another file name
    reg_file(sources / "other.toml", **{'id = "smr_business_licence"': 'id = "smr_other"'})
    reg = registration.load(reg_file(tmp_path / "r.toml"))
    plan = registering.plan_target(reg, sources)
    assert (plan.action, plan.target) == ("update", sources / "hand_named.toml")


def test_an_id_file_holding_another_source_is_not_overwritten(home, tmp_path):
    import registration

    sources = tmp_path / "sources"
    sources.mkdir()
    reg_file(sources / "smr_business_licence.toml", **{'id = "smr_business_licence"': 'id = "smr_other"'})
    reg = registration.load(reg_file(tmp_path / "r.toml"))
    with pytest.raises(ConfigError, match="already registers another source \\('smr_other'\\)"):
        registering.plan_target(reg, sources)


def test_an_update_cannot_move_a_source_to_another_dataset(home, tmp_path):
    import registration

    sources = tmp_path / "sources"
    sources.mkdir()
    reg_file(sources / "smr_business_licence.toml")
    moved = reg_file(tmp_path / "r.toml", **{'department = "market_regulation"': 'department = "commerce"'})
    with pytest.raises(ConfigError, match="registered for dataset business_licence.market_regulation.*"
                                          "cannot move it to business_licence.commerce"):
        registering.plan_target(registration.load(moved), sources)


def test_catalogue_keeps_initial_metadata_and_each_change(home, tmp_path):
    import dataclasses

    import registration
    from tests.conftest import catalog

    reg = registration.load(reg_file(tmp_path / "r.toml"))
    cat = catalog()
    first = cat.register(source_listing(reg), by="alice")
    assert first == ["title", "steward", "description", "department", "department_name",
                     "sharing", "update_cycle"]
    assert cat.register(source_listing(reg)) == [], "registering the same metadata again records nothing"
    cat.register(source_listing(dataclasses.replace(reg, steward="王芳", sharing="conditional")), by="bob")
    info = cat.dataset(reg.dataset)
    assert info["steward"] == "王芳" and info["sharing"] == "conditional"
    assert info["description"] == reg.description and info["department_name"] == "市场监督管理局"
    history = info["history"]
    assert len(history) == 9
    assert {h["field"]: h["new_value"] for h in history[:7]}["steward"] == reg.steward
    assert all(h["old_value"] is None and h["changed_by"] == "alice" for h in history[:7])
    assert [(h["field"], h["old_value"], h["new_value"], h["changed_by"]) for h in history[7:]] == [
        ("steward", reg.steward, "王芳", "bob"), ("sharing", "unconditional", "conditional", "bob")]
    assert history[0]["source_file"] == str(tmp_path / "r.toml")
    assert [s["source"] for s in info["sources"]] == ["smr_business_licence"]


def test_dataset_command_shows_metadata_and_history_and_refuses_unknown(home, tmp_path, capsys):
    import registration
    from tests.conftest import catalog

    reg = registration.load(reg_file(tmp_path / "r.toml"))
    catalog().register(source_listing(reg), by="alice")
    assert main(["dataset", reg.dataset, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steward"] == reg.steward and len(out["history"]) == 7
    assert main(["dataset", reg.dataset]) == 0
    text = capsys.readouterr().out
    assert "元数据变更记录 (metadata history)" in text and "alice" in text and "市场监督管理局" in text
    assert main(["dataset", "no.such"]) == 7
    assert "known: business_licence.market_regulation" in capsys.readouterr().err
