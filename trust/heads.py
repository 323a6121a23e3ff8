"""What a verifier needs to know of signed tree heads and key status documents (JWS, alg EdDSA);
signing is catalog/signing/keys.py."""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import warnings
from collections.abc import Iterator

from joserfc.errors import SecurityWarning

ALG = "EdDSA"
STH_TYP = "exchange-sth+jws"
KEY_STATUS_TYP = "exchange-key-status+jws"
CHECKPOINT_TYP = "exchange-audit-checkpoint+jws"
NOTICE_TYP = "exchange-notice+jws"
ENDORSEMENT_TYP = "exchange-key-endorsement+jws"   # a rotation: the outgoing key vouches for the new one


def rfc3339(t: dt.datetime) -> str:
    """RFC 3339 UTC to the second, like 2026-11-21T20:00:00Z. Naive datetimes are refused."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("a timestamp needs a time zone (use base.clock.now())")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def head_hash(signed_head: str) -> str:
    """Hex SHA-256 of a compact JWS tree head (its ASCII bytes)."""
    return hashlib.sha256(signed_head.encode("ascii")).hexdigest()


@contextlib.contextmanager
def eddsa_allowed() -> Iterator[None]:
    """joserfc 1.8 warns that RFC 9864 deprecates "EdDSA"; our contract names it (RFC 8037)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SecurityWarning)
        yield
