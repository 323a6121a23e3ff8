"""Replay of a department's change notices from any position (`after` = the last seq it holds)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CallerDep, ConsumerDep, PurposeDep
from api.openapi import AUTHED, problems
from catalog.serving.subscriptions import PAGE_LIMIT, Subscriptions

router = APIRouter(prefix="/v1/notices", tags=["notices"], responses=problems(*AUTHED))


@router.get("", summary="the department's notices after a cursor, in order, with their signed bodies")
async def notices(caller: CallerDep, purpose: PurposeDep, consumer: ConsumerDep,
                  after: Annotated[int, Query(ge=0, le=2**62,
                                              description="the last seq already held; 0: from the start")] = 0,
                  limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100) -> dict:
    return Subscriptions(consumer).page(caller, purpose, after, limit)
