"""Dashboard sessions: an HttpOnly, SameSite=Strict cookie naming an auditor's key id until a
time, signed with HMAC-SHA256; the same kind of token, scoped to one run, in Data Docs URLs. The secret is EXCHANGE_DASHBOARD_SECRET, else random per
process (then sessions end when the server restarts, and every worker needs the variable)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time

from exchange.errors import ConfigError

COOKIE = "exchange_dashboard"
TTL = 8 * 3600


def load_secret() -> bytes:
    value = os.environ.get("EXCHANGE_DASHBOARD_SECRET")
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
