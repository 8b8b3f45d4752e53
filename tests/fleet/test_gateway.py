"""``runner gateway``: submissions over HTTP with the status codes HTTP clients act on, against
real Redis (and a real worker for a judged submission)."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from tests.fleet.conftest import flush
from worker.client import Client
from worker.gateway import Gateway, serve
from worker.settings import Settings

pytestmark = [pytest.mark.redis]

PROGRAM = {"language": "python", "source": "print(int(input()) + 1)"}


@pytest.fixture
def gateway(redis_db: redis.Redis) -> Iterator[Gateway]:
    flush()
    settings = replace(
        Settings.from_env(), max_queued_tests=3, tenant_max_tests=2, gateway_max_body_mb=1
    )
    server = serve(Client(settings), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
    flush()


def call(
    server: Gateway, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def post(server: Gateway, submission: Any) -> tuple[int, dict[str, str], Any]:
    return call(server, "POST", "/v1/submissions", json.dumps(submission).encode())


def test_refusals_carry_the_status_and_retry_after_clients_act_on(gateway: Gateway) -> None:
    status, _, body = post(gateway, {**PROGRAM, "tests": []})
    assert (status, body["verdict"], body["error"]["code"]) == (422, "RJ", "no_tests")
    status, headers, body = post(gateway, {**PROGRAM, "tests": [{"stdin": "1"}] * 3})
    assert (status, headers["Retry-After"], body["error"]["code"]) == (429, "2", "tenant_busy")
    status, _, _ = post(gateway, {**PROGRAM, "tenant": "a", "tests": [{"stdin": "1"}] * 2})
    assert status == 202  # accepted: 2 tests in flight, no worker yet
    status, headers, body = post(gateway, {**PROGRAM, "tenant": "b", "tests": [{"stdin": "1"}] * 2})
    assert (status, headers["Retry-After"], body["error"]["code"]) == (503, "5", "fleet_busy")


def test_bad_requests_are_told_apart(gateway: Gateway) -> None:
    assert call(gateway, "POST", "/v1/submissions", b"{not json")[0] == 400
    # refused on its Content-Length alone, before a byte of the body is read
    conn = http.client.HTTPConnection("127.0.0.1", gateway.server_address[1], timeout=30)
    conn.putrequest("POST", "/v1/submissions")
    conn.putheader("Content-Length", str(2**20 + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert call(gateway, "POST", "/v1/other", b"{}")[0] == 404
    assert call(gateway, "GET", "/v1/submissions/not..an..id")[0] == 404
    assert call(gateway, "GET", "/healthz")[0] == 200


@pytest.mark.docker
def test_a_submission_over_http_is_judged(gateway: Gateway, workers) -> None:
    workers("http")
    status, _, accepted = post(
        gateway, {**PROGRAM, "tests": [{"stdin": "41", "expected_stdout": "42"}]}
    )
    assert status == 202
    status, _, result = call(gateway, "GET", accepted["result"] + "?wait=60")
    assert (status, result["verdict"], result["passed"]) == (200, "AC", 1)
    assert call(gateway, "GET", "/v1/submissions/unknown-id")[:3:2] == (202, {"state": "pending"})
