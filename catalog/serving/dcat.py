"""The public catalogue as DCAT-AP 3 JSON-LD: a dcat:Catalog of dcat:Dataset, each with a
dcat:Distribution served by the exchange's API (a dcat:DataService). Metadata only: built from
catalog/serving/public.py's rows, which hold no record, holder or count.

Texts are Chinese (`@language` zh) with English beside them where the certificate type has an
English title; controlled terms come from catalog/serving/dcat_vocab.py. Validated against the
DCAT-AP 3.0.1 SHACL shapes in tests/integration/api/test_dcat_public.py."""
from __future__ import annotations

import re
from datetime import datetime
from email.utils import parseaddr
from urllib.parse import quote

from catalog.serving import dcat_vocab as v
from schemas.types import CertificateType, all_types

CONTEXT = {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
           "foaf": "http://xmlns.com/foaf/0.1/", "vcard": "http://www.w3.org/2006/vcard/ns#",
           "skos": "http://www.w3.org/2004/02/skos/core#", "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
           "xsd": "http://www.w3.org/2001/XMLSchema#"}
KEYWORD = "电子证照"
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def _zh(text: str) -> bool:
    return bool(CJK.search(text))


def _when(t: datetime) -> dict:
    return {"@value": t.isoformat(timespec="seconds"), "@type": "xsd:dateTime"}


def _name(text: str) -> dict | str:
    return {"@value": text, "@language": "zh"} if _zh(text) else text


def catalogue_jsonld(datasets: list[dict], base: str, publisher: str) -> dict:
    """`datasets`: public_datasets() rows; `base`: the API's address; `publisher`: who runs
    the exchange (EXCHANGE_CATALOGUE_PUBLISHER)."""
    doc = f"{base}/v1/catalogue.jsonld"
    service = f"{base}/v1"
    types = all_types()
    out = {
        "@context": CONTEXT, "@id": doc, "@type": "dcat:Catalog",
        "dct:title": v.lang("电子证照共享目录", "Catalogue of electronic licence records"),
        "dct:description": v.lang(
            "各部门电子证照数据集的公开元数据：名称、主题、关键词、更新周期、共享属性和数据管理员。"
            "不含任何证照记录或持证主体信息；记录须凭密钥、说明用途后经接口查询，每条记录均可离线核验签名。",
            "Public metadata of the departments' electronic licence datasets: titles, themes, keywords, "
            "update cycles, sharing attributes and stewards. It holds no record and nothing about any "
            "holder; records are asked for through the API with a key and a stated purpose, and each "
            "one's signature verifies offline."),
        "dct:publisher": {"@id": f"{doc}#publisher", "@type": "foaf:Agent", "foaf:name": _name(publisher)},
        "dct:language": [v.term(v.LANGUAGE, "ZHO", "dct:LinguisticSystem"),
                         v.term(v.LANGUAGE, "ENG", "dct:LinguisticSystem")],
        "dcat:themeTaxonomy": v.theme_taxonomy(),
        "dcat:service": {"@id": service, "@type": "dcat:DataService",
                         "dct:title": v.lang("电子证照共享交换接口", "Exchange consumer API"),
                         # typed: the release's range shapes ask for class rdfs:Resource, and
                         # a validator without RDFS inference does not infer it
                         "dcat:endpointURL": {"@id": service, "@type": "rdfs:Resource"},
                         "dcat:endpointDescription": {"@id": f"{base}/openapi.json", "@type": "rdfs:Resource"},
                         "dct:accessRights": v.term(v.RIGHTS, "RESTRICTED", "dct:RightsStatement"),
                         "dcat:servesDataset": [{"@id": _id(base, d)} for d in datasets]},
        "dcat:dataset": [_dataset(d, base, service, types.get(d["certificate_type"])) for d in datasets],
    }
    modified = [d["modified"] for d in datasets if d["modified"]]
    if modified:
        out["dct:modified"] = _when(max(modified))
    return out


def _id(base: str, d: dict) -> str:
    return f"{base}/v1/datasets#{quote(d['dataset'])}"


def _texts(d: dict, ctype: CertificateType | None) -> tuple[list[dict], list[dict], list[dict]]:
    """Title, description and keywords: the steward's text in the language it is written in,
    the other language made from the certificate type."""
    type_zh = ctype.title if ctype else d["certificate_type"]
    type_en = ctype.title_en if ctype else None
    dept_zh = d["department_name"] or d["department"]
    title, desc = d["title"], d["description"]
    title_zh = title if _zh(title) else f"{type_zh}（{dept_zh}）"
    title_en = title if not _zh(title) else (f"{type_en} ({d['department']})" if type_en else None)
    desc_zh = desc if desc and _zh(desc) else (
        f"{dept_zh}签发的{type_zh}电子证照数据。每条记录经 RFC 8785 规范化、Ed25519 签名并纳入 "
        "RFC 9162 默克尔树，可离线核验。")
    desc_en = desc if desc and not _zh(desc) else (
        ctype.description if ctype and ctype.description and not _zh(ctype.description) else
        f"{type_en} records issued by {d['department']}, each signed (Ed25519) in an RFC 9162 "
        "Merkle tree and verifiable offline." if type_en else None)
    words = dict.fromkeys([type_zh, *([d["department_name"]] if d["department_name"] else []), KEYWORD])
    keywords = [{"@value": w, "@language": "zh"} for w in words]
    if type_en:
        keywords.append({"@value": type_en, "@language": "en"})
    return v.lang(title_zh, title_en), v.lang(desc_zh, desc_en), keywords


def _publisher(d: dict, doc: str) -> dict:
    name = d["department_name"]
    return {"@id": f"{doc}#department-{quote(d['department'])}", "@type": "foaf:Agent",
            "foaf:name": {"@value": name, "@language": "zh"} if name else d["department"],
            "dct:identifier": d["department"]}


def _contact(steward: str) -> dict:
    """The steward as a vcard:Kind: `名称 <mail@host>` gives a name and a mailbox, a URL a
    page, anything else a name."""
    out: dict = {"@type": "vcard:Kind"}
    name, addr = parseaddr(steward)
    if steward.startswith(("http://", "https://")):
        out.update({"vcard:fn": steward, "vcard:hasURL": {"@id": steward}})
    elif "@" in addr:
        out.update({"vcard:fn": name or addr, "vcard:hasEmail": {"@id": f"mailto:{addr}"}})
    else:
        out["vcard:fn"] = steward
    return out


def _dataset(d: dict, base: str, service: str, ctype: CertificateType | None) -> dict:
    title, description, keywords = _texts(d, ctype)
    standard = {"@id": f"urn:exchange:certificate-type:{d['certificate_type']}:v{d['type_version']}",
                "@type": "dct:Standard",
                "dct:title": v.lang(ctype.title, ctype.title_en) if ctype else d["certificate_type"]}
    zh_rights, en_rights = v.SHARING_TEXT.get(d["sharing"], v.SHARING_TEXT["not_shared"])
    out = {"@id": _id(base, d), "@type": "dcat:Dataset", "dct:identifier": d["dataset"],
           "dct:title": title, "dct:description": description, "dcat:keyword": keywords,
           "dcat:theme": [v.theme(c) for c in v.themes_of(d["certificate_type"])],
           "dct:publisher": _publisher(d, f"{base}/v1/catalogue.jsonld"),
           "dct:accessRights": v.term(v.RIGHTS, v.ACCESS.get(d["sharing"], "NON_PUBLIC"), "dct:RightsStatement"),
           "dct:conformsTo": standard,
           "dcat:distribution": [{
               "@type": "dcat:Distribution",
               "dct:title": v.lang("按持证主体查询的签名记录", "Signed records, asked for by holder"),
               "dct:description": v.lang(
                   "逐条记录包：RFC 8785 规范化记录、RFC 9162 审计路径、Ed25519 签名的树头（JWS）。",
                   "Per-record bundles: RFC 8785 record, RFC 9162 audit path, Ed25519-signed tree head (JWS)."),
               "dcat:accessURL": {"@id": f"{base}/v1/holders/records"},
               "dcat:accessService": {"@id": service},
               "dct:format": v.term(v.FILE_TYPE, "JSON", "dct:MediaTypeOrExtent"),
               "dcat:mediaType": v.term(v.MEDIA_TYPE, "application/json", "dct:MediaType"),
               "dct:rights": {"@type": "dct:RightsStatement", "rdfs:label": v.lang(zh_rights, en_rights)},
               "dct:conformsTo": {"@id": standard["@id"]}}]}
    if d["version"]:
        out["dcat:version"] = str(d["version"])
    if d["update_cycle"] in v.FREQUENCY:
        out["dct:accrualPeriodicity"] = v.term(v.FREQ, v.FREQUENCY[d["update_cycle"]], "dct:Frequency")
    if d["issued"]:
        out["dct:issued"] = _when(d["issued"])
    if d["modified"]:
        out["dct:modified"] = _when(d["modified"])
    if d["steward"]:
        out["dcat:contactPoint"] = _contact(d["steward"])
    return out
