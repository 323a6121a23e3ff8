"""How an HTTP silo is authenticated: bearer token, API key header, or an HMAC signature.

HMAC: `X-Signature: hex(HMAC-SHA256(secret, message))` where the message is the request
body, or for a request without a body (GET) its path and query string.
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

import requests


def signed_message(method: str, url: str, body: bytes | str | None) -> bytes:
    if body:
        return body.encode() if isinstance(body, str) else body
    parts = urlsplit(url)
    return (parts.path + ("?" + parts.query if parts.query else "")).encode()


def signature(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Bearer(requests.auth.AuthBase):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r


class ApiKey(requests.auth.AuthBase):
    def __init__(self, key: str, header: str):
        self._key, self.header = key, header

    def __call__(self, r):
        r.headers[self.header] = self._key
        return r


class Hmac(requests.auth.AuthBase):
    def __init__(self, secret: str, header: str):
        self._secret, self.header = secret, header

    def __call__(self, r):
        r.headers[self.header] = signature(self._secret, signed_message(r.method, r.url, r.body))
        return r


def make_auth(kind: str, secret: str | None, header: str | None):
    if kind == "none":
        return None
    if not secret:
        raise ValueError(f"auth {kind!r} needs a secret (the connection's password)")
    if kind == "bearer":
        return Bearer(secret)
    if kind == "api_key":
        return ApiKey(secret, header or "X-API-Key")
    return Hmac(secret, header or "X-Signature")
