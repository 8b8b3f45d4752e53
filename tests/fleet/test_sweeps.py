"""A real worker's sweeps: its sandboxes carry its fleet (the broker it serves), and its probe
rounds remove dead sandboxes of its own fleet only, never another fleet's on the same engine."""

from __future__ import annotations

import time
import uuid
from typing import Any

import docker
import docker.errors
import pytest

from tests.conftest import RUN_ID, TEST_ENV, TEST_LABEL
from worker.sandbox import broker_fleet
from worker.sandbox.container import LABEL_FLEET, LABEL_OWNER, LABEL_SANDBOX
from worker.sandbox.reaper import owned_containers

pytestmark = [pytest.mark.docker, pytest.mark.redis]


def exited_sandbox(client: docker.DockerClient, image: str, fleet: str, owner: str) -> Any:
    """A sandbox container that has exited (its supervisor saw no stdin) and was not
    auto-removed: what an engine restart or an older worker leaves."""
    labels = {LABEL_SANDBOX: "1", LABEL_OWNER: owner, LABEL_FLEET: fleet, TEST_LABEL: RUN_ID}
    container = client.containers.create(image, labels=labels)
    container.start()
    container.wait(timeout=10)
    return container


def exists(client: docker.DockerClient, cid: str) -> bool:
    try:
        client.api.inspect_container(cid)
    except docker.errors.NotFound:
        return False
    return True


def test_worker_sweeps_its_own_fleets_dead_sandboxes_and_no_one_elses(
    workers, docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    worker = workers("sweeper", concurrency=1, RUNNER_HEALTH_INTERVAL_S="1")
    fleet = broker_fleet(TEST_ENV["RUNNER_BROKER_URL"])
    labels = [c.attrs["Labels"] for c in owned_containers(docker_client, worker.owner)]
    assert labels and all(label[LABEL_FLEET] == fleet for label in labels)
    # same owner names in both fleets: only the fleet tells them apart
    owner = f"runner@gone-{uuid.uuid4().hex[:6]}"
    ours = exited_sandbox(docker_client, images["native"], fleet, owner)
    theirs = exited_sandbox(docker_client, images["native"], f"other-{RUN_ID}", owner)
    try:
        deadline = time.monotonic() + 15
        while exists(docker_client, ours.id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not exists(docker_client, ours.id), "the worker left its fleet's dead sandbox"
        time.sleep(2.5)  # a couple more rounds
        assert exists(docker_client, theirs.id), "the worker removed another fleet's sandbox"
        assert worker.events("pool.dead_removed")
    finally:
        for container in (ours, theirs):
            if exists(docker_client, container.id):
                container.remove(force=True)
