"""Objections (数据异议): a department follows its own objections to shared records."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import CallerDep, ConsumerDep, PurposeDep
from api.openapi import AUTHED, problems

router = APIRouter(prefix="/v1/objections", tags=["records"], responses=problems(*AUTHED, 404))


@router.get("/{objection_id}", summary="one of your department's objections: its state, deadline and outcome")
async def objection(objection_id: Annotated[int, Path(ge=1, le=2**31 - 1)], caller: CallerDep,
                    purpose: PurposeDep, consumer: ConsumerDep) -> dict:
    return consumer.objection(caller, purpose, objection_id)
