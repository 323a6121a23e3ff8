import pytest

import registration
from base.errors import ConfigError, UnknownName
from tests.conftest import ROOT

BASE = {"id": "smr_x", "department": "market_regulation", "certificate_type": "business_licence",
        "connector": {"kind": "sql", "url": "sqlite:///x.db", "table": "t"},
        "mapping": {"licence_number": "ZCH"}}


def test_demo_registration_parses():
    text = (ROOT / "demo/registrations/smr_business_licence.toml").read_text("utf-8")
    import tomllib
    reg = registration.parse(tomllib.loads(text), "demo")
    assert reg.dataset == "business_licence.market_regulation"
    assert reg.dag_id == "source__smr_business_licence"
    assert reg.status_map["吊销"] == "revoked"


def test_unknown_keys_are_refused_with_the_known_ones():
    with pytest.raises(ConfigError) as exc:
        registration.parse({**BASE, "colour": "blue"}, "f.toml")
    assert "colour" in str(exc.value) and "certificate_type" in str(exc.value)


def test_unknown_certificate_type_lists_the_known_types():
    with pytest.raises(UnknownName) as exc:
        registration.parse({**BASE, "certificate_type": "fishing_permit"}, "f.toml")
    assert "business_licence" in str(exc.value)


def test_mapping_to_a_field_the_type_does_not_have_is_refused():
    with pytest.raises(UnknownName) as exc:
        registration.parse({**BASE, "mapping": {"shoe_size": "X"}}, "f.toml")
    assert "holder_code" in str(exc.value)


def test_status_map_must_target_canonical_statuses():
    with pytest.raises(UnknownName) as exc:
        registration.parse({**BASE, "status_map": {"吊销": "dead"}}, "f.toml")
    assert "revoked" in str(exc.value)


def test_sharing_attribute_is_checked():
    with pytest.raises(UnknownName):
        registration.parse({**BASE, "sharing": "sometimes"}, "f.toml")


def test_duplicate_source_ids_are_refused(tmp_path):
    import json
    for name in ("a", "b"):
        lines = [f'{k} = {json.dumps(v)}' for k, v in BASE.items() if not isinstance(v, dict)]
        lines += ["[connector]", 'kind = "sql"', 'url = "sqlite:///x.db"', 'table = "t"',
                  "[mapping]", 'licence_number = "ZCH"']
        (tmp_path / f"{name}.toml").write_text("\n".join(lines), encoding="utf-8")
    assert registration.load_all(tmp_path) == {}, "neither file of an id registered twice is loaded"
    with pytest.raises(ConfigError, match="registered twice"):
        registration.get("smr_x", tmp_path)
