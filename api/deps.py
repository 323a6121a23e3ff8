"""Typed dependencies: the services, the authenticated caller, the stated purpose."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from base.errors import Unauthenticated
from catalog.serving.access import Caller, check_purpose
from catalog.serving.consumer import Consumer

bearer = HTTPBearer(auto_error=False, description="an exchange key: `exk_<key id>.<secret>`")


async def get_consumer(request: Request) -> Consumer:
    return request.app.state.consumer


async def get_caller(request: Request,
                     cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    consumer: Consumer = request.app.state.consumer
    try:
        caller = consumer.access.authenticate(cred.credentials if cred else None)
    except Unauthenticated:     # refusals are audited too: limit them per client address
        request.app.state.limiter.take(f"unauthenticated:{request.client.host if request.client else '-'}")
        raise
    request.state.caller = caller
    request.app.state.limiter.take(caller.department)
    return caller


async def get_purpose(purpose: Annotated[str, Query(
        min_length=1, max_length=70,
        description="why you ask: a service-item code (GET /v1/items) or a case number `case:NUMBER`")]) -> str:
    return check_purpose(purpose)


ConsumerDep = Annotated[Consumer, Depends(get_consumer)]
CallerDep = Annotated[Caller, Depends(get_caller)]
PurposeDep = Annotated[str, Depends(get_purpose)]
