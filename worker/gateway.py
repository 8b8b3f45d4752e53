"""The HTTP front: submissions over plain HTTP, for backends without a Celery client, with the
refusals HTTP clients understand (``runner gateway``).

::

    POST /v1/submissions          a submission (JSON)  -> 202 {"id", "result"}, or
                                                          422 the RJ result (a bad submission),
                                                          503 + Retry-After (fleet_busy),
                                                          429 + Retry-After (tenant_busy),
                                                          413 (body over RUNNER_GATEWAY_MAX_BODY_MB)
    GET  /v1/submissions/ID[?wait=S]                   -> 200 the result, or 202 {"state"}
    GET  /healthz                                      -> 200

Each submission goes through :class:`worker.client.Client` (validated, admitted, sent as the
compile step and the per-test chord), exactly as the Python producer sends it; its result is
the one a Celery client would read. No authentication: bind it to loopback (the default) or put
it behind a proxy that authenticates.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import celery.exceptions
import structlog
from celery.result import AsyncResult

from worker.client import Client
from worker.contract import SubmissionResult
from worker.errors import BrokerError

log = structlog.get_logger()

BUSY_S = 5  # Retry-After when the fleet (or its Redis) cannot take work now
RETRY_AFTER_S = {"fleet_busy": BUSY_S, "tenant_busy": 2}
STATUS = {"fleet_busy": HTTPStatus.SERVICE_UNAVAILABLE, "tenant_busy": HTTPStatus.TOO_MANY_REQUESTS}
RESULT_PATH = re.compile(r"^/v1/submissions/([A-Za-z0-9-]{1,64})$")
MAX_WAIT_S = 60.0


class Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], client: Client) -> None:
        super().__init__(address, Handler)
        self.client = client
        self.max_body = client.settings.gateway_max_body_mb * 2**20


class Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/submissions":
            return self._send(HTTPStatus.NOT_FOUND, {"error": "no such resource"})
        length = int(self.headers.get("Content-Length") or -1)
        if length < 0:
            return self._send(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
        if length > self.server.max_body:
            self.close_connection = True  # the body is not read
            limit = self.server.client.settings.gateway_max_body_mb
            return self._send(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {limit} MB"}
            )
        try:
            submission = json.loads(self.rfile.read(length))
        except ValueError as exc:
            return self._send(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
        try:
            handle = self.server.client.submit(submission)
        except BrokerError as exc:
            log.error("gateway.submit_failed", error=str(exc))
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)}, BUSY_S)
        refusal = handle.refusal
        if refusal is not None:  # nothing was sent
            code = refusal.error.code if refusal.error else ""
            status = STATUS.get(code, HTTPStatus.UNPROCESSABLE_ENTITY)
            return self._send(status, refusal.model_dump(mode="json"), RETRY_AFTER_S.get(code))
        self._send(HTTPStatus.ACCEPTED, {"id": handle.id, "result": f"/v1/submissions/{handle.id}"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            return self._send(HTTPStatus.OK, {"ok": True})
        found = RESULT_PATH.match(url.path)
        if not found:
            return self._send(HTTPStatus.NOT_FOUND, {"error": "no such resource"})
        try:
            wait = min(float(parse_qs(url.query).get("wait", ["0"])[0]), MAX_WAIT_S)
        except ValueError:
            return self._send(HTTPStatus.BAD_REQUEST, {"error": "wait must be seconds"})
        pending = AsyncResult(found.group(1), app=self.server.client.app)
        try:
            raw = pending.get(timeout=max(wait, 0.01), follow_parents=False)
        except celery.exceptions.TimeoutError:
            # unknown ids look the same as pending ones: results expire
            return self._send(HTTPStatus.ACCEPTED, {"state": "pending"})
        except Exception as exc:  # the backend away: the caller may ask again
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)}, BUSY_S)
        self._send(HTTPStatus.OK, SubmissionResult.model_validate(raw).model_dump(mode="json"))

    def _send(self, status: HTTPStatus, body: Any, retry_after: int | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("gateway.request", line=format % args)


def serve(client: Client, bind: str, port: int) -> Gateway:
    """A gateway listening (call ``serve_forever``); port 0 picks a free one."""
    return Gateway((bind, port), client)
