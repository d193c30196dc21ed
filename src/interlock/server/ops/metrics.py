"""Prometheus metrics: requests by route template and status, latency, build info.

With several uvicorn workers, prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set by `interlock serve --workers N`) sums every worker's samples into one scrape.
"""

from __future__ import annotations

import os
import platform
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import interlock

REQUESTS = Counter(
    "interlock_http_requests_total",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "interlock_http_request_duration_seconds",
    "HTTP request latency by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BUILD_INFO = Gauge(
    "interlock_build_info",
    "Always 1; labels carry the version.",
    ["version", "python"],
    multiprocess_mode="max",
)
BUILD_INFO.labels(interlock.__version__, platform.python_version()).set(1)

# Paths that match no route are counted under one label, and unusual methods under another,
# so scanners cannot explode the number of time series.
UNMATCHED = "<unmatched>"
OTHER_METHOD = "OTHER"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The template of the route that served this request, e.g. `/api/v1/projects/{project}`."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    # Plain Starlette routes (/docs, /openapi.json) do not say which route they are.
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        path = getattr(route, "path", None)
        if isinstance(path, str) and route.matches(scope)[0] != Match.NONE:
            return path
    return UNMATCHED


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            template = route_template(scope)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template, str(status)).observe(time.perf_counter() - started)
