"""Records: the verifiable bundle and the current status."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep, ConsumerDep, PurposeDep
from api.openapi import AUTHED, problems

router = APIRouter(prefix="/v1/records", tags=["records"], responses=problems(*AUTHED, 403, 404))
RecordId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="from a holder lookup")]


@router.get("/{record_id}/bundle", summary="the record with its audit path and signed tree head")
async def record_bundle(record_id: RecordId, caller: CallerDep, purpose: PurposeDep,
                        consumer: ConsumerDep) -> dict:
    return consumer.bundle(caller, purpose, record_id)


@router.get("/{record_id}/status", summary="valid, expired, revoked, withdrawn or superseded, since when; "
                                           "disputed while its silo rows are in quarantine or an objection is open")
async def record_status(record_id: RecordId, caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep,
                        version: Annotated[int | None, Query(ge=1, le=10**9)] = None,
                        leaf_hash: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None) -> dict:
    return consumer.status(caller, purpose, record_id, version, leaf_hash)


class ObjectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="what is wrong with the record",
                        examples=["持证人姓名有误：应为“张伟”（the holder's name is wrong）"])
    evidence: str | None = Field(None, max_length=16 * 1024,
                                 description="optional text backing the objection (at most 16 KB; the whole "
                                             "request body at most 16 KiB): a document number, a link, a note")


@router.post("/{record_id}/objections", status_code=201, responses=problems(409, 413),
             summary="object to the record (数据异议): it shows as disputed until the source's steward "
                     "corrects it at the source or upholds it")
async def file_objection(record_id: RecordId, body: ObjectionBody, caller: CallerDep, purpose: PurposeDep,
                         consumer: ConsumerDep) -> dict:
    return consumer.file_objection(caller, purpose, record_id, body.reason, body.evidence)
