"""The public metadata (GET /v1/catalogue.jsonld, GET /v1/items): readable without a key, valid
DCAT-AP 3 (pySHACL against the release's shapes, tests/data/dcat-ap/), no record in it, not
audited, rate-limited per client address."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pyshacl import validate
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, SH, SKOS

from tests.conftest import ROOT

# plain namespaces: rdflib's closed DCAT and XSD warn when pytest probes them for attributes
DCAT = Namespace("http://www.w3.org/ns/dcat#")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")

SHAPES = ROOT / "tests" / "data" / "dcat-ap"
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
THEME = "http://publications.europa.eu/resource/authority/data-theme/"
DATASET = "business_licence.market_regulation"
ITEM = "DJ-SCJG-0003"


# ranges.ttl of release 3.0.1 lists five property shapes that neither file defines (pySHACL
# refuses a dangling sh:property): those links are dropped, and only those (tests/data/dcat-ap/README.md)
DANGLING = 5


@pytest.fixture(scope="module")
def shapes() -> Graph:
    g = Graph()
    for name in ("dcat-ap-SHACL.ttl", "ranges.ttl"):
        g.parse(SHAPES / name, format="turtle")
    defined = set(g.subjects(SH.path, None))
    dangling = [(s, o) for s, o in g.subject_objects(SH.property) if o not in defined]
    assert len(dangling) == DANGLING, dangling
    for s, o in dangling:
        g.remove((s, SH.property, o))
    return g


def _app(settings, **kw):
    from api.app import create_app

    return create_app(settings, cache_ttl=0, **kw)


def _graph(body: bytes, base: str) -> Graph:
    return Graph().parse(data=body, format="json-ld", publicID=base)


def _violations(data: Graph, shapes: Graph) -> tuple[int, str]:
    conforms, report, text = validate(data, shacl_graph=shapes, inference="none", advanced=True)
    found = len(list(report.subjects(SH.resultSeverity, SH.Violation)))
    assert conforms == (found == 0)
    return found, text


def _audit_head(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("select seq from audit_head")).scalar_one()


def test_the_public_catalogue_is_valid_dcat_ap_3_and_holds_no_record(published, shapes):
    app = _app(published, rate=10_000, burst=10_000)
    client = TestClient(app)
    r = client.get("/v1/catalogue.jsonld")                  # no key, no purpose
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    g = _graph(r.content, "http://testserver/")
    found, text = _violations(g, shapes)
    assert found == 0, text

    # the same document with a part a DCAT-AP catalogue must have taken out: the shapes catch it
    broken = Graph() + g
    for ds in broken.subjects(RDF.type, DCAT.Dataset):
        broken.remove((ds, DCTERMS.description, None))
    found_broken, text_broken = _violations(broken, shapes)
    assert found_broken >= 1 and "description" in text_broken

    cat = next(g.subjects(RDF.type, DCAT.Catalog))
    assert Literal("电子证照共享目录", lang="zh") in set(g.objects(cat, DCTERMS.title))
    assert {o.language for o in g.objects(cat, DCTERMS.description)} == {"zh", "en"}
    assert (cat, DCAT.themeTaxonomy, URIRef(THEME.rstrip("/"))) in g
    ds = URIRef(f"http://testserver/v1/datasets#{DATASET}")
    assert (cat, DCAT.dataset, ds) in g
    publisher = g.value(ds, DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in g
    assert g.value(publisher, FOAF.name) == Literal("市场监督管理局", lang="zh")
    assert str(g.value(publisher, DCTERMS.identifier)) == "market_regulation"
    titles = {(str(t), t.language) for t in g.objects(ds, DCTERMS.title)}
    assert ("营业执照 (市场监督管理局)", "zh") in titles and ("Business licence (market_regulation)", "en") in titles
    assert {t.language for t in g.objects(ds, DCTERMS.description)} == {"zh", "en"}
    keywords = {str(k) for k in g.objects(ds, DCAT.keyword)}
    assert {"营业执照", "市场监督管理局", "电子证照", "Business licence"} <= keywords
    themes = set(g.objects(ds, DCAT.theme))
    assert URIRef(THEME + "ECON") in themes and all(str(t).startswith(THEME) for t in themes)
    assert all((t, RDF.type, SKOS.Concept) in g for t in themes)
    contact = g.value(ds, DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in g and str(g.value(contact, VCARD.fn)) == "市场监管局数据管理员"
    assert g.value(contact, VCARD.hasEmail) == URIRef("mailto:steward@smr.example.gov.cn")
    assert str(g.value(ds, DCTERMS.accrualPeriodicity)).endswith("/frequency/DAILY")
    assert str(g.value(ds, DCTERMS.accessRights)).endswith("/access-right/PUBLIC")
    for prop in (DCTERMS.issued, DCTERMS.modified):
        when = g.value(ds, prop)
        assert when.datatype == XSD.dateTime and when.value.tzinfo is not None, (prop, when)
    dist = g.value(ds, DCAT.distribution)
    assert g.value(dist, DCAT.accessURL) == URIRef("http://testserver/v1/holders/records")
    assert g.value(dist, DCTERMS.format) == URIRef("http://publications.europa.eu/resource/authority/file-type/JSON")
    assert g.value(dist, DCTERMS.rights) is not None

    # metadata only: no holder, licence number or record id of the published records
    text = r.content.decode("utf-8")
    with app.state.consumer.engine.connect() as c:
        rows = c.execute(sa.text("select record_id, holder_key, holder_name, licence_number from records "
                                 "where dataset_id = :d"), {"d": DATASET}).all()
    assert len(rows) > 100
    leaked = [v for row in rows for v in row if v and str(v) in text]
    assert leaked == []


def test_public_metadata_needs_no_key_is_not_audited_and_is_the_same_for_everyone(published):
    app = _app(published, rate=10_000, burst=10_000)
    access, engine = app.state.consumer.access, app.state.consumer.engine
    access.add_department("harvest-dept", "Department that also harvests")
    h = {"Authorization": f"Bearer {access.issue_credential('harvest-dept')['key']}"}
    client = TestClient(app)
    start = _audit_head(engine)
    for path in ("/v1/catalogue.jsonld", "/v1/items"):
        public = client.get(path)
        assert public.status_code == 200, (path, public.text)
        assert "no-store" not in public.headers.get("cache-control", "")
        for headers, params in (({}, {"purpose": ITEM}), (h, {}), (h, {"purpose": ITEM}),
                                ({"Authorization": "Bearer exk_not.a-key"}, {})):
            again = client.get(path, headers=headers, params=params)
            assert (again.status_code, again.json()) == (200, public.json()), (path, headers, params)
        bad = client.get(path, params={"purpose": "XX-YY-9999"})    # a purpose given is checked
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert ITEM in {i["code"] for i in client.get("/v1/items").json()}
    assert _audit_head(engine) == start                         # public reads leave no entry
    refused = client.get("/v1/datasets", params={"purpose": ITEM})   # the department's list: a key
    assert refused.status_code == 401
    assert _audit_head(engine) == start + 1


def test_public_metadata_is_rate_limited_per_client_address(published):
    app = _app(published, rate=0.001, burst=3)
    one = TestClient(app, client=("203.0.113.5", 1))
    for path in ("/v1/catalogue.jsonld", "/v1/items", "/v1/catalogue.jsonld"):
        assert one.get(path).status_code == 200
    for path in ("/v1/items", "/v1/catalogue.jsonld"):
        r = one.get(path)
        assert r.status_code == 429, (path, r.text)
        assert int(r.headers["Retry-After"]) > 0 and "203.0.113.5" in r.json()["detail"]
    other = TestClient(app, client=("203.0.113.6", 1))           # another address: its own bucket
    assert other.get("/v1/items").status_code == 200
