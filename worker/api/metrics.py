"""The HTTP API's own Prometheus metrics, at ``GET /metrics`` of each API process (no key,
like ``/healthz``: counts by route, nothing of any caller's).

::

    runner_api_requests_total{method, route, status}    requests answered
    runner_api_request_seconds{method, route}           time to the answer's headers

``route`` is the route's template (``/v1/submissions/{sid}``), never the path asked for, so an
id or a scan of random paths adds no series; a path no route serves is ``unmatched``. The time
runs to the response's headers, not its end: an event stream stays open for minutes by
design, a ``?wait=S`` submission is counted with its wait. A pure ASGI middleware (no
``BaseHTTPMiddleware``, which would buffer event streams), installed by
:func:`instrument` in one line of :func:`worker.api.routes.create_app`.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# an answer from Redis takes about a millisecond; ?wait holds a request for up to a minute
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class Measured:
    """Counts each HTTP request by method, route template and status, and times it to its
    headers."""

    def __init__(self, app: ASGIApp, requests: Counter, seconds: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = 500  # what the server answers when the app fails before any headers
        timed = False

        def timing() -> None:
            nonlocal timed
            if not timed:
                timed = True
                elapsed = time.perf_counter() - started
                self.seconds.labels(method, route_of(scope)).observe(elapsed)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                timing()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            timing()
            self.requests.labels(method, route_of(scope), str(status)).inc()


def route_of(scope: Scope) -> str:
    """The template of the route that served ``scope`` (the router records it there)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def instrument(app: FastAPI) -> CollectorRegistry:
    """Count and time every request of ``app`` and serve the figures at ``GET /metrics``;
    the registry is the app's own (one per API process, as Prometheus scrapes each)."""
    registry = CollectorRegistry()
    requests = Counter(
        "runner_api_requests",
        "HTTP requests answered, by method, route template and status",
        ["method", "route", "status"],
        registry=registry,
    )
    seconds = Histogram(
        "runner_api_request_seconds",
        "Time from a request's arrival to its answer's headers, by method and route template",
        ["method", "route"],
        buckets=SECONDS,
        registry=registry,
    )
    app.add_middleware(Measured, requests=requests, seconds=seconds)

    async def exposition() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", exposition, methods=["GET"], include_in_schema=False)
    return registry
