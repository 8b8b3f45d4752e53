"""The fleet's image registry, for real: Debian's docker-registry started by scripts/lib.sh
(ensure_registry) with htpasswd authentication, filled by ``scripts/build-images --push`` by
content tag, and a worker on a "host" without the images (this engine, under an image prefix of
this run's own, with that prefix's images removed) that pulls them, becomes ready and judges;
or refuses, naming the image and the registry.

Every image these tests make is under their own prefix and removed; the registry is a process
of their own (its pid file), stopped at the end, its data in a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.conftest import RUN_ID
from tests.fleet.conftest import Worker
from worker.client import Client
from worker.contract import Verdict
from worker.images.catalog import image_name

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Reg:
    address: str
    directory: Path
    password_file: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "RUNNER_REGISTRY": self.address,
            "RUNNER_REGISTRY_USER": "runner",
            "RUNNER_REGISTRY_PASSWORD_FILE": str(self.password_file),
        }


def _lib(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source scripts/lib.sh && {command}"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reg]:
    """A registry of this module's own, as the scripts start one, with authentication on."""
    directory = tmp_path_factory.mktemp("registry")
    env = {
        "FLEET_REGISTRY_ADDR": f"127.0.0.1:{_free_port()}",
        "FLEET_REGISTRY_DIR": str(directory),
        "FLEET_REGISTRY_AUTH": "htpasswd",
    }
    started = _lib("ensure_registry", **env)
    if started.returncode != 0:
        pytest.fail(
            f"the registry did not start (scripts/lib.sh ensure_registry):\n{started.stderr}"
        )
    try:
        yield Reg(env["FLEET_REGISTRY_ADDR"], directory, directory / "password")
    finally:
        _lib("stop_registry", **env)


@pytest.fixture
def prefix(docker_client: docker.DockerClient) -> Iterator[str]:
    """An image prefix of this test's own; every image under it is removed afterwards."""
    name = f"regtest{RUN_ID[:6]}{uuid.uuid4().hex[:4]}"
    yield name
    _remove_prefix(docker_client, name)


def _remove_prefix(client: docker.DockerClient, prefix: str) -> None:
    # the engine's list as it answers it: images.list() inspects each image afterwards, and
    # other tests remove theirs meanwhile
    for image in client.api.images():
        for tag in image.get("RepoTags") or ():
            if tag.split("/")[-1].startswith(f"{prefix}-"):
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(tag, force=True)


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _build_and_push(reg: Reg, prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts/build-images"), "python", "--push"],
        cwd=ROOT,
        env={**os.environ, **reg.env, "RUNNER_IMAGE_PREFIX": prefix, "RUNNER_LANGUAGES": ""},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_the_scripts_start_a_registry_that_asks_for_its_password(registry: Reg) -> None:
    password = registry.password_file.read_text().strip()
    assert registry.password_file.stat().st_mode & 0o077 == 0
    url = f"http://{registry.address}/v2/"
    assert _status(url) == 401
    assert _status(url, ("runner", "not-" + password)) == 401
    assert _status(url, ("runner", password)) == 200
    # started again: the running one is kept, and the password is printed nowhere
    again = _lib(
        "ensure_registry",
        FLEET_REGISTRY_ADDR=registry.address,
        FLEET_REGISTRY_DIR=str(registry.directory),
        FLEET_REGISTRY_AUTH="htpasswd",
    )
    assert again.returncode == 0, again.stderr
    for text in (again.stdout, again.stderr, (registry.directory / "registry.log").read_text()):
        assert password not in text


def test_a_host_without_the_images_pulls_them_by_content_tag_and_judges(
    registry: Reg, prefix: str, docker_client: docker.DockerClient, workers, client: Client
) -> None:
    pushed = _build_and_push(registry, prefix)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    password = registry.password_file.read_text().strip()
    assert password not in pushed.stdout + pushed.stderr
    name = image_name(prefix, "python")
    tag = next(t for t in docker_client.images.get(f"{name}:latest").tags if t != f"{name}:latest")
    assert f"pushed {registry.address}/{tag}" in pushed.stdout
    assert f"pushed {registry.address}/{name}:latest" in pushed.stdout
    # the pushing client's credentials were its own for that push: none left behind
    assert registry.address not in _docker_config()

    _remove_prefix(docker_client, prefix)  # a new host: none of the images
    worker = workers(
        "joiner",
        **registry.env,
        RUNNER_IMAGE_PREFIX=prefix,
        RUNNER_LANGUAGES="python",
        RUNNER_CONCURRENCY="1",
    )
    # pulled by the content tag the registry's latest is, named as on the building host
    local = docker_client.images.get(f"{name}:latest")
    assert tag in local.tags
    assert not [t for t in local.tags if t.startswith(registry.address)]
    (event,) = worker.events("worker.time_to_ready")
    assert event["pulled"] == [tag]
    for part in ("pull_s", "prewarm_s", "connect_s", "total_s"):
        assert isinstance(event[part], float) and event[part] >= 0, (part, event)
    assert event["pull_s"] > 0
    # the whole start, imports and Celery's own included, holds the three parts
    assert event["process_s"] >= event["total_s"] - 0.05, event
    assert password not in worker.log.read_text()
    handle = client.submit(
        {
            "language": "python",
            "source": "print(int(input()) * 2)",
            "tests": [{"stdin": "21", "expected_stdout": "42"}],
        }
    )
    assert handle.result(timeout=60).verdict == Verdict.AC


def test_a_missing_image_is_refused_naming_it_and_the_registry(
    registry: Reg, prefix: str, tmp_path: Path, redis_db: object
) -> None:
    name = image_name(prefix, "python")
    refused = Worker(
        tmp_path,
        "refused",
        **registry.env,
        RUNNER_IMAGE_PREFIX=prefix,
        RUNNER_LANGUAGES="python",
    ).run_to_exit()
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("runner: the worker cannot start: ")
    assert f"sandbox image {name}:latest" in line and f"registry {registry.address}" in line
    assert "is not there" in line
    # wrong credentials: refused as well, saying so
    bad = registry.directory / "wrong-password"
    bad.write_text("wrong\n")
    refused = Worker(
        tmp_path,
        "refused2",
        **{**registry.env, "RUNNER_REGISTRY_PASSWORD_FILE": str(bad)},
        RUNNER_IMAGE_PREFIX=prefix,
        RUNNER_LANGUAGES="python",
    ).run_to_exit()
    line = refused.stderr.strip().splitlines()[-1]
    assert f"registry {registry.address}" in line and "refused access as 'runner'" in line
    assert "wrong" not in line.replace("'runner'", "")


def _docker_config() -> str:
    path = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        return json.dumps(json.loads(path.read_text()).get("auths", {}))
    except (OSError, ValueError):
        return ""
