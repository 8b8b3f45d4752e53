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

WAIT_WORDS = {"true": None, "false": 0.0}  # ?wait=true: as long as the API waits at most
# Deeper JSON is refused whole: no submission nests more than a few levels, and how deep
# Python's decoder (and every recursive walk after it) goes depends on the stack it runs on
MAX_DEPTH = 64


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry = status, code, message, retry
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.retry is not None:
            headers["Retry-After"] = retry_after(self.retry)
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def wait_s(request: Request, most: int) -> float:
    given = request.query_params.get("wait")
    if given is None:
        return 0.0
    if given.lower() in WAIT_WORDS:
        word = WAIT_WORDS[given.lower()]
        return float(most) if word is None else word
    try:
        wait = float(given)
    except ValueError:
        raise Problem(
            400,
            "bad_wait",
            f"wait: {quoted(given)} is neither a number of seconds nor true or false",
        ) from None
    if not 0 <= wait <= most:
        raise Problem(400, "bad_wait", f"wait: from 0 to {most} seconds")
    return wait


async def body_bytes(request: Request, limit_mb: int) -> bytes:
    """The body as sent, refused (413) as soon as it is over ``limit_mb``."""
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
    return b"".join(chunks)


def parsed_json(body: bytes) -> Any:
    """The body as JSON, or a 400 that says why: not UTF-8 (``json.loads`` would take UTF-16
    and UTF-32 too, which the API does not promise), not JSON (where), nested deeper than
    :data:`MAX_DEPTH`, an integer longer than Python converts (4300 digits)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(
            400, "invalid_json", f"the body is not UTF-8 (byte {exc.start} is not)"
        ) from None
    deep = Problem(
        400, "invalid_json", f"the body nests arrays or objects deeper than {MAX_DEPTH} levels"
    )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise Problem(400, "invalid_json", f"the body is not JSON: {where}: {exc.msg}") from None
    except RecursionError:
        raise deep from None
    except ValueError as exc:  # int() of a number over sys.get_int_max_str_digits() digits
        why = str(exc).split(";")[0]  # the rest is advice to Python programmers
        message = f"the body holds a number the API cannot read: {why}"
        raise Problem(400, "invalid_json", message) from None
    if _deeper_than(value, MAX_DEPTH):
        raise deep
    return value


def _deeper_than(value: Any, most: int) -> bool:
    """Whether ``value`` nests containers more than ``most`` deep: a level at a time, never
    recursing, so its cost is one look at each container."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(most):
        level = [
            inner
            for outer in level
            for inner in (outer.values() if isinstance(outer, dict) else outer)
            if isinstance(inner, dict | list)
        ]
        if not level:
            return False
    return True
