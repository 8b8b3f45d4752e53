"""What the fleet benchmarks (e2e, scale, soak) share: ``runner worker`` processes started and
stopped around a measurement, a Redis of the run's own, and Redis figures sampled meanwhile.

Redis databases 10 and 11 are the benchmarks' own (flushed at the start);
``BENCH_BROKER_URL`` and ``BENCH_RESULT_BACKEND`` name others, as the tests do. Each run's
workers label their sandboxes with an owner of the run's own, so runs side by side leave each
other's sandboxes alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import redis

from worker.sandbox import docker_client
from worker.sandbox.reaper import owned_containers, remove_container

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")
BACKEND = os.environ.get("BENCH_RESULT_BACKEND", "redis://127.0.0.1:6379/11")
RUN_ID = uuid.uuid4().hex[:6]
RUNNER = str(Path(sys.executable).with_name("runner"))
MB = 2**20
LANGUAGES = "python,c,cpp"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def workers(names: Sequence[str], **env: str) -> Iterator[None]:
    """``runner worker`` processes on the benchmark's own queue, started side by side, all
    ready before we go on; stopped, and whatever sandboxes they left removed, afterwards."""
    from worker.app import app

    started: list[tuple[str, str, subprocess.Popen[bytes], Path]] = []
    try:
        for name in names:
            log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
            node, owner = f"{name}@bench-{RUN_ID}", f"bench-{name}-{RUN_ID}"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [RUNNER, "worker", "-n", node, "-l", "WARNING"],
                    env={
                        **os.environ,
                        "RUNNER_OWNER": owner,
                        # the languages the benchmarks submit in, unless told otherwise: a
                        # worker's start opens pools and self-tests every language it runs
                        "RUNNER_LANGUAGES": os.environ.get("RUNNER_LANGUAGES", LANGUAGES),
                        **env,
                    },
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append((node, owner, proc, log))
        deadline = time.monotonic() + 120
        for node, _, proc, log in started:
            while not app.control.ping(destination=[node], timeout=0.5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {node} did not start: {log.read_text()[-2000:]}")
        yield
    finally:
        for _, _, proc, _ in started:
            proc.terminate()
        for _, owner, proc, log in started:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for container in owned_containers(docker_client(), owner):  # a dead worker's
                remove_container(container)
            log.unlink()


def worker(name: str, **env: str) -> AbstractContextManager[None]:
    """One ``runner worker`` process, as :func:`workers`."""
    return workers([name], **env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    argv: list[str], ready: Callable[[], bool], timeout_s: float, **env: str
) -> Iterator[None]:
    """A server process of the run's own, its output discarded, entered once ``ready()``
    says it serves (connection errors count as not yet); stopped afterwards."""
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with suppress(OSError, redis.ConnectionError):
                if ready():
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def private_redis(maxmemory: str = "1gb") -> Iterator[str]:
    """A ``redis-server`` of this run's own on a free loopback port, configured as
    ``scripts/lib.sh`` starts the project's (no persistence, ``noeviction``) plus a
    ``maxmemory`` as the deployments set one: its memory and CPU figures are the fleet's
    alone, not those of whatever else uses the machine's Redis. Yields its URL (no
    database); stopped afterwards."""
    port = free_port()
    argv = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        maxmemory,
        "--maxmemory-policy",
        "noeviction",
        "--loglevel",
        "warning",
    ]
    url = f"redis://127.0.0.1:{port}"
    client = redis.Redis.from_url(url)
    with serving(argv, lambda: bool(client.ping()), timeout_s=10):
        yield url


def used_memory(client: redis.Redis) -> int:
    """The Redis instance's ``used_memory`` (every database: INFO is per instance)."""
    return int(client.info("memory")["used_memory"])


def cpu_s(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used so far (user + system, all its threads)."""
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class MemorySampler:
    """``used_memory`` of a Redis sampled every ``every_s`` on a thread, while it runs: the
    peak, and the latest figure."""

    def __init__(self, client: redis.Redis, every_s: float = 0.1) -> None:
        self._client = client
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = used_memory(client)
        self.samples = 1

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, used_memory(self._client))
            self.samples += 1

    def reset(self) -> None:
        """Start a new peak from now."""
        self.peak = used_memory(self._client)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, used_memory(self._client))
