"""API requests and their latency by route and outcome, for GET /metrics (an ASGI middleware).

One API process: the app's own registry. `exchange serve --workers N`: every worker writes to
prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, which `serve` sets) and
/metrics adds them up, whichever worker answers."""
from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class RequestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("exchange_api_requests", "API 请求数 (API requests) by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("exchange_api_request_duration_seconds",
                                 "API 请求耗时 (API request latency) by route and method, in seconds",
                                 ["route", "method"], registry=self.registry)

    def collectors(self) -> list:
        """What /metrics reports of requests: every worker's (multiprocess) or this process's."""
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, directory)
            return [registry]
        return [self.registry]

    def observe(self, scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        name = getattr(route, "path", None) or "unmatched"     # the template, never the raw path
        self.requests.labels(name, scope.get("method", ""), str(status)).inc()
        self.latency.labels(name, scope.get("method", "")).observe(seconds)


class RequestMetricsMiddleware:
    def __init__(self, app, metrics: RequestMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(scope, status, time.perf_counter() - start)
