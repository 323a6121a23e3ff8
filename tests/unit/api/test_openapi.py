"""The API's contract (api/openapi.py): /docs served by the exchange itself, never a CDN; every
/v1 route's error statuses as problem+json; the formats of purpose and holder_id stated."""
from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

BASE = "http://testserver"
PUBLIC_METADATA = {"/v1/catalogue.jsonld", "/v1/items", "/v1/federation/cosignatures"}


@pytest.fixture
def app(home):
    from api.app import create_app

    return create_app()


def test_docs_loads_every_script_and_stylesheet_from_the_exchange_itself(app):
    client = TestClient(app, base_url=BASE)
    r = client.get("/docs")
    assert r.status_code == 200
    html = r.text
    urls = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
    urls += [re.search(r'href="([^"]+)"', tag).group(1) for tag in re.findall(r"<link[^>]*>", html)
             if re.search(r'href="', tag)]
    assert any(u.endswith(".js") for u in urls) and any(u.endswith(".css") for u in urls), urls
    for url in urls:
        absolute = urljoin(BASE + "/docs", url)
        assert urlsplit(absolute).netloc == urlsplit(BASE).netloc, url      # never another host
        got = client.get(absolute)
        assert got.status_code == 200, url
        assert got.content, url
    assert "cdn" not in html.lower() and "https://" not in html
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_the_docs_page_policy_admits_only_this_origin(app):
    csp = TestClient(app).get("/docs").headers["Content-Security-Policy"]
    assert "https:" not in csp and "'self'" in csp.split("script-src")[1].split(";")[0]


def _ops(doc):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def test_every_v1_route_declares_its_errors_as_problem_details(app):
    doc = app.openapi()
    seen = set()
    for path, method, op in _ops(doc):
        errors = {int(s) for s in op["responses"] if s.startswith(("4", "5"))}
        assert errors, (method, path)
        for status in errors:
            content = op["responses"][str(status)]["content"]
            assert list(content) == ["application/problem+json"], (method, path, status)
            schema = content["application/problem+json"]["schema"]
            assert {"type", "title", "status", "detail"} <= set(schema["required"])
        if not path.startswith("/v1/") or path.startswith(("/v1/audit", "/v1/keys")):
            continue
        assert "Retry-After" in op["responses"]["429"]["headers"]
        if path in PUBLIC_METADATA:      # no key: never a 401, no security requirement
            assert errors == {400, 422, 429} and "security" not in op, (method, path)
            continue
        if path.startswith("/v1/logs/"):   # the logs: public hashes and checkpoints, a dataset may be unknown
            assert errors == {400, 404, 422, 429} and "security" not in op, (method, path)
            continue
        seen.add((method, path))
        assert {400, 401, 422, 429} <= errors, (method, path)      # behind a key and a purpose
        assert (413 in errors) == (method == "post"), (method, path)
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
        assert op["security"] == [{"HTTPBearer": []}], (method, path)
    assert ("get", "/v1/datasets") in seen and len(seen) == 16
    assert {("get", "/v1/federation/datasets"), ("post", "/v1/federation/access"),
            ("get", "/v1/federation/datasets/{dataset}/versions/{version}/{name}")} <= seen
    assert ("post", "/v1/records/{record_id}/objections") in seen and ("get", "/v1/objections/{objection_id}") in seen
    assert {("post", "/v1/subscriptions"), ("get", "/v1/notices")} <= seen
    by = {(m, p): {int(s) for s in op["responses"]} for p, m, op in _ops(doc)}
    assert {403, 404} <= by["get", "/v1/records/{record_id}/bundle"]
    assert {403, 404} <= by["post", "/v1/items/{code}/materials-check"]
    assert 403 in by["post", "/v1/holders/access-report"]
    assert {403, 404, 409, 413} <= by["post", "/v1/records/{record_id}/objections"]


def test_purpose_and_holder_id_formats_are_stated(app):
    from catalog.serving.access import CASE_RE, check_purpose
    from catalog.serving.holders import holder_key

    doc = app.openapi()
    purposes = [p for _, _, op in _ops(doc) for p in op.get("parameters", ()) if p["name"] == "purpose"]
    assert len(purposes) == 14
    pattern = re.compile(purposes[0]["schema"]["pattern"])
    for p in purposes:
        assert p["schema"]["pattern"] == pattern.pattern and p["description"]
        for example in p["schema"]["examples"]:
            assert pattern.match(example) and check_purpose(example) == example
    assert pattern.match("case:2026-0042") and CASE_RE.match("case:2026-0042")
    assert not pattern.match("XX-YY-999") and not pattern.match("case:ab")
    required = {op_path: any(p["required"] for p in op.get("parameters", ()) if p["name"] == "purpose")
                for op_path, _, op in _ops(doc)}
    assert required["/v1/items"] is required["/v1/catalogue.jsonld"] is False
    assert required["/v1/datasets"] is True
    schemas = doc["components"]["schemas"]
    for name in ("HolderQuery", "MaterialsQuery", "SubscriptionRequest"):
        field = schemas[name]["properties"]["holder_id"]
        assert "USCC" in field["description"] and "resident ID" in field["description"]
        for example in field["examples"]:
            assert holder_key(example) == example
