"""Real Redis and real worker processes (``runner worker``) for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import docker
import pytest
import redis

from tests.conftest import RUN_ID, TEST_ENV
from worker.client import Client
from worker.sandbox.reaper import owned_containers
from worker.settings import Settings

RUNNER = Path(sys.executable).with_name("runner")
CHROMIUM = Path("/usr/bin/chromium")
CELERY = Path(sys.executable).with_name("celery")


@pytest.fixture(scope="session")
def redis_db() -> redis.Redis:
    client = redis.Redis.from_url(TEST_ENV["RUNNER_BROKER_URL"])
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at 127.0.0.1:6379 ({exc}); run scripts/bootstrap")
    return client


def chromium_argv(tmp: Path, window: tuple[int, int], *extra: str) -> list[str]:
    """Headless Chromium as the browser tests run it (its profile under ``tmp``)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; apt-get install -y chromium (scripts/bootstrap)")
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",  # as root, Chromium's own sandbox cannot start
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'chromium'}",
        f"--window-size={window[0]},{window[1]}",
        *extra,
    ]


def flush() -> None:
    for key in ("RUNNER_BROKER_URL", "RUNNER_RESULT_BACKEND"):
        redis.Redis.from_url(TEST_ENV[key]).flushdb()


# what the fleet's tests submit in
FLEET_LANGUAGES = "python,c,cpp,javascript"


class Worker:
    """One worker process with its own warm pools and log file: ``runner worker``, or
    ``command`` (say ``celery -A worker.app worker -P solo``), to which the node name and log
    level are added."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        concurrency: int = 2,
        command: Sequence[str] = (str(RUNNER), "worker"),
        **env: str,
    ) -> None:
        self.name = f"{name}@{RUN_ID}"
        self.owner = f"test-{RUN_ID}-{name}"
        self.log = tmp / f"{name}.log"
        self.argv = [*command, "-n", self.name, "-l", "INFO"]
        self.env = {
            **os.environ,
            "RUNNER_OWNER": self.owner,
            "RUNNER_CONCURRENCY": str(concurrency),
            # every language a worker runs costs its start pools and a self-test (Java's and
            # Haskell's compile alone take seconds): a test that needs every language says so
            # (RUNNER_LANGUAGES="")
            "RUNNER_LANGUAGES": FLEET_LANGUAGES,
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def run_to_exit(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a worker that should exit by itself (a refused start), stderr kept apart."""
        return subprocess.run(
            self.argv, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, wait: float = 90.0) -> Worker:
        with self.log.open("ab") as out:
            if out.tell() and not self.log.read_bytes().endswith(b"\n"):
                out.write(b"\n")  # a killed run's last line was cut short: start a new one
                out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker {self.name} exited:\n{self.log.read_text()[-3000:]}")
            # Celery's own line once the consumer is up (a control ping would need the
            # worker's broker, which some tests give a Redis of their own)
            if f"{self.name} ready." in self.log.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        pytest.fail(f"worker {self.name} not ready after {wait}s:\n{self.log.read_text()[-3000:]}")

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:  # the last line of a worker killed while writing it
                    continue
                if event.get("event") == name:
                    found.append(event)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def workers(
    tmp_path: Path, redis_db: redis.Redis, docker_client: docker.DockerClient, images: object
) -> Iterator[object]:
    """Start workers with ``workers(name)``; all are stopped, and their sandboxes must be gone."""
    flush()
    started: list[Worker] = []

    def start(name: str = "", **kw: object) -> Worker:
        worker = Worker(tmp_path, name or f"w{len(started)}-{uuid.uuid4().hex[:4]}", **kw)  # type: ignore[arg-type]
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()
    flush()
    for worker in started:
        left = owned_containers(docker_client, worker.owner)
        for container in left:
            container.remove(force=True)  # type: ignore[attr-defined]
        assert not left, f"worker {worker.name} left {len(left)} sandboxes behind"


@pytest.fixture
def client() -> Client:
    return Client(Settings.from_env())


@pytest.fixture(scope="module")
def shared_worker(
    tmp_path_factory: pytest.TempPathFactory,
    redis_db: redis.Redis,
    docker_client: docker.DockerClient,
    images: object,
) -> Iterator[Worker]:
    """One worker for a whole module of tests that do not stop or kill it."""
    flush()
    worker = Worker(tmp_path_factory.mktemp("shared"), f"shared-{uuid.uuid4().hex[:4]}")
    worker.start()
    yield worker
    worker.stop()
    flush()
    left = owned_containers(docker_client, worker.owner)
    for container in left:
        container.remove(force=True)  # type: ignore[attr-defined]
    assert not left, f"worker {worker.name} left {len(left)} sandboxes behind"
