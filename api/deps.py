"""Typed dependencies: the services, the authenticated caller, the stated purpose."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.actions import action_of
from base.errors import AccessDenied, Unauthenticated
from catalog.serving.access import CASE_RE, Caller, check_purpose
from catalog.serving.consumer import Consumer
from schemas.items import CODE_RE

bearer = HTTPBearer(auto_error=False, description="an exchange key: `exk_<key id>.<secret>`")


async def get_consumer(request: Request) -> Consumer:
    return request.app.state.consumer


def _authenticate(request: Request, cred: HTTPAuthorizationCredentials | None) -> Caller:
    consumer: Consumer = request.app.state.consumer
    try:
        caller = consumer.access.authenticate(cred.credentials if cred else None)
    except Unauthenticated:     # refusals are audited too: limit them per client address
        request.app.state.limiter.take(f"unauthenticated:{request.client.host if request.client else '-'}")
        raise
    request.state.caller = caller
    request.app.state.limiter.take(caller.department)
    return caller


async def get_caller(request: Request,
                     cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """A consuming (or auditing) department: a peer exchange's key answers /v1/federation/* only."""
    caller = _authenticate(request, cred)
    if caller.role == "exchange":
        raise AccessDenied(f"交换平台密钥仅用于联邦接口 (peer exchange key): department {caller.department} is a "
                           "peer exchange (role exchange); its key is good for /v1/federation/* only")
    return caller


async def get_peer(request: Request,
                   cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """A peer exchange department (role exchange); others are refused (audited) by the service."""
    caller = _authenticate(request, cred)
    request.app.state.federation.require_peer(caller, action_of(request.scope))
    return caller


async def public_read(request: Request) -> None:
    """A public metadata read: no key needed (one sent is not looked at), a token bucket per
    client address, not audited (api/auditing.py PUBLIC_PATHS)."""
    host = request.client.host if request.client else "-"
    request.app.state.limiter.take(f"public:{host}", f"address {host} (public metadata)")


# The purpose's format, stated in the OpenAPI only: check_purpose enforces it (a 400 that names
# the rule, audited), so the schema's pattern is no validation of FastAPI's own (that would be a 422)
PURPOSE_PATTERN = f"^({CODE_RE.pattern.strip('^$')}|{CASE_RE.pattern.strip('^$')})$"
PURPOSE_DOC = dict(
    min_length=1, max_length=70,
    description="why you ask: a service-item code listed by GET /v1/items (`XX-XXXX-0000`: two "
                "capitals, 2-5 capitals, 4 digits) or a case number `case:NUMBER` (NUMBER: 4-64 of "
                "A-Z a-z 0-9 . _ / -, starting with a letter or digit); anything else is a 400",
    json_schema_extra={"pattern": PURPOSE_PATTERN, "examples": ["DJ-SCJG-0003", "case:2026-0042"]})


async def get_purpose(purpose: Annotated[str, Query(**PURPOSE_DOC)]) -> str:
    return check_purpose(purpose)


async def get_optional_purpose(purpose: Annotated[str | None, Query(**PURPOSE_DOC)] = None) -> str | None:
    """A purpose that may be left out (public lists); when given, checked like any."""
    return None if purpose is None else check_purpose(purpose)


ConsumerDep = Annotated[Consumer, Depends(get_consumer)]
CallerDep = Annotated[Caller, Depends(get_caller)]
PeerDep = Annotated[Caller, Depends(get_peer)]
PurposeDep = Annotated[str, Depends(get_purpose)]
PublicDep = Depends(public_read)
OptionalPurposeDep = Annotated[str | None, Depends(get_optional_purpose)]
