"""Service items: the shipped catalogue, validation of item files, 三级四同 and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from base.errors import ConfigError, NotFound, UnknownName
from cli import main
from schemas.items import LEVELS, catalogue, get_item, load_item, mismatches
from schemas.types import all_types

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "items_mismatch"
BASE = '''code = "XK-TEST-0001"
name = "测试事项"
power_type = "行政许可"
levels = ["city"]
applicant = "organisation"
'''


def write(tmp_path, text, name="XK-TEST-0001.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def test_shipped_catalogue():
    items = catalogue()
    assert len(items) >= 20
    held = {m.certificate for i in items.values() for m in i.materials if m.held}
    assert held <= set(all_types()) and len(held) >= 8
    assert any(m.later for i in items.values() for m in i.materials), "some material is 容缺"
    assert any(set(i.levels) == set(LEVELS) for i in items.values())
    assert mismatches() == [], "the shipped catalogue keeps 三级四同"
    lift = get_item("DJ-SCJG-0003")
    assert lift.name == "特种设备使用登记(电梯)" and lift.materials[0].certificate == "business_licence"


def test_unknown_certificate_type_is_refused_with_the_known_ones(tmp_path):
    path = write(tmp_path, BASE + '[[materials]]\nname = "渔业许可证"\ncertificate = "fishing_permit"\n'
                                  'whose = "applicant"\n')
    with pytest.raises(UnknownName) as exc:
        load_item(path)
    assert "fishing_permit" in str(exc.value) and "business_licence" in str(exc.value)
    assert "渔业许可证" in str(exc.value)


@pytest.mark.parametrize("material, message", [
    ('name = "营业执照"\ncertificate = "business_licence"\nwhose = "cousin"', "unknown whose"),
    ('name = "营业执照"\ncertificate = "business_licence"', "say whose it is"),
    ('name = "结婚证"\ncertificate = "marriage_certificate"\nwhose = "applicant"',
     "held by a person, but whose = 'applicant' is a organisation"),
    ('name = "营业执照"\ncertificate = "business_licence"\nwhose = "spouse"', "held by a organisation"),
    ('name = "x"\ncolour = "red"', "unknown material keys"),
])
def test_bad_materials_are_refused(tmp_path, material, message):
    with pytest.raises(ConfigError, match=message):
        load_item(write(tmp_path, BASE + "[[materials]]\n" + material + "\n"))


@pytest.mark.parametrize("edit, message", [
    (('levels = ["city"]', 'levels = ["province"]'), "unknown level"),
    (('power_type = "行政许可"', 'power_type = "行政处罚"'), "unknown power type"),
    (('code = "XK-TEST-0001"', 'code = "item 1"'), "must look like XK-SCJG-0001"),
])
def test_bad_items_are_refused(tmp_path, edit, message):
    text = BASE.replace(*edit) + '[[materials]]\nname = "申请书"\n'
    with pytest.raises(ConfigError, match=message):
        load_item(write(tmp_path, text))


def test_a_code_declared_twice_at_one_level_is_refused(tmp_path):
    text = BASE + '[[materials]]\nname = "申请书"\n'
    write(tmp_path, text, "a.toml")
    write(tmp_path, text, "b.toml")
    with pytest.raises(ConfigError, match="declared twice at city level"):
        catalogue(tmp_path)


def test_three_levels_four_sames_reports_every_mismatch():
    found = mismatches(FIXTURE)
    got = {(m["code"], m["attribute"]) for m in found}
    assert got == {("XK-SCJG-0001", "power_type"), ("XK-SCJG-0001", "materials"),
                   ("XK-SCJG-0001", "code")}, "GG-JY-0001 agrees across its levels"
    materials = next(m for m in found if m["attribute"] == "materials")
    assert materials["differing"] == ["租赁合同 (submitted, -)"]
    code = next(m for m in found if m["attribute"] == "code")
    assert set(code["values"].values()) == {"XK-SCJG-0001", "XK-SCJG-0099"}, "matched through 繁→简"
    merged = catalogue(FIXTURE)["XK-SCJG-0001"]
    assert merged.levels == ("city", "district")


def test_cli_items_and_item(capsys):
    assert main(["items", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) >= 20 and {"code", "name", "levels", "materials"} <= set(items[0])
    assert main(["items", "--json", "--level", "township"]) == 0
    assert all("township" in i["levels"] for i in json.loads(capsys.readouterr().out))
    assert main(["item", "DJ-ZRZY-0001", "--json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["materials"][0] == {"name": "不动产权证书", "certificate": "real_estate_title",
                                    "whose": "transferor", "later": False, "source": "exchange"}
    assert main(["item", "DJ-ZRZY-0001"]) == 0
    assert "不动产权证书" in capsys.readouterr().out


def test_cli_unknown_item_is_not_found_with_the_known_codes(capsys):
    assert main(["item", "XK-NOPE-0001"]) == NotFound.exit_code
    err = capsys.readouterr().err
    assert "XK-NOPE-0001" in err and "DJ-ZRZY-0001" in err and err.count("\n") == 1


def test_cli_items_check(capsys):
    assert main(["items-check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"mismatches": []}
    assert main(["items-check", "--json", "--dir", str(FIXTURE)]) == 4
    out = capsys.readouterr()
    assert len(json.loads(out.out)["mismatches"]) == 3 and "三级四同" in out.err
