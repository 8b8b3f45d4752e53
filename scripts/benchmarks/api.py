"""The e2e benchmark's HTTP part: ``runner api`` in front of the same worker. 10-test
submissions through ``POST /v1/submissions?wait`` timed turn about with the same through the
Python producer (side by side, so the machine's drift hits both alike); then ``GET`` of a
finished submission from several connections at once, for requests per second. The API runs
with keys, as deployed: every request pays its key check and rate limit."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RUNNER = str(Path(sys.executable).with_name("runner"))


@contextmanager
def api_process() -> Iterator[tuple[str, int, str]]:
    """``runner api`` on a free loopback port, and a key without practical limits: (host,
    port, token)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    made = subprocess.run(
        [RUNNER, "keys", "create", "bench", "--rate", "1000000", "--burst", "1000000",
         "--in-flight", "100000", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    token = json.loads(made.stdout)["token"]
    proc = subprocess.Popen(
        [RUNNER, "api", "--port", str(port)],
        env={**os.environ, "RUNNER_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                if request(probe, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("runner api did not start")
            time.sleep(0.1)
        yield "127.0.0.1", port, token
    finally:
        proc.terminate()
        proc.wait(15)


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


def figures_over_http(
    client: Any,
    make: Callable[[int, str], dict[str, Any]],
    runs: int,
    seconds: float,
    figures: dict[str, object],
) -> None:
    with api_process() as (host, port, token):
        conn = http.client.HTTPConnection(host, port, timeout=120)

        def over_http(tag: str) -> float:
            start = time.perf_counter()
            status, answer = request(conn, "POST", "/v1/submissions?wait=60", make(10, tag), token)
            took = 1000 * (time.perf_counter() - start)
            assert status == 200 and answer["result"]["verdict"] == "AC", (status, answer)
            return took

        def plain(tag: str) -> float:
            start = time.perf_counter()
            assert client.submit(make(10, tag)).result(timeout=120).verdict == "AC"
            return 1000 * (time.perf_counter() - start)

        over_http("warm-http")
        posted: list[float] = []
        beside: list[float] = []
        for r in range(runs):
            beside.append(plain(f"hp{r}-"))
            posted.append(over_http(f"h{r}-"))
        figures["api_submit_10_p50_ms"] = round(statistics.median(posted), 1)
        figures["plain_submit_10_p50_ms_beside_api"] = round(statistics.median(beside), 1)
        figures["ratio_api_over_submit_10"] = round(
            statistics.median(posted) / float(figures["submit_10_p50_ms"]),  # type: ignore[arg-type]
            2,
        )
        figures["ratio_api_over_plain_beside"] = round(
            statistics.median(posted) / statistics.median(beside), 2
        )
        status, done = request(conn, "POST", "/v1/submissions?wait=60", make(10, "done"), token)
        assert status == 200, done
        figures["api_requests_per_s"] = round(get_rate(host, port, token, done["id"], seconds), 1)
        conn.close()


def get_rate(host: str, port: int, token: str, sid: str, seconds: float, clients: int = 4) -> float:
    """``GET /v1/submissions/{id}`` of a finished submission per second, from ``clients``
    keep-alive connections at once."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def hammer(slot: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while time.monotonic() < stop:
            status, _ = request(conn, "GET", f"/v1/submissions/{sid}", token=token)
            assert status == 200
            counts[slot] += 1
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)
