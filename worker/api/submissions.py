"""The submission routes of the HTTP API (:mod:`worker.api.routes` makes the app): sending one
or a batch, once per ``Idempotency-Key``, a key's submissions page by page, one submission's
status, its cancellation, its event stream and its webhook sent again. What they do beyond
HTTP is :class:`worker.api.service.Service`'s and :class:`worker.api.progress.Progress`'s."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from worker.api import openapi
from worker.api.limits import MAX_STREAMS, open_stream
from worker.api.models import BatchAnswer, SubmissionAccepted, SubmissionPage, SubmissionStatus
from worker.api.requests import Problem, body_bytes, parsed_json, wait_s
from worker.api.service import MAX_BATCH, PAGE, Service
from worker.api.webhooks import resend
from worker.contract import SubmissionResult


def add_submission_routes(app: FastAPI, service: Service) -> None:
    """Add the ``/v1/submissions`` routes to ``app``, in the order the OpenAPI document lists
    them."""
    settings = service.settings

    def path(request: Request) -> str:
        return str(request.path_params["sid"])

    async def post_submission(request: Request) -> Response:
        caller = await service.caller(request, "submit")
        wait = wait_s(request, settings.api_max_wait_s)  # a bad one before anything is sent
        body = await body_bytes(request, settings.api_max_body_mb)

        async def send() -> tuple[int, Any]:
            return await service.submit(caller, parsed_json(body))

        status, answer, replayed = await service.once(request, caller, body, send)
        if status == 202 and wait:
            done = await service.progress.wait(answer["id"], caller, wait)
            if done is not None:
                status, answer = done
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(answer, status_code=status, headers=headers)

    async def post_batch(request: Request) -> Response:
        caller = await service.caller(request, "submit", cost=0)
        body = await body_bytes(request, settings.api_max_body_mb)
        raw = parsed_json(body)
        items = raw.get("submissions") if isinstance(raw, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH or len(raw) != 1:
            raise Problem(
                422,
                "bad_batch",
                f'a batch is {{"submissions": [1 to {MAX_BATCH} submissions]}} and nothing else',
            )
        if caller.key is not None and len(items) > caller.key.burst:  # never enough tokens
            raise Problem(
                422,
                "bad_batch",
                f"this key's burst is {caller.key.burst} submissions: a batch may hold no more",
            )
        await service.charge(request, caller, "submit", len(items))

        async def send() -> tuple[int, Any]:
            return 200, {"submissions": await service.batch(caller, items)}

        status, answer, replayed = await service.once(request, caller, body, send)
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(answer, status_code=status, headers=headers)

    async def list_submissions(request: Request) -> Response:
        caller = await service.caller(request)
        query = request.query_params
        try:
            limit = int(query.get("limit", PAGE[0]))
            before = float(query["before"]) if "before" in query else None
        except ValueError:
            raise Problem(400, "bad_query", "limit: a whole number; before: a number") from None
        if not 1 <= limit <= PAGE[1]:
            raise Problem(400, "bad_query", f"limit: from 1 to {PAGE[1]}")
        return JSONResponse(await service.progress.page(caller, limit, before))

    async def get_submission(request: Request) -> Response:
        caller = await service.caller(request)
        return JSONResponse(await service.progress.status(path(request), caller))

    async def cancel_submission(request: Request) -> Response:
        caller = await service.caller(request, "submit")
        return JSONResponse(await service.progress.cancel(path(request), caller), status_code=202)

    async def resend_webhook(request: Request) -> Response:
        caller = await service.caller(request, "submit")
        sid = path(request)
        await service.progress.status(sid, caller)  # 404: another key's, or no such submission
        await resend(service.redis, settings, sid, caller.key.id if caller.key else "*")
        return JSONResponse(await service.progress.status(sid, caller), status_code=202)

    async def get_events(request: Request) -> Response:
        caller = await service.caller(request)
        sid = path(request)
        await service.progress.status(sid, caller)  # a 404 before the stream starts
        stream = uuid.uuid4().hex
        if caller.key is not None and not await open_stream(service.redis, caller.key.id, stream):
            raise Problem(
                429, "too_many_streams", f"this key has {MAX_STREAMS} event streams open", 5
            )
        return StreamingResponse(
            service.progress.events(request, sid, caller, stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def add(
        route: str,
        handler: Any,
        method: str,
        status: int,
        model: Any,
        refusals: tuple[int, ...],
        answers: dict[int | str, dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        app.add_api_route(
            route,
            handler,
            methods=[method],
            status_code=status,
            response_model=model,
            responses=openapi.refusals(refusals) | (answers or {}),
            **extra,
        )

    add(
        "/v1/submissions",
        post_submission,
        "POST",
        202,
        SubmissionAccepted,
        (400, 401, 409, 413, 415, 429, 503),
        {
            200: {"model": SubmissionStatus, "description": "final within ?wait"},
            422: {"model": SubmissionResult, "description": "refused by the contract: the RJ"},
        },
        operation_id="createSubmission",
        summary="Send a submission",
        description="Once per Idempotency-Key; with ?wait, 200 and the result once final.",
        openapi_extra=openapi.submission_extra(service.settings.api_max_wait_s),
    )
    add(
        "/v1/submissions/batch",
        post_batch,
        "POST",
        200,
        BatchAnswer,
        (400, 401, 409, 413, 415, 422, 429, 503),
        operation_id="createSubmissions",
        summary=f"Send up to {MAX_BATCH} submissions, each answered as the single route would",
        openapi_extra=openapi.batch_extra(),
    )
    add(
        "/v1/submissions",
        list_submissions,
        "GET",
        200,
        SubmissionPage,
        (400, 401, 429, 503),
        operation_id="listSubmissions",
        summary="The key's submissions, newest first, a page at a time",
        openapi_extra={"parameters": openapi.PAGE_PARAMETERS},
    )
    add(
        "/v1/submissions/{sid}",
        get_submission,
        "GET",
        200,
        SubmissionStatus,
        (401, 404, 429, 503),
        operation_id="getSubmission",
        summary="A submission's state, progress and result",
        openapi_extra={"parameters": [openapi.SID]},
    )
    add(
        "/v1/submissions/{sid}",
        cancel_submission,
        "DELETE",
        202,
        SubmissionStatus,
        (401, 404, 409, 429, 503),
        operation_id="cancelSubmission",
        summary="Cancel a submission: its tests not yet started end SK, and so does it",
        openapi_extra={"parameters": [openapi.SID]},
    )
    add(
        "/v1/submissions/{sid}/events",
        get_events,
        "GET",
        200,
        None,
        (401, 404, 429, 503),
        operation_id="streamSubmissionEvents",
        summary="Server-sent events: a test event per finished test, then a result event",
        openapi_extra=openapi.events_extra(),
    )
    add(
        "/v1/submissions/{sid}/webhook/resend",
        resend_webhook,
        "POST",
        202,
        SubmissionStatus,
        (401, 404, 409, 410, 429, 503),
        operation_id="resendWebhook",
        summary="Send a final submission's webhook again: the same event and webhook-id",
        openapi_extra={"parameters": [openapi.SID]},
    )
