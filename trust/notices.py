"""Verifying a change notice (docs/consumer-api.md, "Subscriptions and change notices") offline,
in numbered steps:
  1. the signature is a compact JWS with its payload detached (`header..signature`, RFC 7515
     Appendix F) whose header names alg EdDSA, a kid and typ `exchange-notice+jws`;
  2. the JWKS holds that kid (an Ed25519 key);
  3. the signature verifies over exactly the body's bytes;
  4. the body is the RFC 8785 canonical JSON of a CloudEvents 1.0 event.
Returns the event."""
from __future__ import annotations

import base64
import binascii
import json
from typing import NoReturn

import rfc8785
from joserfc import jws
from joserfc.errors import JoseError

from trust.errors import VerificationError
from trust.heads import ALG, NOTICE_TYP, eddsa_allowed
from trust.verify import Json, _jwks_key

STEPS = {1: "signature well formed", 2: "key known", 3: "signature valid", 4: "canonical CloudEvent"}


def _fail(step: int, message: str) -> NoReturn:
    raise VerificationError(step, STEPS[step], message)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def verify_notice(body: bytes, signature: str, jwks: Json) -> Json:
    parts = signature.split(".") if isinstance(signature, str) else []
    if len(parts) != 3 or parts[1] or not parts[0] or not parts[2]:
        _fail(1, "the signature is not a detached compact JWS (header..signature)")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error):
        header = None
    if not isinstance(header, dict) or header.get("alg") != ALG or header.get("typ") != NOTICE_TYP:
        _fail(1, f"the signature's header is not alg {ALG}, typ {NOTICE_TYP}")
    key = _jwks_key(jwks, header.get("kid"))
    if key is None:
        _fail(2, f"no key {header.get('kid')!r} in the JWKS: fetch the current JWKS (GET /v1/keys)")
    try:
        with eddsa_allowed():
            jws.deserialize_compact(f"{parts[0]}.{_b64url(body)}.{parts[2]}", key, algorithms=[ALG])
    except (JoseError, ValueError):
        _fail(3, "the signature does not verify over the body: the notice may have been altered")
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict) or event.get("specversion") != "1.0" or rfc8785.dumps(event) != body:
        _fail(4, "the body is not the canonical JSON of a CloudEvents 1.0 event")
    return event
