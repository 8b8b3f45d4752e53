"""The HTTP API as an ASGI app (FastAPI): ``runner api`` serves it with uvicorn.

::

    POST /v1/submissions[?wait=S]     a submission (contract 1.1, plus callback_url) -> 202
                                      {id, ...}; with wait, 200 and the result once final
    GET  /v1/submissions/{id}         state, tests finished so far, the result, the webhook
    GET  /v1/submissions/{id}/events  server-sent events: one per finished test, then the result
    GET  /v1/languages                the language registry
    GET  /healthz, /readyz            alive; Redis reachable and a worker alive
    GET  /openapi.json                the OpenAPI document (from the contract's models)
    GET  /                            the playground page (shipped in the package, no CDN)

Refusals: 400 (not JSON, with line and column), 401 (no key, unknown or revoked), 404, 413
(body too large), 415 (not application/json), 422 (the contract's ``RJ`` result, the same code
and message as the Celery path), 429 + ``Retry-After`` (the key's rate or in-flight cap, or
``tenant_busy``), 503 + ``Retry-After`` (``fleet_busy``, Redis away).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from worker.api.models import ApiSubmission, ErrorBody, SubmissionStatus
from worker.api.requests import Problem, json_body
from worker.api.service import Caller, Service
from worker.api.webhooks import Deliverer, Policy
from worker.contract import SubmissionResult
from worker.languages import LANGUAGES
from worker.settings import Settings

log = structlog.get_logger()

STATIC = Path(__file__).with_name("static")


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings)
    deliverer = Deliverer(
        service.redis,
        service.keys,
        Policy(
            allow_private=bool(settings.api_allow_private_callbacks),
            retry_s=min(settings.api_webhook_retry_s, settings.result_expires_s),
            backoff_ms=settings.api_webhook_backoff_ms,
            open_secret=settings.api_webhook_secret,
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
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> JSONResponse:
        return exc.response()

    def guarded(
        handler: Callable[[Request, Caller], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            try:
                return await handler(request, await service.caller(request))
            except aioredis.RedisError as exc:
                log.error("api.redis_unavailable", error=str(exc)[:200])
                return Problem(503, "fleet_unreachable", "Redis is unreachable", 5).response()

        return route

    async def post_submission(request: Request, caller: Caller) -> Response:
        raw = await json_body(request, settings.api_max_body_mb)
        status, body = await service.submit(request, caller, raw)
        return JSONResponse(body, status_code=status)

    async def get_submission(request: Request, caller: Caller) -> Response:
        sid = request.path_params["sid"]
        return JSONResponse(await service.status(sid, caller))

    async def get_events(request: Request, caller: Caller) -> Response:
        sid = request.path_params["sid"]
        await service.status(sid, caller)  # a 404 before the stream starts
        return StreamingResponse(
            service.events(request, sid, caller),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    body_schema = ApiSubmission.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = body_schema.pop("$defs", {})
    app.add_api_route(
        "/v1/submissions",
        guarded(post_submission),
        methods=["POST"],
        status_code=202,
        responses={
            200: {"model": SubmissionStatus, "description": "final within ?wait"},
            400: {"model": ErrorBody},
            401: {"model": ErrorBody},
            413: {"model": ErrorBody},
            415: {"model": ErrorBody},
            422: {"model": SubmissionResult, "description": "the RJ result"},
            429: {"model": ErrorBody},
            503: {"model": ErrorBody},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            },
            "parameters": [
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0},
                    "description": "seconds to wait for the final result (at most "
                    "RUNNER_API_MAX_WAIT_S)",
                }
            ],
        },
        summary="Send a submission",
    )
    app.add_api_route(
        "/v1/submissions/{sid}",
        guarded(get_submission),
        methods=["GET"],
        responses={200: {"model": SubmissionStatus}, 404: {"model": ErrorBody}},
        summary="A submission's state, progress and result",
    )
    app.add_api_route(
        "/v1/submissions/{sid}/events",
        guarded(get_events),
        methods=["GET"],
        responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": ErrorBody}},
        summary="Server-sent events: a test event per finished test, then a result event",
    )

    @app.get("/v1/languages", summary="The languages the fleet judges")
    async def languages() -> list[dict[str, Any]]:
        return [
            {
                "name": lang.name,
                "display": lang.display,
                "version": lang.version,
                "source_file": lang.source_file,
                "sources": list(lang.sources),
                "compiled": lang.compile is not None,
                "compiler_options": list(lang.compile.options) if lang.compile else [],
            }
            for lang in LANGUAGES.values()
        ]

    @app.get("/healthz", summary="The API process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Redis is reachable and at least one worker is alive")
    async def readyz() -> JSONResponse:
        ok, why = await service.ready()
        return JSONResponse({"ready": ok, "reason": why}, status_code=200 if ok else 503)

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
