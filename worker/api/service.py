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
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from worker.api.callbacks import CallbackRefused, resolve
from worker.api.keys import ApiKey, KeyStore
from worker.api.limits import admit, release, retry_after, take_token
from worker.api.records import RESULT_KEY, record_key, stored_result
from worker.api.webhooks import Deliverer, Policy
from worker.client import Client
from worker.contract import SubmissionIn, SubmissionResult, rejected
from worker.errors import BrokerError, SubmissionRejected
from worker.fairqueue import SLOTS_KEY
from worker.languages import LANGUAGES
from worker.settings import Settings
from worker.workflow import run_key

log = structlog.get_logger()

STATIC = Path(__file__).with_name("static")
ID = r"^[A-Za-z0-9-]{1,64}$"
KEY_CACHE_S = 2.0  # a revoked key stops working within this
BUSY = {"fleet_busy": (503, 5), "tenant_busy": (429, 2)}  # RJ code -> status, Retry-After
EVENT_POLL_S = 0.1


class ApiSubmission(SubmissionIn):
    """A submission as contract 1.1 has it, plus where to POST the result when it is final."""

    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL the final result is POSTed to, signed (docs/api.md); public "
        "addresses only unless the operator allows others.",
    )


class WebhookStatus(BaseModel):
    url: str
    state: str = Field(description="waiting (not final yet), pending, delivered or failed")
    attempts: int
    last: str = Field(description="the last call's outcome, e.g. HTTP 200")


class SubmissionStatus(BaseModel):
    id: str
    state: str = Field(description="queued, running or done")
    total: int | None = Field(description="tests in the submission, when known")
    finished: int = Field(description="tests finished so far")
    tests: list[dict[str, Any]] = Field(
        description="{index, result} of each test finished so far, while not done (then the "
        "result has every test)"
    )
    result: SubmissionResult | None = Field(description="the final result, once done")
    webhook: WebhookStatus | None


class ErrorBody(BaseModel):
    error: dict[str, str] = Field(description="{code, message}")


class Problem(Exception):
    def __init__(self, status: int, code: str, message: str, retry: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry = status, code, message, retry

    def response(self) -> JSONResponse:
        headers = {} if self.retry is None else {"Retry-After": retry_after(self.retry)}
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        body = {"error": {"code": self.code, "message": self.message}}
        return JSONResponse(body, status_code=self.status, headers=headers)


@dataclass
class Caller:
    key: ApiKey | None  # None: an open API


class Service:
    """What the routes share: settings, Redis clients, the producer, the key store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = aioredis.Redis.from_url(settings.result_backend)
        self.broker = aioredis.Redis.from_url(settings.broker_url)
        self.client = Client(settings)
        self.keys = KeyStore(self.redis)
        self._seen: dict[str, tuple[float, ApiKey | str]] = {}

    async def caller(self, request: Request) -> Caller:
        if self.settings.api_open:
            return Caller(None)
        token = request.headers.get("x-api-key") or ""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = credentials.strip()
        if not token:
            raise Problem(401, "no_key", "an API key is required (Authorization: Bearer rk_...)")
        now = time.monotonic()
        seen = self._seen.get(token)
        if seen is None or seen[0] < now:
            if len(self._seen) > 10_000:
                self._seen.clear()
            seen = (now + KEY_CACHE_S, await self.keys.verify(token))
            self._seen[token] = seen
        key = seen[1]
        if isinstance(key, str):
            raise Problem(401, "bad_key", key)
        wait = await take_token(self.redis, key.id, key.rate_per_s, key.burst)
        if wait:
            raise Problem(429, "rate_limited", f"more than {key.rate_per_s} requests/s", wait)
        return Caller(key)

    async def submit(self, request: Request, caller: Caller, raw: Any) -> tuple[int, Any]:
        wait = _wait_s(request, self.settings.api_max_wait_s)  # a bad one before anything is sent
        sid = uuid.uuid4().hex
        callback = raw.pop("callback_url", None) if isinstance(raw, dict) else None
        echo = raw.get("id") if isinstance(raw, dict) else None
        try:
            if callback is not None:
                await self._check_callback(callback, caller)
            if caller.key is not None and isinstance(raw, dict):
                given = raw.setdefault("tenant", caller.key.tenant)
                if given != caller.key.tenant:
                    raise SubmissionRejected(
                        "tenant_not_allowed",
                        f"tenant: this API key submits as {caller.key.tenant!r} only",
                    )
        except SubmissionRejected as exc:
            return 422, rejected(echo, exc).model_dump(mode="json")
        key_id = caller.key.id if caller.key else ""
        if caller.key is not None:
            cap = caller.key.max_in_flight
            if not await admit(self.redis, key_id, cap, sid, self.settings.result_expires_s):
                raise Problem(429, "too_many_in_flight", f"{cap} submissions not final yet", 1)
        record: dict[str, str | int] = {"key": key_id, "created_ms": int(time.time() * 1000)}
        if callback is not None:
            record |= {"callback": callback, "hook_state": "waiting", "hook_attempts": 0}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(record_key(sid), mapping=record)
            pipe.expire(record_key(sid), self.settings.result_expires_s)
            await pipe.execute()
        try:
            handle = await run_in_threadpool(self.client.submit, raw, sid)
        except BrokerError as exc:
            await self._forget(key_id, sid)
            message = f"the fleet cannot take it now: {exc}"
            raise Problem(503, "fleet_unreachable", message, 5) from exc
        refusal = handle.refusal
        if refusal is not None:
            await self._forget(key_id, sid)
            code = refusal.error.code if refusal.error else ""
            if code in BUSY:
                status, after = BUSY[code]
                assert refusal.error is not None
                raise Problem(status, code, refusal.error.message, after)
            return 422, refusal.model_dump(mode="json")
        if handle.total:  # unknown here for a submission against a registered problem
            await self.redis.hset(record_key(sid), "total", handle.total)
        log.info("api.accepted", submission_id=sid, key=key_id, tests=handle.total)
        if wait:
            deadline = time.monotonic() + wait
            pause = 0.005
            while time.monotonic() < deadline:
                if await self.redis.exists(RESULT_KEY + sid):
                    return 200, await self.status(sid, caller)
                await asyncio.sleep(pause)
                pause = min(0.05, pause * 1.5)
        path = f"/v1/submissions/{sid}"
        links = {"status_url": path, "events_url": f"{path}/events"}
        return 202, {"id": sid, "state": "queued", **links}

    async def _check_callback(self, url: Any, caller: Caller) -> None:
        if not isinstance(url, str):
            raise SubmissionRejected("wrong_type", "callback_url: a URL string")
        if caller.key is None and not self.settings.api_webhook_secret:
            raise SubmissionRejected(
                "callback_not_allowed",
                "callback_url: this open API has no webhook secret to sign with "
                "(RUNNER_API_WEBHOOK_SECRET)",
            )
        try:
            await resolve(url, bool(self.settings.api_allow_private_callbacks))
        except CallbackRefused as exc:
            raise SubmissionRejected("callback_not_allowed", str(exc)) from None

    async def _forget(self, key_id: str, sid: str) -> None:
        await self.redis.delete(record_key(sid))
        if key_id:
            await release(self.redis, key_id, sid)

    async def status(self, sid: str, caller: Caller) -> dict[str, Any]:
        if not re.fullmatch(ID, sid):
            raise Problem(404, "not_found", "a submission id is 1 to 64 of A-Z a-z 0-9 -")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(record_key(sid))
            pipe.get(RESULT_KEY + sid)
            pipe.hgetall(run_key(sid, "tests"))
            raw_record, stored, progress = await pipe.execute()
        record = {k.decode(): v.decode() for k, v in raw_record.items()}
        if caller.key is not None and record.get("key") != caller.key.id:
            raise Problem(404, "not_found", f"no submission {sid!r} of this key")
        if not record and stored is None and not progress:
            raise Problem(404, "not_found", f"no submission {sid!r} (or its result expired)")
        result = stored_result(stored) if stored is not None else None
        tests = [
            {"index": int(index), "result": json.loads(body)}
            for index, body in sorted(progress.items(), key=lambda item: int(item[0]))
        ]
        if result is not None:
            tests = _indexed(result.get("tests", []))
        state = "done" if result is not None else "running" if tests else "queued"
        total = record.get("total")
        hook = None
        if "callback" in record:
            hook = {
                "url": record["callback"],
                "state": record.get("hook_state", "waiting"),
                "attempts": int(record.get("hook_attempts") or 0),
                "last": record.get("hook_last", ""),
            }
        return {
            "id": sid,
            "state": state,
            "total": int(total) if total else (result or {}).get("total"),
            "finished": len(tests),
            "tests": [] if result is not None else tests,  # once done, the result has them
            "result": result,
            "webhook": hook,
        }

    async def events(self, request: Request, sid: str, caller: Caller) -> AsyncIterator[bytes]:
        """``test`` events as tests finish, then one ``result`` event; a comment now and then
        keeps proxies from closing a quiet stream."""
        sent: set[int] = set()
        quiet = time.monotonic()
        while not await request.is_disconnected():
            status = await self.status(sid, caller)
            result = status["result"]
            finished = status["tests"] if result is None else _indexed(result["tests"])
            for test in finished:
                if test["index"] not in sent:
                    sent.add(test["index"])
                    yield _event("test", test)
                    quiet = time.monotonic()
            if result is not None:
                yield _event("result", result)
                return
            if time.monotonic() - quiet > 15:
                yield b": still running\n\n"
                quiet = time.monotonic()
            await asyncio.sleep(EVENT_POLL_S)

    async def ready(self) -> tuple[bool, str]:
        try:
            await self.redis.ping()
            slots = await self.broker.get(SLOTS_KEY)
        except aioredis.RedisError as exc:
            return False, f"Redis unreachable: {exc}"
        if not slots or int(slots) <= 0:
            return False, "no worker is alive (none has reported in the last 30 s)"
        return True, f"{int(slots)} test slots in the fleet"

    async def close(self) -> None:
        await self.redis.aclose()
        await self.broker.aclose()


def _indexed(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": index, "result": test} for index, test in enumerate(tests)]


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _wait_s(request: Request, most: int) -> float:
    given = request.query_params.get("wait")
    if given is None:
        return 0.0
    try:
        wait = float(given)
    except ValueError:
        raise Problem(400, "bad_wait", f"wait: {given!r} is not a number of seconds") from None
    if not 0 <= wait <= most:
        raise Problem(400, "bad_wait", f"wait: from 0 to {most} seconds")
    return wait


async def _body(request: Request, limit_mb: int) -> Any:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Problem(415, "not_json", "send the submission as Content-Type: application/json")
    limit = limit_mb * 2**20
    length = request.headers.get("content-length")
    too_big = Problem(413, "body_too_large", f"the body is over {limit_mb} MB")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except UnicodeDecodeError:
        raise Problem(400, "invalid_json", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise Problem(400, "invalid_json", f"the body is not JSON: {where}: {exc.msg}") from None


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
        raw = await _body(request, settings.api_max_body_mb)
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
