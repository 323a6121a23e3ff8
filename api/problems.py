"""Errors as RFC 9457 problem details: one handler maps the domain errors by their `status`
(base/errors.py), never showing internals. Refused consumer requests are audited here."""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.actions import action_of, audited
from base.errors import ExchangeError, InvalidRequest, RateLimited
from catalog.serving.holders import holder_key

log = logging.getLogger("exchange.api")
MEDIA = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Request too large", 422: "Invalid request",
          429: "Too many requests", 500: "Internal error", 502: "Source unavailable"}
# the title people read: Chinese first, the RFC 9457 short title beside
TITLES_ZH = {400: "请求有误", 401: "未认证", 403: "无权访问", 404: "未找到", 405: "不支持该方法", 409: "与现有状态冲突",
             413: "请求过大", 422: "请求参数无效", 429: "请求过于频繁", 500: "内部错误", 502: "数据源不可用"}
UNAVAILABLE = "交换平台暂时无法应答，请稍后重试 (the exchange could not answer; try again later)"


def title(status: int) -> str:
    en = TITLES.get(status, "Error")
    return f"{TITLES_ZH[status]} ({en})" if status in TITLES_ZH else en


def problem(status: int, detail: str, headers: dict | None = None, kind: str | None = None) -> JSONResponse:
    body = {"type": f"urn:exchange:problem:{kind}" if kind else "about:blank",
            "title": title(status), "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=MEDIA, headers=headers)


HOLDER_BODIES = ("lookup", "access_report", "materials")     # actions whose body names a holder


async def _holder(request: Request, action: str) -> str | None:
    """The holder a refused request asked about (so it is in the holder's access report)."""
    if action not in HOLDER_BODIES:
        return None
    try:
        return holder_key(json.loads(await request.body()).get("holder_id"))
    except Exception:       # no body, not JSON, not a valid holder id: none to name
        return None


async def _audit_refusal(request: Request, exc: ExchangeError, status: int | None = None) -> None:
    if getattr(exc, "audited", False) or not audited(request.url.path):
        return
    consumer = getattr(request.app.state, "consumer", None)
    if consumer is None:
        return
    if status is not None:
        exc.status = status       # as answered (a request that fails validation: 422)
    caller = getattr(request.state, "caller", None)
    action = action_of(request.scope)
    try:
        consumer.refused(caller, request.query_params.get("purpose"), action, exc,
                         holder=await _holder(request, action) if caller else None)
    except Exception:          # never turn a refusal into a 500; the log says why
        log.exception("could not audit a refused request")


def install(app: FastAPI) -> None:
    @app.exception_handler(ExchangeError)
    async def exchange_error(request: Request, exc: ExchangeError):
        await _audit_refusal(request, exc)
        if exc.status >= 500:
            log.error("request failed: %s", exc)
            return problem(exc.status, UNAVAILABLE, kind=type(exc).__name__)
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimited) else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return problem(exc.status, str(exc), headers, type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}"
                          for e in exc.errors()[:5])
        await _audit_refusal(request, InvalidRequest(where), 422)
        return problem(422, f"请求参数无效 (invalid request): {where}"[:1000], kind="InvalidRequest")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return problem(exc.status_code, str(exc.detail) if exc.status_code < 500 else "error",
                       getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error")
        return problem(500, UNAVAILABLE)
