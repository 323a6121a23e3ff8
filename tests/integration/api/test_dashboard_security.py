"""Dashboard sessions live in the catalogue (a logout ends one in every worker process); the
login and logout forms carry a token bound to the (pre-)session and are refused from another
origin; API JSON, /docs and the dashboard carry security headers."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

ORIGIN = "http://testserver"
ITEM = "DJ-SCJG-0003"


@pytest.fixture(scope="module")
def keys(published):
    from catalog.db.engine import engine_for
    from catalog.serving.access import Access

    access = Access(engine_for(published.catalog_url), 0)
    access.add_department("audit-sec", "审计局", role="auditor")
    access.add_department("consumer-sec", "税务局")
    return {"auditor": access.issue_credential("audit-sec")["key"],
            "consumer": access.issue_credential("consumer-sec")["key"]}


@pytest.fixture
def apps(published, monkeypatch):
    """Two instances of the app on one catalogue, as two worker processes are."""
    from api.app import create_app

    shared = dataclasses.replace(published, dashboard_secret=secrets.token_urlsafe(32))
    made = [create_app(shared, rate=10_000, burst=10_000, cache_ttl=0) for _ in range(2)]
    clients = [TestClient(a) for a in made]
    for c in clients:
        c.__enter__()
    yield clients
    for c in clients:
        c.__exit__(None, None, None)


def _token(html: str) -> str | None:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    return m.group(1) if m else None


def _login(client, key, headers=None, token="from-form"):
    form = client.get("/dashboard/login")
    data = {"key": key, "next": "/dashboard/audit"}
    token = _token(form.text) if token == "from-form" else token
    if token is not None:
        data["csrf"] = token
    return client.post("/dashboard/login", data=data, follow_redirects=False,
                       headers={"Origin": ORIGIN} if headers is None else headers)


def _logout(client, headers=None, token="from-page"):
    page = client.get("/dashboard/audit")
    data = {}
    token = _token(page.text) if token == "from-page" else token
    if token is not None:
        data["csrf"] = token
    return client.post("/dashboard/logout", data=data, follow_redirects=False,
                       headers={"Origin": ORIGIN} if headers is None else headers)


def _opens_audit(app_client, cookie: str) -> bool:
    with TestClient(app_client.app, cookies={"exchange_dashboard": cookie}) as c:
        r = c.get("/dashboard/audit", follow_redirects=False)
    return r.status_code == 200


def test_a_logged_out_session_is_refused_by_every_worker(apps, keys):
    one, two = apps
    assert _login(one, keys["auditor"]).status_code == 303
    cookie = one.cookies.get("exchange_dashboard")
    assert _opens_audit(one, cookie) and _opens_audit(two, cookie)   # one session, any worker
    assert _logout(one).status_code == 303
    assert not _opens_audit(one, cookie), "the same cookie still opens the audit after logout"
    assert not _opens_audit(two, cookie), "another worker still honours the logged-out cookie"


def test_login_needs_the_forms_token_and_a_same_origin_post(apps, keys):
    client = apps[0]
    refused = {
        "no token": _login(client, keys["auditor"], token=None),
        "a made-up token": _login(client, keys["auditor"], token="x" * 43),
        "another origin": _login(client, keys["auditor"], headers={"Origin": "https://evil.example"}),
        "an opaque origin": _login(client, keys["auditor"], headers={"Origin": "null"}),
        "no origin, no referer": _login(client, keys["auditor"], headers={}),
        "a foreign referer": _login(client, keys["auditor"], headers={"Referer": "https://evil.example/x"}),
    }
    assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 403)
    assert all("set-cookie" not in r.headers or "exchange_dashboard=" not in r.headers["set-cookie"]
               for r in refused.values())
    assert "exchange_dashboard" not in client.cookies
    with TestClient(client.app) as other:                       # a token from someone else's form
        stolen = _token(other.get("/dashboard/login").text)
    assert _login(client, keys["auditor"], token=stolen).status_code == 403
    ok = _login(client, keys["auditor"], headers={"Referer": f"{ORIGIN}/dashboard/login"})
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/audit"


def test_logout_needs_the_sessions_token(apps, keys):
    client = apps[0]
    assert _login(client, keys["auditor"]).status_code == 303
    cookie = client.cookies.get("exchange_dashboard")
    assert _logout(client, token=None).status_code == 403
    assert _logout(client, headers={"Origin": "https://evil.example"}).status_code == 403
    assert _opens_audit(client, cookie)                             # still logged in
    assert _logout(client).status_code == 303
    assert not _opens_audit(client, cookie)


BASE = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


def _csp(r) -> dict[str, list[str]]:
    out = {}
    for part in r.headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def test_api_json_docs_and_dashboard_carry_security_headers(apps, keys):
    client = apps[0]
    auth = {"Authorization": f"Bearer {keys['consumer']}"}
    responses = {
        "openapi": client.get("/openapi.json"), "health": client.get("/health"),
        "jwks": client.get("/.well-known/jwks.json"),
        "datasets": client.get("/v1/datasets", params={"purpose": ITEM}, headers=auth),
        "refused": client.get("/v1/datasets", params={"purpose": ITEM}),
        "docs": client.get("/docs"),
        "login": client.get("/dashboard/login"),
    }
    for name, r in responses.items():
        assert {k: r.headers.get(k) for k in BASE} == BASE, name
        assert _csp(r)["frame-ancestors"] == ["'none'"], name
    for name in ("openapi", "health", "jwks", "datasets", "refused", "docs"):
        assert responses[name].headers["Referrer-Policy"] == "no-referrer", name
    for name in ("openapi", "health", "jwks", "datasets", "refused"):
        assert _csp(responses[name])["default-src"] == ["'none'"], name
    assert responses["datasets"].status_code == 200
    assert responses["datasets"].headers["Cache-Control"] == "no-store"     # an authenticated answer
    assert _login(client, keys["auditor"]).status_code == 303
    assert client.get("/dashboard/audit").headers["Cache-Control"] == "no-store"


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _origin(url: str) -> str:
    """A URL's origin as a CSP source: 'self' for one on this origin (/docs serves its own)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"


def test_no_api_docs_page_needs_a_network_beyond_the_exchange(apps):
    """/docs loads only from this origin; /redoc (ReDoc needs a CDN) is not served at all."""
    assert apps[0].get("/redoc").status_code == 404
    html = apps[0].get("/docs").text
    assert re.findall(r'(?:src|href)="(https?://[^"]+)"', html) == []


@pytest.mark.parametrize("path", ["/docs"])
def test_the_docs_pages_csp_admits_exactly_what_they_load(apps, path):
    r = apps[0].get(path)
    csp = _csp(r)
    html = r.text
    inline = re.findall(r"<script>(.*?)</script>", html, re.S)
    for body in inline:
        assert _hash(body) in csp["script-src"]
    for src in re.findall(r'<script src="([^"]+)"', html):
        assert _origin(src) in csp["script-src"]
    sheets = [re.search(r'href="([^"]+)"', tag).group(1) for tag in re.findall(r"<link[^>]*>", html)
              if 'rel="stylesheet"' in tag]
    assert sheets
    for href in sheets:
        assert _origin(href) in csp["style-src"]
    assert "'unsafe-eval'" not in csp["script-src"] and "'unsafe-inline'" not in csp["script-src"]
    assert csp["connect-src"] == ["'self'"] and csp["default-src"] == ["'none'"]
