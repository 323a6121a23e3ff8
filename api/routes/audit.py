"""The audit log's signed checkpoints: public like the JWKS, so anyone can hold one and later
check that the log only grew (`exchange audit-verify --checkpoint FILE`)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.openapi import problems
from catalog.serving.audit_checkpoints import published

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problems(422))


@router.get("/checkpoints", summary="signed checkpoints of the access audit chain, newest first "
            "(size, head hash, time, JWS); `more` says older ones remain: ask again with before=next_before")
async def checkpoints(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> dict:
    return published(request.app.state.consumer.engine, limit, before)
