"""One malformed certificate-type file hides no other type (#14, item 3); `exchange types check`
reports every broken file in one line each (exit 2); the type docs render a sample registration
of any connector kind."""
from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from base.errors import ConfigError
from cli import main
from schemas import types as types_mod

# file name -> (edit of diploma.toml, what its one-line reason must say)
BROKEN = {
    "not_toml.toml": (lambda s: s + "\nthis is = = not toml\n", "not valid TOML"),
    "history_list.toml": (lambda s: 'history = ["x"]\n' + s[:s.index("[history]")],
                          "history must be a table, not an array"),
    "fields_string.toml": (lambda s: 'fields = "x"\n' + s[:s.index("[[fields]]")],
                           "fields must be an array of tables, not a string"),
    "version_text.toml": (lambda s: s.replace("version = 1", 'version = "1"'),
                          "version must be an integer, not a string ('1')"),
    "field_type.toml": (lambda s: s.replace('name = "major"\ntype = "string"', 'name = "major"\ntype = "decimal"'),
                        "unknown field type"),
    "field_key.toml": (lambda s: s.replace('name = "major"', 'name = "major"\ncolour = "red"'),
                       "unknown keys in fields[2] ['colour']"),
    "field_name.toml": (lambda s: s.replace('name = "major"', 'name = "../major"'),
                        "fields[2].name '../major' is not allowed"),
    "required_text.toml": (lambda s: s.replace('name = "major"', 'name = "major"\nrequired = "yes"'),
                           "required must be a boolean, not a string ('yes')"),
    "rules_string.toml": (lambda s: s.replace('first = "enrolment_date"', "first = 5"),
                          "rules[1].first must be a string, not an integer (5)"),
}


def broken_dir(tmp_path: Path) -> Path:
    d = tmp_path / "types"
    shutil.copytree(types_mod.TYPES_DIR, d)
    diploma = (d / "diploma.toml").read_text("utf-8")
    for i, (name, (edit, _)) in enumerate(BROKEN.items()):
        stem = name.removesuffix(".toml")
        (d / name).write_text(edit(diploma.replace('name = "diploma"', f'name = "{stem}"')
                                   .replace('type_code = "5001"', f'type_code = "90{i:02d}"')), "utf-8")
    return d


def test_types_check_reports_each_broken_file_and_exits_2(tmp_path, capsys):
    d = broken_dir(tmp_path)
    assert main(["types", "check", "--dir", str(d), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    problems = {Path(p["file"]).name: p["reason"] for p in out["problems"]}
    assert set(problems) == set(BROKEN)
    for name, (_, says) in BROKEN.items():
        assert says in problems[name] and "\n" not in problems[name], (name, problems[name])
    assert set(out["types"]) == {p.stem for p in types_mod.TYPES_DIR.glob("*.toml")}
    assert main(["types", "check", "--dir", str(d)]) == 2
    captured = capsys.readouterr()
    for name in BROKEN:
        assert name in captured.out
    assert "exchange:" in captured.err and "Traceback" not in captured.err


def test_types_check_passes_the_shipped_types(capsys):
    assert main(["types", "check", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problems"] == [] and "business_licence" in out["types"]
    assert main(["types", "check"]) == 0
    assert "all valid" in capsys.readouterr().out


def test_a_duplicate_type_code_is_a_problem(tmp_path, capsys):
    d = tmp_path / "types"
    shutil.copytree(types_mod.TYPES_DIR, d)
    text = (d / "diploma.toml").read_text("utf-8").replace('name = "diploma"', 'name = "diploma_copy"')
    (d / "diploma_copy.toml").write_text(text, "utf-8")
    assert main(["types", "check", "--dir", str(d), "--json"]) == 2
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert Path(problem["file"]).name == "diploma_copy.toml" and "type_code" in problem["reason"]


def test_a_broken_type_file_hides_only_itself(tmp_path, monkeypatch):
    import registration
    from tests.regdocs import doc, to_toml

    d = tmp_path / "types"
    shutil.copytree(types_mod.TYPES_DIR, d)
    (d / "diploma.toml").write_text("name = ", "utf-8")
    monkeypatch.setattr(types_mod, "TYPES_DIR", d)
    types_mod.all_types.cache_clear()
    try:
        types = types_mod.all_types()
        assert "diploma" not in types and "business_licence" in types
        with pytest.raises(ConfigError, match="diploma.toml: not valid TOML"):
            types_mod.get_type("diploma")
        src = tmp_path / "sources"
        src.mkdir()
        (src / "smr.toml").write_text(to_toml(doc()), "utf-8")
        edu = tomllib.loads((Path(__file__).parents[3] / "demo/registrations/edu_diploma.toml").read_text("utf-8"))
        (src / "edu.toml").write_text(to_toml(edu), "utf-8")
        scan = registration.scan(src)
        assert list(scan.registrations) == ["smr_business_licence"]
        [problem] = scan.problems
        assert problem.source == "edu_diploma" and "diploma.toml: not valid TOML" in problem.reason
    finally:
        types_mod.all_types.cache_clear()


def test_type_docs_render_a_files_connector_sample(tmp_path, monkeypatch):
    from schemas import docs

    regs = tmp_path / "registrations"
    shutil.copytree(docs.SAMPLES, regs)
    path = regs / "ca_marriage_certificate.toml"
    text = path.read_text("utf-8")
    head, rest = text.split("[connector]", 1)
    path.write_text(head + '[connector]\nkind = "files"\npath = "civil_affairs"\npattern = "*.csv"\n\n'
                    + rest[rest.index("[mapping]"):], "utf-8")
    page = docs.render_type(types_mod.get_type("marriage_certificate"),
                            docs.sample_for("marriage_certificate", regs))
    assert "file drop `civil_affairs` (`*.csv`)" in page
    sql = docs.render_type(types_mod.get_type("diploma"), docs.sample_for("diploma", regs))
    assert "table `xl_byzs`" in sql
