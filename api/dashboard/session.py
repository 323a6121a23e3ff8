"""Dashboard sessions: an HttpOnly, SameSite=Strict cookie holding a session token until a
time, signed with HMAC-SHA256; the session itself lives in the catalogue
(catalog/serving/dashboard_sessions.py), so a logout ends it in every worker. The same kind of signed
value, scoped to one run and bound to the session, goes in Data Docs URLs; and a pre-session
cookie binds the login form's CSRF token. The secret is EXCHANGE_DASHBOARD_SECRET, else random
per process (then sessions end when the server restarts; `serve --workers N` makes one for all).

CSRF: every form that posts (login, logout) carries a token, an HMAC of the (pre-)session, and a
POST is refused unless its Origin (or, without one, its Referer) is the dashboard's own."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from base.errors import ConfigError

COOKIE = "exchange_dashboard"
LOGIN_COOKIE = "exchange_dashboard_login"     # the pre-session: binds the login form's token
TTL = 8 * 3600
LOGIN_TTL = 3600


def load_secret(value: str | None) -> bytes:
    """The signing secret from EXCHANGE_DASHBOARD_SECRET (Settings.dashboard_secret), else a
    random one for this process."""
    if value is None:
        return secrets.token_bytes(32)
    if len(value) < 32 or value.strip().lower() in {"changeme", "secret", "password"}:
        raise ConfigError("EXCHANGE_DASHBOARD_SECRET signs dashboard sessions: set it to at least "
                          "32 random characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return value.encode()


def _mac(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def make(secret: bytes, key_id: str, scope: str = "session", ttl: int = TTL, now: float | None = None) -> str:
    """base64url(scope|key_id|expires) + "." + hex HMAC. The scope keeps a token for one run's
    Data Docs from passing as a session, and one run's from opening another's."""
    expires = int((now or time.time()) + ttl)
    payload = base64.urlsafe_b64encode(f"{scope}|{key_id}|{expires}".encode()).decode().rstrip("=")
    return f"{payload}.{_mac(secret, payload.encode())}"


def read(secret: bytes, value: str | None, scope: str = "session", now: float | None = None) -> str | None:
    """The key id of a genuine, unexpired value made for `scope`; else None."""
    if not value or value.count(".") != 1 or len(value) > 300:
        return None
    payload, mac = value.split(".")
    if not hmac.compare_digest(mac, _mac(secret, payload.encode())):
        return None
    try:
        made_for, key_id, expires = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("|")
        expires_at = int(expires)
    except ValueError:
        return None
    return key_id if made_for == scope and expires_at > (now or time.time()) else None


def csrf_token(secret: bytes, bound_to: str) -> str:
    """The token a form carries, bound to one (pre-)session value."""
    return _mac(secret, f"csrf|{bound_to}".encode())


def csrf_ok(secret: bytes, bound_to: str | None, given: str | None) -> bool:
    return bool(bound_to and given) and hmac.compare_digest(csrf_token(secret, bound_to), given)


def _origin(scheme: str, netloc: str) -> str:
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return f"{scheme}://{netloc.lower().removesuffix(default) if default else netloc.lower()}"


def same_origin(request) -> bool:
    """The POST came from a page of this dashboard: its Origin, or without one its Referer."""
    own = _origin(request.url.scheme, request.url.netloc)
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        return origin != "null" and _origin(parts.scheme, parts.netloc) == own
    referer = urlsplit(request.headers.get("referer") or "")
    return bool(referer.netloc) and _origin(referer.scheme, referer.netloc) == own
