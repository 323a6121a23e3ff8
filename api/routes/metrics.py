"""GET /metrics: the exchange's state for Prometheus (catalog/ledger/metrics.py), behind its own
bearer token (EXCHANGE_METRICS_TOKEN), never a department's key; off while no token is set."""
from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.openapi import problems
from base.errors import NotFound, Unauthenticated
from catalog.ledger.metrics import CONTENT_TYPE, exposition

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="sources and datasets in Prometheus' text format (bearer: EXCHANGE_METRICS_TOKEN)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
                                                **problems(401, 404)})
def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if not token:
        raise NotFound("指标接口未开启 (metrics off): set EXCHANGE_METRICS_TOKEN to serve /metrics")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        request.app.state.limiter.take(f"metrics:{request.client.host if request.client else '-'}")
        raise Unauthenticated("指标接口需要令牌 (metrics token required): "
                              "Authorization: Bearer <EXCHANGE_METRICS_TOKEN>")
    body = exposition(request.app.state.ledger, None, *request.app.state.request_metrics.collectors())
    return Response(body, media_type=CONTENT_TYPE)
