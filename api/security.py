"""Hardening of the app (`install(app)`): its local state private (Settings.private_home),
and security headers on every response (an ASGI middleware).

Everywhere: X-Content-Type-Options nosniff, X-Frame-Options DENY. Unless a route set its own
(the dashboard's pages do, api/dashboard/render.py): Referrer-Policy no-referrer and
Content-Security-Policy `default-src 'none'; frame-ancestors 'none'` (JSON needs nothing).
Any answer to a request that carried credentials (an Authorization header or the dashboard's
cookie): Cache-Control no-store. /docs (Swagger UI) gets a CSP that lets it load what it loads,
and nothing else: its scripts and styles from this origin (api/openapi.py serves them), its
inline scripts by their SHA-256
(computed from the page served; never 'unsafe-inline' or 'unsafe-eval' for scripts), inline
styles, fetches to this origin only.
"""
from __future__ import annotations

import base64
import hashlib
import re

BASE = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"))
DEFAULTS = ((b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"))
END = "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_POLICY = {       # {scripts}: the SHA-256 of each inline script of the page served
    "/docs": "default-src 'none'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
             f"img-src 'self' data:; connect-src 'self'; {END}",
    "/docs/oauth2-redirect": f"default-src 'none'; script-src{{scripts}}; {END}",
}
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)
CREDENTIALS = (b"authorization",)


def _hashes(body: bytes) -> str:
    return "".join(" 'sha256-" + base64.b64encode(hashlib.sha256(m).digest()).decode() + "'"
                   for m in _INLINE_SCRIPT.findall(body))


def _credentialed(scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name in CREDENTIALS or (name == b"cookie" and b"exchange_dashboard=" in value):
            return True
    return False


def _merge(headers: list, credentialed: bool, csp: bytes | None = None) -> list:
    """The response's headers with ours: BASE always, DEFAULTS where the route set none, the
    docs page's CSP instead of any, no-store instead of any Cache-Control when credentialed."""
    drop = {b"cache-control"} if credentialed else set()
    if csp:
        drop.add(b"content-security-policy")
    out = [(k, v) for k, v in headers if k.lower() not in drop]
    have = {k.lower() for k, _ in out}
    ours = [*BASE, *([(b"content-security-policy", csp)] if csp else []), *DEFAULTS,
            *([(b"cache-control", b"no-store")] if credentialed else [])]
    for k, v in ours:
        if k not in have:
            out.append((k, v))
            have.add(k)
    return out


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        credentialed = _credentialed(scope)
        policy = DOCS_POLICY.get(scope.get("path", ""))
        if policy is None:
            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": _merge(list(message.get("headers", [])), credentialed)}
                await send(message)
            return await self.app(scope, receive, send_with_headers)

        start, chunks = None, []        # a docs page: small; its CSP needs its body's hashes

        async def send_buffered(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            csp = policy.format(scripts=_hashes(body)).encode()
            await send({**start, "headers": _merge(list(start.get("headers", [])), credentialed, csp)})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_buffered)


def install(app) -> None:
    """Call last in create_app: the headers middleware then wraps every other."""
    app.state.settings.private_home()
    app.add_middleware(SecurityHeaders)
