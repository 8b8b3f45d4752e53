"""A worker confined to a host slice (RUNNER_HOST_SLICE, RUNNER_HOST_CPUS): the worker process
and its sandboxes are in the slice, and busy submissions use no more CPU than its quota, as
the slice's own ``cpuacct.usage`` measures it over a window (margins generous: a quota is
enforced per 100 ms period, and the machine is shared; no wall-clock speed is asserted).

Each test's slice is named after the run and removed afterwards, from every hierarchy."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import RUN_ID
from tests.fleet.conftest import Worker
from worker.client import Client
from worker.sandbox.reaper import owned_containers
from worker.sandbox.slice import RESERVED_SHARES, HostSlice, hierarchies, remove

pytestmark = [pytest.mark.docker, pytest.mark.redis]

BUSY_C = "int main(void){volatile unsigned long i=0;for(;;)i++;}\n"
QUOTA = 0.3


@pytest.fixture
def host() -> Iterator[HostSlice]:
    if "cpu" not in hierarchies() or "cpuacct" not in hierarchies():
        pytest.skip("no cgroup v1 cpu and cpuacct hierarchies here")
    made = HostSlice(f"test-{RUN_ID}-{uuid.uuid4().hex[:4]}", QUOTA)
    yield made
    # the workers fixture has stopped its workers and removed their sandboxes by now
    # (fixtures end in reverse order); what the engine made for them goes too
    deadline = time.monotonic() + 30
    while made.directory("cpu").exists() and time.monotonic() < deadline:
        remove(made)
        time.sleep(0.2)
    assert not made.directory("cpu").exists(), f"slice {made.cgroup_parent} left behind"


def test_a_confined_worker_and_its_sandboxes_stay_within_the_slice_quota(
    host: HostSlice,  # first: its teardown runs after the workers' (stopped, sandboxes gone)
    workers: Callable[..., Worker],
    client: Client,
    docker_client: docker.DockerClient,
) -> None:
    worker = workers(
        concurrency=2,
        RUNNER_LANGUAGES="c",
        RUNNER_HOST_SLICE=host.name,
        RUNNER_HOST_CPUS=str(QUOTA),
    )
    assert worker.proc is not None
    # the worker process itself, and every sandbox it made, are in the slice
    assert worker.proc.pid in host.pids()
    sandboxes = owned_containers(docker_client, worker.owner)
    assert sandboxes
    for container in sandboxes:
        container.reload()  # type: ignore[attr-defined]
        assert container.attrs["HostConfig"]["CgroupParent"] == f"/{host.cgroup_parent}"  # type: ignore[attr-defined]
        assert (host.directory("cpuacct") / container.id).is_dir()  # type: ignore[attr-defined]
    assert host.quota_cpus() == pytest.approx(QUOTA)
    # its quota is its own: the highest weight, so other load on the machine cannot take it
    assert int((host.directory("cpu") / "cpu.shares").read_text()) == RESERVED_SHARES

    # two busy tests at once: unconfined they would take up to two CPUs (a sandbox may use 1)
    handle = client.submit(
        {
            "language": "c",
            "source": BUSY_C,
            "tests": [{"stdin": ""}, {"stdin": ""}],
            "limits": {"cpu_time_ms": 1500, "wall_time_ms": 5_000},  # the tests' maximum
        }
    )
    deadline = time.monotonic() + 60
    while not _sandboxes_busy(host) and time.monotonic() < deadline:
        time.sleep(0.1)
    periods_before, throttled_before = host.throttled()
    used_before, start = host.usage_ns(), time.monotonic()
    time.sleep(3)
    used, seconds = (host.usage_ns() - used_before) / 1e9, time.monotonic() - start
    periods, throttled = host.throttled()
    result = handle.result(timeout=120)
    assert [test.verdict for test in result.tests] == ["TLE", "TLE"], result
    # within the quota over the window (generously: a period's quota may straddle its edges)
    assert used <= QUOTA * seconds * 1.25 + 0.1, (used, seconds)
    # and the quota is what held it: the slice ran out of it in most periods meanwhile
    assert throttled - throttled_before >= (periods - periods_before) // 2 > 0, (
        periods - periods_before,
        throttled - throttled_before,
    )


def _sandboxes_busy(host: HostSlice) -> bool:
    """Whether the slice's sandboxes used CPU over the last 0.2 s (the busy tests started)."""
    before = _children_usage_ns(host)
    time.sleep(0.2)
    return _children_usage_ns(host) - before > 0.02 * 1e9


def _children_usage_ns(host: HostSlice) -> int:
    total = 0
    for child in host.directory("cpuacct").iterdir():
        usage = Path(child, "cpuacct.usage")
        if child.is_dir() and usage.exists():
            try:
                total += int(usage.read_text())
            except (OSError, ValueError):  # a sandbox removed meanwhile
                continue
    return total


def test_a_worker_refuses_to_start_on_a_quota_without_a_slice(tmp_path: Path) -> None:
    worker = Worker(tmp_path, "noslice", RUNNER_HOST_CPUS="0.4")
    done = worker.run_to_exit()
    assert done.returncode != 0
    assert "RUNNER_HOST_CPUS=0.4 needs RUNNER_HOST_SLICE" in done.stdout + done.stderr
