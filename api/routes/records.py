"""Records: the verifiable bundle and the current status."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import CallerDep, ConsumerDep, PurposeDep
from api.openapi import AUTHED, problems

router = APIRouter(prefix="/v1/records", tags=["records"], responses=problems(*AUTHED, 403, 404))
RecordId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="from a holder lookup")]


@router.get("/{record_id}/bundle", summary="the record with its audit path and signed tree head")
async def record_bundle(record_id: RecordId, caller: CallerDep, purpose: PurposeDep,
                        consumer: ConsumerDep) -> dict:
    return consumer.bundle(caller, purpose, record_id)


@router.get("/{record_id}/status", summary="valid, expired, revoked, withdrawn or superseded, since when; "
                                           "disputed while its silo rows are in quarantine")
async def record_status(record_id: RecordId, caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep,
                        version: Annotated[int | None, Query(ge=1, le=10**9)] = None,
                        leaf_hash: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None) -> dict:
    return consumer.status(caller, purpose, record_id, version, leaf_hash)
