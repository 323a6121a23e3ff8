"""The DCAT-AP document's parts made from a dataset's metadata (catalog/serving/dcat.py): the
theme table covers every certificate type; texts in both languages whichever the steward wrote
in; the steward as a contact point; a department without a Chinese name named by its id.
Validation against the DCAT-AP shapes: tests/integration/api/test_dcat_public.py."""
from __future__ import annotations

from datetime import UTC, datetime

from catalog.serving import dcat_vocab
from catalog.serving.dcat import catalogue_jsonld
from schemas.types import all_types

WHEN = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def _row(**kw) -> dict:
    row = {"dataset": "diploma.education", "title": "毕业证书（教育局）", "description": None,
           "certificate_type": "diploma", "type_version": 1, "department": "education",
           "department_name": "教育局", "sharing": "conditional", "steward": "学籍科 <xj@edu.example.gov.cn>",
           "update_cycle": "weekly", "version": 3, "issued": WHEN, "modified": WHEN}
    return {**row, **kw}


def _dataset(**kw) -> dict:
    return catalogue_jsonld([_row(**kw)], "https://x.example", "某市大数据局")["dcat:dataset"][0]


def _texts(values) -> dict:
    return {v["@language"]: v["@value"] for v in values}


def test_every_certificate_type_has_themes_of_the_eu_vocabulary():
    types = set(all_types())
    assert types and types <= set(dcat_vocab.THEMES), types - set(dcat_vocab.THEMES)
    for codes in dcat_vocab.THEMES.values():
        assert codes and set(codes) <= set(dcat_vocab.THEME_LABELS)
    assert dcat_vocab.themes_of("no_such_type") == ("GOVE",)


def test_texts_in_both_languages_whoever_wrote_which():
    zh = _dataset()
    assert _texts(zh["dct:title"]) == {"zh": "毕业证书（教育局）", "en": "Diploma (education)"}
    desc = _texts(zh["dct:description"])
    assert "教育局" in desc["zh"] and desc["en"] == all_types()["diploma"].description
    en = _dataset(title="Diplomas of the city", description="Graduates since 2001.")
    assert _texts(en["dct:title"]) == {"zh": "毕业证书（教育局）", "en": "Diplomas of the city"}
    assert _texts(en["dct:description"])["en"] == "Graduates since 2001."
    assert {k["@value"] for k in zh["dcat:keyword"]} == {"毕业证书", "教育局", "电子证照", "Diploma"}
    assert [t["@id"].rsplit("/", 1)[1] for t in zh["dcat:theme"]] == ["EDUC"]
    assert zh["dct:accessRights"]["@id"].endswith("/RESTRICTED")
    assert zh["dct:accrualPeriodicity"]["@id"].endswith("/WEEKLY")
    assert zh["dct:issued"] == {"@value": "2026-03-01T08:30:00+00:00", "@type": "xsd:dateTime"}


def test_the_steward_as_a_contact_point_and_the_publisher_without_a_chinese_name():
    assert _dataset()["dcat:contactPoint"] == {"@type": "vcard:Kind", "vcard:fn": "学籍科",
                                               "vcard:hasEmail": {"@id": "mailto:xj@edu.example.gov.cn"}}
    page = _dataset(steward="https://edu.example.gov.cn/contact")["dcat:contactPoint"]
    assert page["vcard:hasURL"] == {"@id": "https://edu.example.gov.cn/contact"}
    assert _dataset(steward="学籍管理科")["dcat:contactPoint"] == {"@type": "vcard:Kind", "vcard:fn": "学籍管理科"}
    assert "dcat:contactPoint" not in _dataset(steward=None)
    nameless = _dataset(department_name=None)
    assert nameless["dct:publisher"]["foaf:name"] == "education"
    assert nameless["dct:publisher"]["dct:identifier"] == "education"
    assert {k["@value"] for k in nameless["dcat:keyword"]} == {"毕业证书", "电子证照", "Diploma"}
    never = _dataset(version=None, issued=None, modified=None)
    assert not {"dcat:version", "dct:issued", "dct:modified"} & set(never)
