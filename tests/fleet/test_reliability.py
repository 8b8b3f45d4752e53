"""Failures the fleet must ride out: a worker killed mid-submission, a Redis restart, and the
Docker engine going away and coming back. Each talks only to loopback and to containers and
processes the test itself made."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from tests.conftest import free_port
from worker.client import Client
from worker.contract import SubmissionResult, Verdict
from worker.sandbox.reaper import owned_containers, remove_container

pytestmark = [pytest.mark.docker, pytest.mark.redis]

SLOW_ECHO = "import sys, time\ntime.sleep(0.2)\nprint(sys.stdin.read().strip())\n"


def echo_submission(n: int) -> dict[str, object]:
    tests = [{"id": f"t{i:02d}", "stdin": f"{i}\n", "expected_stdout": f"{i}\n"} for i in range(n)]
    return {"id": "survivor", "language": "python", "source": SLOW_ECHO, "tests": tests}


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_worker_killed_mid_submission_loses_and_duplicates_nothing(
    workers, client: Client, docker_client: docker.DockerClient
) -> None:
    # an hour's visibility timeout: the tests the dead worker held must come back because its
    # consumer's heartbeat expired (about 30 s), not because kombu's timeout ran out
    victim = workers("victim", RUNNER_VISIBILITY_TIMEOUT_S="3600")
    handle = client.submit(echo_submission(50))
    wait_until(lambda: len(handle.finished_tests()) >= 8, 60, "a few tests to finish")
    assert owned_containers(docker_client, victim.owner)
    victim.stop(signal.SIGKILL)
    # the dead worker's sandboxes are removed, not left exited: each supervisor exits once its
    # stdin (the dead worker's attach connection) closes, after its job at most, and the
    # engine removes the container; the bound is the longest wall time (5 s here) plus margin
    wait_until(
        lambda: not owned_containers(docker_client, victim.owner),
        5 + 10,
        "the killed worker's sandboxes to be removed",
    )
    # the restarted worker gives back the tests the dead one had taken but not acknowledged
    victim.start()
    result = handle.result(timeout=180)
    assert [t.id for t in result.tests] == [f"t{i:02d}" for i in range(50)]
    assert [t.verdict for t in result.tests] == [Verdict.AC] * 50
    assert (result.passed, result.total) == (50, 50)
    assert victim.events("broker.reclaimed")


class Proxy:
    """A Unix-socket proxy in front of the Docker engine that a test can cut and restore."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.target = target
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None

    def start(self) -> None:
        if self.path.exists():
            self.path.unlink()
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Like an engine restart for the worker: every connection drops, new ones fail."""
        assert self._server is not None
        self._server.close()
        self._server = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()
        self.path.unlink()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def engine_proxy(tmp_path: Path) -> Iterator[Proxy]:
    proxy = Proxy(tmp_path / "docker.sock")
    proxy.start()
    yield proxy


def test_docker_engine_outage_gives_ie_then_recovers(
    workers, client: Client, engine_proxy: Proxy, docker_client: docker.DockerClient
) -> None:
    worker = workers("engine", DOCKER_HOST=f"unix://{engine_proxy.path}")
    sub = {
        "language": "python",
        "source": "print(input())",
        "tests": [{"stdin": "1", "expected_stdout": "1"}],
    }
    assert client.submit(sub).result(timeout=60).verdict == Verdict.AC
    engine_proxy.cut()
    for container in owned_containers(docker_client, worker.owner):  # a restart kills them all
        remove_container(container)  # the engine may be removing it already: stdin closed
    during = client.submit({**sub, "source": "print(input()) # during"}).result(timeout=180)
    assert during.verdict == Verdict.IE
    assert during.error is not None and during.error.message
    engine_proxy.start()
    deadline = time.monotonic() + 120
    while True:  # the pools refill in the background once the engine answers again
        after = client.submit(sub).result(timeout=180)
        if after.verdict == Verdict.AC or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert after.verdict == Verdict.AC
    assert worker.proc is not None and worker.proc.poll() is None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, object]]:
    """A Redis of the test's own, with an append-only file, that the test can restart."""
    port = free_port()
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp_path),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
    ]
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), 10, "redis to start")

    def restart() -> None:
        procs[-1].send_signal(signal.SIGTERM)
        procs[-1].wait(10)
        start()

    start()
    yield port, restart
    for proc in procs:
        proc.kill()
        proc.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_redis_restart_mid_submission_is_ridden_out(workers, own_redis, tmp_path: Path) -> None:
    port, restart = own_redis
    env = {
        "RUNNER_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "RUNNER_RESULT_BACKEND": f"redis://127.0.0.1:{port}/1",
    }
    worker = workers("redisfail", **env)
    # a producer in its own process: this process's Celery app is bound to the suite's Redis
    (tmp_path / "sub.json").write_text(json.dumps(echo_submission(30)))
    script = (
        "import json, sys\n"
        "from worker.client import Client\n"
        "handle = Client().submit(json.load(open(sys.argv[1])))\n"
        "print(handle.result(timeout=240).model_dump_json())\n"
    )
    producer = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "sub.json")],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.0)
    restart()
    out, err = producer.communicate(timeout=300)
    assert producer.returncode == 0, err.decode()[-3000:]
    result = SubmissionResult.model_validate_json(out.splitlines()[-1])
    assert [t.id for t in result.tests] == [f"t{i:02d}" for i in range(30)]
    # tests caught in the restart may be IE, never missing, duplicated or stuck
    assert all(t.verdict in (Verdict.AC, Verdict.IE) for t in result.tests)
    assert worker.proc is not None and worker.proc.poll() is None
