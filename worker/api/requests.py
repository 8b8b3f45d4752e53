"""Reading a request, and refusing one: the JSON body within its size limit, ``?wait``, and
:class:`Problem`, the refusal every route answers with (``{"error": {"code", "message"}}``,
``Retry-After`` where waiting helps)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from worker.api.limits import retry_after
from worker.contract.fields import quoted


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


def wait_s(request: Request, most: int) -> float:
    given = request.query_params.get("wait")
    if given is None:
        return 0.0
    try:
        wait = float(given)
    except ValueError:
        raise Problem(
            400, "bad_wait", f"wait: {quoted(given)} is not a number of seconds"
        ) from None
    if not 0 <= wait <= most:
        raise Problem(400, "bad_wait", f"wait: from 0 to {most} seconds")
    return wait


async def json_body(request: Request, limit_mb: int) -> Any:
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
