"""The e2e benchmark's HTTP side: ``runner api`` in front of the same worker, called with a
key as deployed (every request pays its key check and rate limit): submissions through
``POST /v1/submissions?wait``, ``GET`` of a finished submission from several connections
at once, for requests per second, and webhooks: from the result stored (Celery's
``date_done``) to the receiver having it, alone and while another receiver stalls."""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis

from scripts.benchmarks.fleet import free_port, serving

RUNNER = str(Path(sys.executable).with_name("runner"))


class Api:
    """A running ``runner api`` and a key to call it with."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self._conn = http.client.HTTPConnection(host, port, timeout=120)

    def post(self, submission: dict[str, Any], wait: bool = True) -> tuple[int, Any]:
        """POST (with ``?wait``) on the kept-alive connection; a new one if the server closed
        it while idle (uvicorn does after 5 s), before the request reached it."""
        path = "/v1/submissions?wait=60" if wait else "/v1/submissions"
        try:
            return request(self._conn, "POST", path, submission, self.token)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self._conn.close()
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            return request(self._conn, "POST", path, submission, self.token)

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
    # the webhook receivers are this process's, on loopback
    env = {"RUNNER_LOG_LEVEL": "warning", "RUNNER_API_ALLOW_PRIVATE_CALLBACKS": "1"}
    with serving(argv, up, timeout_s=30, **env):
        yield Api("127.0.0.1", port, json.loads(made.stdout)["token"])


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback. An honest one notes when each submission's event
    arrived (wall clock, as Celery's ``date_done``) and answers 204; a stalling one answers
    ``HTTP/1.1 200 OK`` then a byte every 2 s, for as long as it is held."""

    daemon_threads = True

    def __init__(self, stall: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.stall = stall
        self.arrived: dict[str, float] = {}
        self.held = 0  # stalled calls under way

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Hook(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.stall:
            self.server.held += 1
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(60):
                    self.wfile.flush()
                    time.sleep(2)
                    self.wfile.write(b"X")
            except OSError:
                pass  # the API hung up: its deadline
            finally:
                self.server.held -= 1
            self.close_connection = True
            return
        self.server.arrived[json.loads(body)["data"]["submission_id"]] = time.time()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def receiving(stall: bool = False) -> Iterator[Receiver]:
    receiver = Receiver(stall)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


def webhooks(
    api: Api,
    backend_url: str,
    make: Callable[[str], dict[str, Any]],
    alone: int,
    during_stall: int,
    figures: dict[str, object],
) -> None:
    """``webhook_p50_ms``: from a result stored to its receiver having the webhook, ``alone``
    submissions one after the other; then ``during_stall`` honest ones sent while three
    webhooks to a receiver that stalls are under way: ``webhooks_sent_during_stall`` and
    ``webhooks_delivered_during_stall``, those that reached their receiver within 5 s of their
    result (and before the stalled calls' deadline ended)."""
    backend = redis.Redis.from_url(backend_url)

    def sent(receiver: Receiver, tag: str) -> str:
        status, answer = api.post({**make(tag), "callback_url": receiver.url}, wait=False)
        assert status == 202, answer
        return str(answer["id"])

    def stored(sid: str) -> float:
        done = datetime.fromisoformat(
            json.loads(backend.get(f"celery-task-meta-{sid}"))["date_done"]
        )
        return (done if done.tzinfo else done.replace(tzinfo=UTC)).timestamp()

    def arrive(receiver: Receiver, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not set(ids) <= set(receiver.arrived) and time.monotonic() < deadline:
            time.sleep(0.01)

    with receiving() as honest:
        taken = []
        for n in range(alone):
            sid = sent(honest, f"hook{n}")
            arrive(honest, [sid], 60)
            assert sid in honest.arrived, f"the webhook of {sid} never arrived"
            taken.append(1000 * (honest.arrived[sid] - stored(sid)))
    figures["webhook_p50_ms"] = round(statistics.median(taken), 1)
    with receiving(stall=True) as stalled, receiving() as honest:
        for n in range(3):
            sent(stalled, f"stall{n}")
        deadline = time.monotonic() + 60
        while stalled.held < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        ids = [sent(honest, f"during{n}") for n in range(during_stall)]
        arrive(honest, ids, 30)
        on_time = [
            sid for sid in ids if sid in honest.arrived and honest.arrived[sid] - stored(sid) <= 5
        ]
        figures["webhooks_sent_during_stall"] = len(ids)
        figures["webhooks_delivered_during_stall"] = len(on_time)
        figures["webhook_stalls_held_at_end"] = stalled.held  # 3: the stall lasted throughout


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
