"""The e2e benchmark's HTTP side: ``runner api`` in front of the same worker, called with a
key as deployed (every request pays its key check and rate limit): submissions through
``POST /v1/submissions?wait``, and ``GET`` of a finished submission from several connections
at once, for requests per second."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scripts.benchmarks.fleet import free_port, serving

RUNNER = str(Path(sys.executable).with_name("runner"))


class Api:
    """A running ``runner api`` and a key to call it with."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self._conn = http.client.HTTPConnection(host, port, timeout=120)

    def post(self, submission: dict[str, Any]) -> tuple[int, Any]:
        """POST with ``?wait`` on the kept-alive connection; a new one if the server closed it
        while idle (uvicorn does after 5 s), before the request reached it."""
        try:
            return request(self._conn, "POST", "/v1/submissions?wait=60", submission, self.token)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self._conn.close()
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            return request(self._conn, "POST", "/v1/submissions?wait=60", submission, self.token)

    def submit_ms(self, submission: dict[str, Any]) -> float:
        """Milliseconds from POST to the final result (``?wait``)."""
        start = time.perf_counter()
        status, answer = self.post(submission)
        took = 1000 * (time.perf_counter() - start)
        assert status == 200 and answer["result"]["verdict"] == "AC", (status, answer)
        return took

    def get_rate(self, submission: dict[str, Any], seconds: float, clients: int = 4) -> float:
        """``GET /v1/submissions/{id}`` of a finished submission per second, from ``clients``
        keep-alive connections at once."""
        status, done = self.post(submission)
        assert status == 200, done
        counts = [0] * clients
        stop = time.monotonic() + seconds

        def hammer(slot: int) -> None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            while time.monotonic() < stop:
                got, _ = request(conn, "GET", f"/v1/submissions/{done['id']}", token=self.token)
                assert got == 200
                counts[slot] += 1
            conn.close()

        started = time.monotonic()
        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.monotonic() - started)


@contextmanager
def api_process() -> Iterator[Api]:
    """``runner api`` on a free loopback port, with a key without practical limits."""
    port = free_port()
    made = subprocess.run(
        [RUNNER, "keys", "create", "bench", "--rate", "1000000", "--burst", "1000000",
         "--in-flight", "100000", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip

    def up() -> bool:
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        return request(probe, "GET", "/healthz")[0] == 200

    argv = [RUNNER, "api", "--port", str(port)]
    with serving(argv, up, timeout_s=30, RUNNER_LOG_LEVEL="warning"):
        yield Api("127.0.0.1", port, json.loads(made.stdout)["token"])


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    token: str = "",
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())
