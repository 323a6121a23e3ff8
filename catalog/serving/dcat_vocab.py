"""The controlled vocabularies the DCAT-AP catalogue uses: the EU Publications Office's
authority tables (data themes, frequencies, access rights, file types, languages) and IANA
media types. Each term is sent typed and labelled, so the document validates on its own."""
from __future__ import annotations

EU = "http://publications.europa.eu/resource/authority/"
THEME_SCHEME = EU + "data-theme"
FREQ = EU + "frequency/"
RIGHTS = EU + "access-right/"
FILE_TYPE = EU + "file-type/"
LANGUAGE = EU + "language/"
MEDIA_TYPE = "https://www.iana.org/assignments/media-types/"

# EU data themes (labels: the vocabulary's English, and ours in Chinese)
THEME_LABELS = {
    "ECON": ("经济和金融", "Economy and finance"),
    "EDUC": ("教育、文化和体育", "Education, culture and sport"),
    "GOVE": ("政府和公共部门", "Government and public sector"),
    "HEAL": ("卫生健康", "Health"),
    "JUST": ("司法、法律体系和公共安全", "Justice, legal system and public safety"),
    "SOCI": ("人口和社会", "Population and society"),
    "TRAN": ("交通运输", "Transport"),
}
# the themes of each certificate type (schemas/types/NAME.toml); a type not listed: GOVE
THEMES: dict[str, tuple[str, ...]] = {
    "business_licence": ("ECON", "GOVE"),
    "food_business_licence": ("ECON", "HEAL"),
    "special_equipment_registration": ("ECON", "JUST"),
    "travel_agency_licence": ("ECON", "EDUC"),
    "diploma": ("EDUC",),
    "marriage_certificate": ("SOCI", "JUST"),
    "medical_practitioner_certificate": ("HEAL",),
    "real_estate_title": ("JUST", "ECON"),
    "road_transport_licence": ("TRAN",),
    "social_insurance_record": ("SOCI",),
}
DEFAULT_THEMES = ("GOVE",)

FREQUENCY = {"hourly": "HOURLY", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY",
             "quarterly": "QUARTERLY", "yearly": "ANNUAL"}
ACCESS = {"unconditional": "PUBLIC", "conditional": "RESTRICTED", "not_shared": "NON_PUBLIC"}
SHARING_TEXT = {   # the distribution's dct:rights: who gets records (docs/consumer-api.md)
    "unconditional": ("无条件共享：已登记部门凭交换平台密钥、说明用途（事项编码或案件号）即可查询，"
                      "每次查询均留审计记录。",
                      "Shared unconditionally: any registered department with an exchange key and a "
                      "stated purpose (service-item code or case number); every request is audited."),
    "conditional": ("有条件共享：需经数据管理员授权，按授权的用途和字段查询，每次查询均留审计记录。",
                    "Shared on conditions: a department needs a grant from the steward, for the "
                    "granted purposes and fields; every request is audited."),
    "not_shared": ("不予共享：记录不向任何部门提供。",
                   "Not shared: no department gets records."),
}


def lang(zh: str, en: str | None = None) -> list[dict]:
    """A text in Chinese (and English): language-tagged JSON-LD values."""
    return [{"@value": zh, "@language": "zh"}] + ([{"@value": en, "@language": "en"}] if en else [])


def themes_of(certificate_type: str) -> tuple[str, ...]:
    return THEMES.get(certificate_type, DEFAULT_THEMES)


def theme(code: str) -> dict:
    zh, en = THEME_LABELS[code]
    return {"@id": f"{THEME_SCHEME}/{code}", "@type": "skos:Concept", "skos:prefLabel": lang(zh, en),
            "skos:inScheme": {"@id": THEME_SCHEME}}


def theme_taxonomy() -> dict:
    return {"@id": THEME_SCHEME, "@type": "skos:ConceptScheme", "dct:title": lang("数据主题", "Data theme")}


def term(base: str, code: str, rdf_type: str) -> dict:
    return {"@id": base + code, "@type": rdf_type}
