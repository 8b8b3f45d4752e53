"""The HTTP API as an ASGI app (FastAPI): ``runner api`` serves it with uvicorn.

::

    POST   /v1/submissions[?wait=S|true]  a submission (contract 1.1, plus callback_url) ->
                                          202 {id, ...}; with wait, 200 and the result once
                                          final; once per Idempotency-Key
    POST   /v1/submissions/batch          up to 20 submissions, each answered apart
    GET    /v1/submissions[?limit&before] the key's submissions, newest first, a page at a time
    GET    /v1/submissions/{id}           state, tests finished so far, the result, the webhook
    DELETE /v1/submissions/{id}           cancel: tests not yet started end SK
    GET    /v1/submissions/{id}/events    server-sent events: one per finished test, then the
                                          result
    POST   /v1/submissions/{id}/webhook/resend   its webhook sent again (the same event)
    GET    /v1/languages                  the language registry, with the operator's limits
    GET    /healthz, /readyz              alive; Redis reachable and a worker alive
    GET    /openapi.json, /openapi-3.0.json   the OpenAPI document, 3.1 and 3.0
    GET    /                              the playground page (shipped in the package, no CDN)

Every answer carries ``Request-Id`` (the client's, or a new one; also in the API's log lines),
the keyed ones the ``RateLimit`` header fields, and every error is ``{"error": {"code",
"message"}}`` (docs/api.md lists them all), unknown routes and methods included.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bound_contextvars

from worker.api import openapi
from worker.api.metrics import instrument
from worker.api.models import (
    ErrorBody,
    LanguageInfo,
)
from worker.api.requests import Problem
from worker.api.service import Service, unreachable
from worker.api.submissions import add_submission_routes
from worker.api.webhooks import Deliverer, Policy
from worker.errors import BrokerError
from worker.redis_access import refusal
from worker.settings import Settings

log = structlog.get_logger()

STATIC = Path(__file__).with_name("static")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The playground ships its script and style as files: nothing inline, nothing from elsewhere
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
CODES = {404: "not_found", 405: "method_not_allowed"}


class Stamp:
    """Every answer: ``Request-Id`` (the client's when it is a sane one, else a new one; bound
    to every log line of the request), the ``RateLimit`` fields of the bucket the request was
    charged to, and headers that keep a browser from sniffing, framing or running anything
    the page did not ship. Plain ASGI, so event streams pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        page = scope["path"] == "/" or scope["path"].startswith("/static/")

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Request-Id"] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Content-Security-Policy"] = PAGE_POLICY if page else DATA_POLICY
                bucket = state.get("bucket")
                if bucket is not None:
                    for name, value in bucket.headers().items():
                        headers[name] = value
            await send(message)

        with bound_contextvars(request_id=request_id):
            await self.app(scope, receive, stamped)


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings)
    deliverer = Deliverer(
        service.redis,
        service.keys,
        Policy(
            retry_s=settings.api_webhook_retry_s,
            backoff_ms=settings.api_webhook_backoff_ms,
            timeout_s=settings.api_webhook_timeout_s,
            keep_s=settings.result_expires_s,
            open_secrets=tuple(settings.api_webhook_secret.split()),
            allow_private=bool(settings.api_allow_private_callbacks),
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        delivering = asyncio.create_task(deliverer.run())
        try:
            yield
        finally:
            delivering.cancel()
            with suppress(asyncio.CancelledError):
                await delivering
            await deliverer.close()
            await service.close()

    app = FastAPI(
        title="Code-judging fleet",
        version="1",
        summary="Submissions, results, progress and webhooks over HTTP (docs/api.md).",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: the OpenAPI JSON is served
        redoc_url=None,
        openapi_url=None,  # served below, with the 3.0 form beside it
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(Stamp)
    instrument(app)  # GET /metrics: requests by route and status, latency (worker.api.metrics)

    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = CODES.get(exc.status_code, "bad_request")
        if exc.status_code == 404:
            message = f"no route {request.url.path} (docs/api.md lists them)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return Problem(exc.status_code, code, message, headers=dict(exc.headers or {})).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return Problem(400, "bad_request", str(exc.errors()[0].get("msg", exc))).response()

    @app.exception_handler(aioredis.RedisError)
    @app.exception_handler(BrokerError)
    async def away(_: Request, exc: Exception) -> JSONResponse:
        if refused := refusal(exc, settings.redis_acl_user):
            # a deployment's mistake (the API's ACL user, its password, the CA), not an outage
            log.error("api.redis_refused", error=str(refused)[:300])
        else:
            log.error("api.redis_unavailable", error=str(exc)[:200])
        return unreachable().response()

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers this one outside the middleware: its headers are added here
        request_id = getattr(request.state, "request_id", "")
        log.error("api.failed", request_id=request_id, exc_info=exc)
        message = f"the API failed (Request-Id {request_id})"
        stamped = {"Request-Id": request_id, "X-Content-Type-Options": "nosniff"}
        return Problem(500, "internal_error", message, headers=stamped).response()

    add_submission_routes(app, service)

    @app.get(
        "/v1/languages",
        summary="The languages the fleet judges, whether its workers can judge each now, and the "
        "limits its operator allows",
        operation_id="listLanguages",
        response_model=list[LanguageInfo],
        responses={503: {"model": ErrorBody, "description": "Redis unreachable"}},
        openapi_extra={"security": []},
    )
    async def languages() -> JSONResponse:
        return JSONResponse(await service.languages())

    @app.get(
        "/healthz",
        summary="The API process is up",
        operation_id="health",
        openapi_extra={"security": []},
    )
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Redis is reachable and at least one worker is alive",
        operation_id="ready",
        responses={503: {"model": ErrorBody, "description": "not ready: the reason"}},
        openapi_extra={"security": []},
    )
    async def readyz(request: Request) -> JSONResponse:
        ok, why = await service.ready()
        shown: dict[str, Any] = {"ready": ok}
        with suppress(Problem, aioredis.RedisError):  # the reason: for key holders only
            await service.caller(request, cost=0)
            shown["reason"] = why
        return JSONResponse(shown, status_code=200 if ok else 503)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_31() -> JSONResponse:
        return JSONResponse(document())

    @app.get("/openapi-3.0.json", include_in_schema=False)
    async def openapi_30() -> JSONResponse:
        return JSONResponse(openapi.as_30(document()))

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi.document(app, open_api=bool(settings.api_open))
        return app.openapi_schema

    return app
