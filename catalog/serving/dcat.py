"""The catalogue as DCAT-AP JSON-LD (dcat:Catalog of dcat:Dataset with a dcat:Distribution)."""
from __future__ import annotations

FREQ = "http://publications.europa.eu/resource/authority/frequency/"
FREQUENCY = {"hourly": "HOURLY", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY",
             "quarterly": "QUARTERLY", "yearly": "ANNUAL"}
ACCESS = {"unconditional": "PUBLIC", "conditional": "RESTRICTED", "not_shared": "NON_PUBLIC"}
RIGHTS = "http://publications.europa.eu/resource/authority/access-right/"


def catalogue_jsonld(datasets: list[dict], base: str) -> dict:
    return {
        "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                     "foaf": "http://xmlns.com/foaf/0.1/", "vcard": "http://www.w3.org/2006/vcard/ns#",
                     "adms": "http://www.w3.org/ns/adms#", "xsd": "http://www.w3.org/2001/XMLSchema#"},
        "@id": f"{base}/v1/catalogue.jsonld", "@type": "dcat:Catalog",
        "dct:title": "Exchange catalogue of verifiable licence records",
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": "the exchange"},
        "dcat:dataset": [_dataset(d, base) for d in datasets],
    }


def _dataset(d: dict, base: str) -> dict:
    out = {"@id": f"{base}/v1/datasets#{d['dataset']}", "@type": "dcat:Dataset",
           "dct:identifier": d["dataset"], "dct:title": d["title"],
           "dct:publisher": {"@type": "foaf:Agent", "foaf:name": d["department"]},
           "dct:accessRights": {"@id": RIGHTS + ACCESS.get(d["sharing"], "NON_PUBLIC")},
           "dct:conformsTo": {"@id": f"urn:exchange:certificate-type:{d['certificate_type']}:v{d['type_version']}"},
           "adms:version": str(d["version"]) if d["version"] else None,
           "dcat:distribution": [{"@type": "dcat:Distribution",
                                  "dcat:accessURL": {"@id": f"{base}/v1/holders/records"},
                                  "dct:format": "application/json",
                                  "dct:description": "per-record bundles: RFC 8785 record, RFC 9162 "
                                                     "audit path, Ed25519-signed tree head (JWS)"}]}
    if d["update_cycle"] in FREQUENCY:
        out["dct:accrualPeriodicity"] = {"@id": FREQ + FREQUENCY[d["update_cycle"]]}
    if d["published_at"]:
        out["dct:modified"] = {"@value": d["published_at"], "@type": "xsd:dateTime"}
    if d["steward"]:
        out["dcat:contactPoint"] = {"@type": "vcard:Kind", "vcard:fn": d["steward"]}
    return {k: v for k, v in out.items() if v is not None}
