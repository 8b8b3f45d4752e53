"""Shared fixtures. Tests that need Docker or Redis fail (never skip) when the service is
missing, with the command that provides it; deselect them with ``-m "not docker"``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import docker
import docker.errors
import pytest
import redis

from worker.images.catalog import image_ref
from worker.judge import Judge
from worker.sandbox import open_pools, sandbox_images
from worker.sandbox.pool import SandboxPools
from worker.sandbox.reaper import owned_containers
from worker.settings import Settings

TEST_LABEL = "io.runner.test"
RUN_ID = uuid.uuid4().hex[:10]

DB_PAIRS = ((14, 15), (12, 13), (6, 7), (4, 5))  # 10/11 are the e2e benchmark's


def _claim_databases() -> tuple[int, int]:
    """Two Redis databases of this run's own: fleet tests flush them around each test, so two
    runs side by side on one machine must not share them. Falls back to the first pair when
    Redis is down (the fixtures then fail with a clear message)."""
    try:
        client = redis.Redis(port=6379, socket_connect_timeout=2)
        for broker, backend in DB_PAIRS:
            if client.set(f"runner-test-lock:{broker}", RUN_ID, nx=True, ex=7200):
                return broker, backend
    except redis.RedisError:
        pass
    return DB_PAIRS[0]


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
        if client.get(f"runner-test-lock:{BROKER_DB}") == RUN_ID.encode():
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
    refs = {key: image_ref(settings.image_prefix, key) for key in sandbox_images()}
    for ref in refs.values():
        try:
            docker_client.images.get(ref)
        except docker.errors.ImageNotFound:
            pytest.fail(f"image {ref} is missing; run scripts/build-images")
    return refs


@pytest.fixture
def test_labels() -> tuple[tuple[str, str], ...]:
    return ((TEST_LABEL, RUN_ID),)


@pytest.fixture(scope="module")
def pools(
    docker_client: docker.DockerClient, images: dict[str, str], settings: Settings
) -> Iterator[SandboxPools]:
    """Real warm pools (one sandbox per image), removed afterwards; none may be left."""
    owner = f"test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    pools = open_pools(settings, size=1, owner=owner, extra_labels=((TEST_LABEL, RUN_ID),))
    pools.start()
    yield pools
    pools.close()
    assert owned_containers(docker_client, owner) == []


@pytest.fixture(scope="module")
def judge(pools: SandboxPools) -> Judge:
    return Judge(pools)
