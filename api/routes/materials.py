"""The materials check for a service item."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CallerDep, ConsumerDep, PurposeDep
from api.openapi import AUTHED, HOLDER_ID_DOC, HOLDER_ID_EXAMPLES, problems

router = APIRouter(prefix="/v1/items", tags=["materials"], responses=problems(*AUTHED, 403, 404, 413))


class MaterialsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder_id: str = Field(min_length=1, max_length=64, description=f"the applicant: {HOLDER_ID_DOC}",
                           examples=HOLDER_ID_EXAMPLES)
    others: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=dict, max_length=8,
        description="holder ids of other parties by role: legal_representative, spouse, guardian …")


@router.post("/{code}/materials-check", summary="each required material: held, expired, revoked, "
             "not held, must be submitted or may be supplied later")
async def materials_check(code: Annotated[str, Path(pattern=r"^[A-Z]{2}-[A-Z]{2,5}-\d{4}$")],
                          q: MaterialsQuery, caller: CallerDep, purpose: PurposeDep,
                          consumer: ConsumerDep) -> dict:
    return consumer.materials(caller, purpose, code, q.holder_id, q.others)
