"""The compose stack's `registry` service (profile `registry`): built from images/registry
(Debian's docker-registry) as scripts/fleet-images builds it, brought up alone from
deploy/docker-compose.yml with an htpasswd secret, it refuses anonymous clients, takes a push
by content tag from the fleet's push code and gives the image back to the fleet's pull code.

Its own project, image tag, ports and htpasswd; the project is brought down with its volume,
and every image the test made is removed."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import RUN_ID, free_port
from tests.deploy.test_compose import clean_env, compose
from worker.images.docker_cli import DockerCli
from worker.images.registry import LATEST, Registry, fetch_missing, push
from worker.settings import Settings

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def _build_registry_image(cli: DockerCli, tag: str) -> None:
    flags = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-m", "worker.images", "flags", "registry"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    from worker.images.base import resolve_base

    base = resolve_base(cli)
    args = ["build", "-q", "-f", "images/registry/Dockerfile", "--target", "production"]
    args += ["-t", tag, "--build-arg", f"BASE_IMAGE={base}", *filter(None, flags), "."]
    result = subprocess.run(
        [cli.path, *args],
        cwd=ROOT,
        env={**clean_env(), "DOCKER_BUILDKIT": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture
def service(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[Registry, str]]:
    cli = DockerCli.pick()
    image = f"runnertest-registry:{RUN_ID}"
    _build_registry_image(cli, image)
    password = uuid.uuid4().hex
    (tmp_path / "password").write_text(password + "\n")
    htpasswd = tmp_path / "htpasswd"
    made = subprocess.run(
        ["bash", "-c", f'source scripts/lib.sh && registry_htpasswd "{htpasswd}"'],
        cwd=ROOT,
        env=clean_env(FLEET_REGISTRY_PASSWORD_FILE=str(tmp_path / "password")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    htpasswd.chmod(0o644)  # read by the service's uid
    port = free_port()
    project = f"runnerreg{RUN_ID}{uuid.uuid4().hex[:4]}"
    env = clean_env(
        REGISTRY_IMAGE=image,
        REGISTRY_HTPASSWD_FILE=str(htpasswd),
        REGISTRY_PORT=str(port),
        DOCKER_GID="0",
        FLOWER_PASSWORD="unused",
    )
    try:
        up = compose(project, env, "--profile", "registry", "up", "-d", "registry")
        assert up.returncode == 0, up.stderr
        yield Registry(f"127.0.0.1:{port}", "runner", password), project
    finally:
        compose(project, env, "--profile", "registry", "down", "-v", timeout=120)
        docker_client.images.remove(image, force=True)


def test_the_registry_service_asks_for_a_password_and_serves_images_by_content_tag(
    service: tuple[Registry, str], docker_client: docker.DockerClient
) -> None:
    registry, project = service
    anonymous = Registry(registry.address)
    wrong = Registry(registry.address, "runner", "wrong")
    _wait_up(registry)
    for refused in (anonymous, wrong):
        with pytest.raises(Exception, match="refused access"):
            refused.tags("anything")
    # a small image of this test's own, pushed by content tag as build-images --push does
    prefix = f"regsvc{RUN_ID[:6]}{uuid.uuid4().hex[:4]}"
    name = f"{prefix}-python"
    source = docker_client.images.get(next(iter(_sandbox_refs(docker_client))))
    source.tag(name, "c0ffee000001")
    try:
        pushed = push(DockerCli.pick(), registry, [f"{name}:c0ffee000001"])
        assert pushed == [
            f"{registry.address}/{name}:c0ffee000001",
            f"{registry.address}/{name}:{LATEST}",
        ]
        assert registry.content_tag(name)[0] == "c0ffee000001"
        docker_client.images.remove(f"{name}:c0ffee000001")
        settings = Settings.from_env({"RUNNER_IMAGE_PREFIX": prefix})
        (pulled,) = fetch_missing(docker_client, settings, ["python"], registry)
        assert pulled.ref == f"{name}:c0ffee000001"
        assert f"{name}:{LATEST}" in docker_client.images.get(pulled.ref).tags
    finally:
        for tag in (f"{name}:c0ffee000001", f"{name}:{LATEST}"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag)
    # the service's own logs hold no password
    logs = docker_client.containers.get(f"{project}_registry_1").logs().decode(errors="replace")
    assert registry.password not in logs


def _sandbox_refs(client: docker.DockerClient) -> list[str]:
    settings = Settings.from_env({})
    ref = f"{settings.image_prefix}-python:{LATEST}"
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {ref} is missing; run scripts/build-images")
    return [ref]


def _wait_up(registry: Registry, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            registry.tags("anything")
            return
        except Exception as exc:
            if "unreachable" not in str(exc) or time.monotonic() > deadline:
                return
            time.sleep(0.5)
