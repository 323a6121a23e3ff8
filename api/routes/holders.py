"""Holders: their records, and who looked at them. Holder ids travel in the body, not the URL
(URLs end up in access logs)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep, ConsumerDep, PurposeDep
from api.openapi import AUTHED, HOLDER_ID_DOC, HOLDER_ID_EXAMPLES, problems

router = APIRouter(prefix="/v1/holders", tags=["holders"], responses=problems(*AUTHED, 413))


class HolderQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder_id: str = Field(min_length=1, max_length=64, description=f"the holder: {HOLDER_ID_DOC}",
                           examples=HOLDER_ID_EXAMPLES)


@router.post("/records", summary="records held for a holder (only datasets you may see)",
             response_model=dict)
async def holder_records(q: HolderQuery, caller: CallerDep, purpose: PurposeDep,
                         consumer: ConsumerDep) -> JSONResponse:
    # the hot path: plain JSON values, rendered once (no response-model pass over them)
    return JSONResponse(consumer.lookup(caller, purpose, q.holder_id))


@router.post("/access-report", summary="who looked at this holder's records, when and why (auditors); "
             "newest first, a page at a time: `more` says older entries remain, ask again with "
             "before=next_before", responses=problems(403))
async def access_report(q: HolderQuery, caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep,
                        limit: Annotated[int, Query(ge=1, le=500)] = 500,
                        before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> dict:
    return consumer.access_report(caller, purpose, q.holder_id, limit, before)
