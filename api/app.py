"""The consumer API: `create_app()`; `exchange serve` runs it under uvicorn."""
from __future__ import annotations

from fastapi import FastAPI

from api import auditing, dashboard, openapi, problems, rate_store, security
from api.limits import BodyLimit, RateLimiter
from api.rate_store import RedisBuckets
from api.request_metrics import RequestMetrics, RequestMetricsMiddleware
from api.routes import (
    audit,
    catalogue,
    federation,
    holders,
    keys,
    logs,
    materials,
    metrics,
    notices,
    objections,
    records,
    subscriptions,
)
from base.settings import get_settings
from catalog.ledger.service import Ledger
from catalog.service import Catalog
from catalog.serving.access import Access
from catalog.serving.consumer import Consumer
from catalog.serving.federation import FederationService


def create_app(settings=None, *, rate: float | None = None, burst: int | None = None,
               cache_ttl: float | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Exchange consumer API", version="1", docs_url=None, redoc_url=None,
                  description="Purpose-bound lookups of verifiable licence records; every request "
                              "is audited. Errors are RFC 9457 problem details.")
    cat = Catalog(settings.catalog_url, settings.store, pre_ping=False)
    ttl = cache_ttl if cache_ttl is not None else settings.api_cache_ttl
    app.state.settings = settings
    app.state.consumer = Consumer(cat, Access(cat.engine, ttl))
    app.state.federation = FederationService(cat, app.state.consumer.access, log_origin=settings.log_origin)
    app.state.ledger = Ledger(settings.catalog_url, pre_ping=False)     # the dashboard's runs
    app.state.limiter = _limiter(settings, rate or settings.api_rate, burst or settings.api_burst)
    problems.install(app)
    openapi.install_docs(app)     # /docs: Swagger UI from this exchange, never a CDN (no /redoc: it needs one)
    for module in (holders, records, objections, materials, catalogue, subscriptions, notices, keys, logs, audit,
                   metrics, federation):
        app.include_router(module.router)
    dashboard.install(app)        # /dashboard: pages for people (hidden from the OpenAPI schema)
    _install_auditing(app, cat.engine, settings)
    security.install(app)         # private state; security headers on every response
    app.state.request_metrics = RequestMetrics()     # outermost: every request counted, 413s too
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.request_metrics)
    return app


def _limiter(settings, rate: float, burst: int) -> RateLimiter:
    """Buckets in Redis shared by every API host (EXCHANGE_API_RATE_STORE), else this host's own
    (across the workers of `serve --workers N`: EXCHANGE_API_BUCKETS, which `serve` sets)."""
    store = None
    if settings.api_rate_store:
        store = RedisBuckets(rate_store.client(settings.api_rate_store), settings.api_rate_prefix, rate, burst)
    return RateLimiter(rate, burst, settings.api_buckets, store)


def _install_auditing(app: FastAPI, engine, settings) -> None:
    """The body cap inside the audit middleware, so that a 413 is audited too."""
    app.add_middleware(BodyLimit)
    auditing.install(app, engine, settings.api_audit_inline, settings.api_refusal_window)
