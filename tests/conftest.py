"""Shared fixtures. Tests that need Docker or Redis fail (never skip) when the service is
missing, with the command that provides it; deselect them with ``-m "not docker"``."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import redis

from worker.images.catalog import image_ref
from worker.judging.judge import Judge
from worker.sandbox import open_pools, sandbox_images
from worker.sandbox.pools import SandboxPools
from worker.sandbox.reaper import owned_containers
from worker.settings import Settings

TEST_LABEL = "io.runner.test"
# pytest imports this file as `conftest` and the fleet tests import it again as
# `tests.conftest`: the run's identity and databases live in the environment, so that both
# copies (and only this process, not its children) agree on them.
_OURS = f"{os.getpid()}:"
if not os.environ.get("TESTS_RUN_ID", "").startswith(_OURS):
    os.environ["TESTS_RUN_ID"] = _OURS + uuid.uuid4().hex[:10]
RUN_ID = os.environ["TESTS_RUN_ID"].removeprefix(_OURS)

# 0/1: a fleet's defaults, 10/11: the e2e benchmark's
DB_PAIRS = ((14, 15), (12, 13), (6, 7), (4, 5), (8, 9), (2, 3))
LOCK_VALUE = f"{os.getpid()}:{RUN_ID}"


def _alive(lock: bytes | None) -> bool:
    """Whether the run holding a lock still runs (runs share this machine and its Redis); a
    lock that names no process is left to its expiry."""
    if lock is None:
        return False
    pid, sep, _ = lock.partition(b":")
    if not sep or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _claim_databases() -> tuple[int, int]:
    claimed = os.environ.get("TESTS_DATABASES", "")
    if claimed.startswith(_OURS):
        broker, backend = claimed.removeprefix(_OURS).split(",")
        return int(broker), int(backend)
    pair = _claim_free_pair()
    os.environ["TESTS_DATABASES"] = f"{_OURS}{pair[0]},{pair[1]}"
    return pair


def _claim_free_pair() -> tuple[int, int]:
    """Two Redis databases of this run's own: fleet tests flush them around each test, so two
    runs side by side on one machine must never share them. A lock whose run has died (killed
    before it could release it) is taken over. Falls back to the first pair when Redis is down
    (the fixtures then fail with a clear message); with every pair held by a live run, the
    session stops rather than flush another run's databases."""
    try:
        client = redis.Redis(port=6379, socket_connect_timeout=2)
        for broker, backend in DB_PAIRS:
            key = f"runner-test-lock:{broker}"
            if client.set(key, LOCK_VALUE, nx=True, ex=7200):
                return broker, backend
            held = client.get(key)
            if not _alive(held) and client.set(key, LOCK_VALUE, ex=7200, get=True) == held:
                return broker, backend
    except redis.RedisError:
        return DB_PAIRS[0]
    raise pytest.UsageError(
        f"every test database pair {DB_PAIRS} of the local Redis is held by another test run"
    )


BROKER_DB, BACKEND_DB = _claim_databases()

# The suite's own Redis databases and queue, set before the Celery app first reads its
# configuration.
TEST_ENV = {
    "RUNNER_BROKER_URL": f"redis://127.0.0.1:6379/{BROKER_DB}",
    "RUNNER_RESULT_BACKEND": f"redis://127.0.0.1:6379/{BACKEND_DB}",
    "RUNNER_QUEUE": f"runner-test-{RUN_ID}",
    "RUNNER_MAX_WALL_TIME_MS": "5000",
    "RUNNER_VISIBILITY_TIMEOUT_S": "60",
    "RUNNER_LOG_FORMAT": "json",
}
os.environ.update(TEST_ENV)


def pytest_sessionfinish(session: pytest.Session) -> None:
    client = redis.Redis(port=6379, socket_connect_timeout=2)
    try:
        if client.get(f"runner-test-lock:{BROKER_DB}") == LOCK_VALUE.encode():
            client.delete(f"runner-test-lock:{BROKER_DB}")
    except redis.RedisError:
        pass


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Defaults, but for the images' prefix: images built under another prefix (a change to
    the sandbox under test, next to the images a running fleet uses) are tested with
    RUNNER_IMAGE_PREFIX set, which worker processes the tests start inherit as well."""
    prefix = {k: v for k, v in os.environ.items() if k == "RUNNER_IMAGE_PREFIX"}
    return Settings.from_env(prefix)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the Docker engine is not reachable ({exc}); run scripts/bootstrap")
    yield client
    leftovers = client.containers.list(
        all=True, sparse=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}
    )
    for container in leftovers:
        container.remove(force=True)
    assert not leftovers, f"tests left {len(leftovers)} containers behind"


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient, settings: Settings) -> dict[str, str]:
    """Catalogue key -> image reference, failing clearly when an image was never built."""
    refs = {key: image_ref(settings.image_prefix, key) for key in sandbox_images(settings)}
    for ref in refs.values():
        try:
            docker_client.images.get(ref)
        except docker.errors.ImageNotFound:
            pytest.fail(f"image {ref} is missing; run scripts/build-images")
    return refs


@pytest.fixture
def test_labels() -> tuple[tuple[str, str], ...]:
    return ((TEST_LABEL, RUN_ID),)


@contextmanager
def serving(
    argv: list[str], log: Path, ready: Callable[[], bool], timeout: float = 30, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process a test starts (its output in ``log``), yielded once ``ready()`` says it
    serves (connection errors count as not yet); stopped afterwards, killed if it must be."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{argv[0]} exited:\n{log.read_text()[-3000:]}")
            with suppress(OSError):
                if ready():
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"{argv[0]} not serving after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A loopback port nothing listens on now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started_pools(
    docker_client: docker.DockerClient, settings: Settings, **options: Any
) -> Iterator[SandboxPools]:
    """Real warm pools of a test's own (one sandbox per image unless ``size`` says otherwise;
    ``options`` as :func:`open_pools` takes them), labelled as the tests', removed afterwards:
    none may be left."""
    owner = f"test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    options.setdefault("size", 1)
    pools = open_pools(settings, owner=owner, extra_labels=((TEST_LABEL, RUN_ID),), **options)
    pools.start()
    try:
        yield pools
    finally:
        pools.close()
    assert owned_containers(docker_client, owner) == []


@pytest.fixture(scope="module")
def pools(
    docker_client: docker.DockerClient, images: dict[str, str], settings: Settings
) -> Iterator[SandboxPools]:
    """Real warm pools (one sandbox per image), removed afterwards; none may be left."""
    with started_pools(docker_client, settings) as pools:
        yield pools


@pytest.fixture(scope="module")
def judge(pools: SandboxPools) -> Judge:
    return Judge(pools)
