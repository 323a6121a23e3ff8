"""A change notice as a signed CloudEvents 1.0 JSON document (docs/consumer-api.md,
"Subscriptions and change notices").

The body is the RFC 8785 canonical JSON of the structured CloudEvent (built with the
`cloudevents` package); its signature a compact JWS with detached payload (RFC 7515 Appendix F)
over exactly those bytes, EdDSA with the exchange's active key, verifiable against the JWKS at
GET /v1/keys. The event id is a digest of what the event says, so the same change seen through
the same fields is one event (and one idempotency key) however often it is fanned out.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import rfc8785
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from catalog.serving.access import STATUS_SOURCES
from trust.heads import NOTICE_TYP

TYPE_PREFIX = "cn.gov.exchange."
SIGNATURE_TYP = NOTICE_TYP       # trust/notices.py verifies it
CHANGED = "changed"       # the change under a grant that does not cover the record's status


class Signer(Protocol):
    """catalog.signing.keys.KeyStore, or its `pinned()` signer for a whole pass."""
    def sign_detached(self, body: bytes, typ: str) -> str: ...


@dataclass(frozen=True)
class Built:
    event_id: str
    type: str
    body: str
    signature: str


def view_of(fields: frozenset[str] | None) -> list[str] | str:
    return "*" if fields is None else sorted(fields)


def event_id(*parts) -> str:
    """64 hex: SHA-256 of the RFC 8785 bytes of what identifies the event."""
    return hashlib.sha256(rfc8785.dumps(list(parts))).hexdigest()


def _time(t: datetime) -> datetime:
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).replace(microsecond=0)


def _sign(keys: Signer, eid: str, type_: str, source: str, subject: str, at: datetime, data: dict) -> Built:
    event = CloudEvent(attributes={"specversion": "1.0", "id": eid, "source": source, "type": type_,
                                   "subject": subject, "time": _time(at),
                                   "datacontenttype": "application/json"}, data=data)
    body = rfc8785.dumps(json.loads(JSONFormat().write(event))).decode("utf-8")
    return Built(eid, type_, body, keys.sign_detached(body.encode("utf-8"), SIGNATURE_TYP))


def record_event(keys: Signer, *, dataset: str, record_id: str, version: int, change: str,
                 status: str | None, reason: str | None, record: dict, fields: frozenset[str] | None,
                 at: datetime) -> Built:
    """The notice of one record's change as seen through `fields` (None: every field): only the
    granted fields, the others named in `withheld`; under a grant that does not cover both status
    and valid_to the change is told as `changed`, without status or reason."""
    withheld = sorted(k for k in record if k != "record_id" and fields is not None and k not in fields)
    if fields is not None and not STATUS_SOURCES <= fields:
        change, status, reason = CHANGED, None, None
    eid = event_id("record", dataset, record_id, version, change, view_of(fields))
    data = {"record_id": record_id, "dataset": dataset, "version": version, "change": change,
            "status": status, "reason": reason, "disclosure": "partial" if withheld else "full",
            "withheld": withheld,
            "record": {k: v for k, v in record.items() if k == "record_id" or fields is None or k in fields},
            "links": {"bundle": f"/v1/records/{record_id}/bundle", "status": f"/v1/records/{record_id}/status"}}
    return _sign(keys, eid, f"{TYPE_PREFIX}record.{change}", f"/v1/datasets/{dataset}", record_id, at, data)


def objection_event(keys: Signer, *, objection_id: int, record_id: str, dataset: str, state: str,
                    resolution: str | None, corrected_version: int | None, resolved_at: datetime,
                    at: datetime) -> Built:
    """The outcome of a department's objection (corrected | upheld), told to the objector."""
    eid = event_id("objection", objection_id, state)
    data = {"objection": objection_id, "record_id": record_id, "dataset": dataset, "state": state,
            "resolution": resolution, "corrected_version": corrected_version,
            "resolved_at": _time(resolved_at).isoformat().replace("+00:00", "Z"),
            "links": {"bundle": f"/v1/records/{record_id}/bundle", "status": f"/v1/records/{record_id}/status"}}
    return _sign(keys, eid, f"{TYPE_PREFIX}objection.{state}", f"/v1/datasets/{dataset}", record_id, at, data)
