"""The consumer API: `create_app()`; `exchange serve` runs it under uvicorn."""
from __future__ import annotations

import os

from fastapi import FastAPI

from api import auditing, dashboard, problems, security
from api.limits import BodyLimit, RateLimiter
from api.routes import audit, catalogue, holders, keys, materials, records


def create_app(settings=None, *, rate: float | None = None, burst: int | None = None,
               cache_ttl: float | None = None) -> FastAPI:
    from catalog.access import Access
    from catalog.consumer import Consumer
    from catalog.service import Catalog
    from base.settings import get_settings

    settings = settings or get_settings()
    app = FastAPI(title="Exchange consumer API", version="1",
                  description="Purpose-bound lookups of verifiable licence records; every request "
                              "is audited. Errors are RFC 9457 problem details.")
    cat = Catalog(settings.catalog_url, settings.store_dir, pre_ping=False)
    ttl = cache_ttl if cache_ttl is not None else float(os.environ.get("EXCHANGE_API_CACHE_TTL", "2"))
    app.state.settings = settings
    app.state.consumer = Consumer(cat, Access(cat.engine, ttl))
    app.state.limiter = RateLimiter(rate or float(os.environ.get("EXCHANGE_API_RATE", "50")),
                                    burst or int(os.environ.get("EXCHANGE_API_BURST", "100")),
                                    os.environ.get("EXCHANGE_API_BUCKETS"))   # set by `serve --workers N`
    problems.install(app)
    for module in (holders, records, materials, catalogue, keys, audit):
        app.include_router(module.router)
    dashboard.install(app)        # /dashboard: pages for people (hidden from the OpenAPI schema)
    _install_auditing(app, cat.engine)
    security.install(app)         # private state; security headers on every response
    return app


def _install_auditing(app: FastAPI, engine) -> None:
    """The body cap inside the audit middleware, so that a 413 is audited too."""
    app.add_middleware(BodyLimit)
    inline = os.environ.get("EXCHANGE_API_AUDIT_INLINE")
    auditing.install(app, engine, None if inline is None else inline == "1")
