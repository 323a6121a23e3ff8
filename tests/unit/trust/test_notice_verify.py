"""trust/notices.py: a change notice verified offline, each numbered step refusing what it should."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from joserfc.jwk import OKPKey

from catalog.serving.notice_events import record_event
from catalog.signing.keys import PinnedSigner, public_jwk
from trust.errors import VerificationError
from trust.notices import verify_notice


class _Keys:
    """What record_event needs of a KeyStore: a detached signature by one fresh key."""

    def __init__(self):
        fresh = OKPKey.generate_key("Ed25519")
        self.key = OKPKey.import_key({**fresh.as_dict(private=True), "kid": fresh.thumbprint()})

    def sign_detached(self, body: bytes, typ: str) -> str:
        return PinnedSigner(self.key).sign_detached(body, typ)


@pytest.fixture(scope="module")
def signed():
    keys = _Keys()
    built = record_event(keys, dataset="business_licence.market_regulation", record_id="ab" * 16, version=3,
                         change="revoked", status="revoked", reason="revoked",
                         record={"record_id": "ab" * 16, "holder_name": "某某公司", "status": "revoked"},
                         fields=None, at=datetime(2026, 3, 1, 8, tzinfo=UTC))
    return built, {"keys": [public_jwk(keys.key)]}


def _step(exc) -> int:
    return exc.value.step


def test_a_notice_verifies_and_gives_its_event(signed):
    built, jwks = signed
    event = verify_notice(built.body.encode(), built.signature, jwks)
    assert event["id"] == built.event_id and event["type"] == built.type and event["specversion"] == "1.0"
    assert event["data"]["change"] == "revoked"


def test_each_step_refuses(signed):
    built, jwks = signed
    body = built.body.encode()
    with pytest.raises(VerificationError) as e:
        verify_notice(body, built.signature.replace("..", ".x."), jwks)       # not detached
    assert _step(e) == 1
    with pytest.raises(VerificationError) as e:
        verify_notice(body, built.signature, {"keys": []})                    # kid unknown
    assert _step(e) == 2
    kid = jwks["keys"][0]["kid"]
    other = {"keys": [{**public_jwk(_Keys().key), "kid": kid}]}              # same kid, other key
    with pytest.raises(VerificationError) as e:
        verify_notice(body, built.signature, other)
    assert _step(e) == 3
    with pytest.raises(VerificationError) as e:
        verify_notice(body.replace(b"revoked", b"reinstated", 1), built.signature, jwks)   # altered
    assert _step(e) == 3
