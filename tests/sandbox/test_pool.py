"""Pool behaviour against real Docker: reuse, recycling, leftovers, deadlines, no leaks."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import docker.errors
import pytest
from structlog.testing import capture_logs

from tests.conftest import RUN_ID, TEST_LABEL
from tests.sandbox.helpers import python_job
from worker.compare import Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.errors import PoolClosed, SandboxError
from worker.judging.judge import Judge, Program
from worker.languages import LANGUAGES
from worker.programs import File
from worker.sandbox import open_pools
from worker.sandbox.container import (
    LABEL_FLEET,
    LABEL_OWNER,
    LABEL_SANDBOX,
    Sandbox,
    SandboxSpec,
    hardening,
)
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import Job
from worker.sandbox.reaper import (
    owned_containers,
    remove_container,
    remove_dead,
    remove_leftovers,
    remove_orphans,
)
from worker.settings import Settings

pytestmark = pytest.mark.docker

ECHO_C = b"#include <stdio.h>\nint main(){int c;while((c=getchar())!=EOF)putchar(c);return 0;}\n"


@pytest.fixture
def make_pools(
    docker_client: docker.DockerClient, images: dict[str, str], settings: Settings
) -> Iterator[object]:
    made: list[tuple[SandboxPools, str]] = []

    def make(
        image: str = "native",
        size: int = 1,
        max_jobs: int | None = None,
        owner: str = "",
        broker_url: str = "",
    ) -> SandboxPools:
        owner = owner or f"test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        pools = open_pools(
            replace(settings, broker_url=broker_url or settings.broker_url),
            size=size,
            owner=owner,
            images=[image],
            extra_labels=((TEST_LABEL, RUN_ID),),
            max_jobs=max_jobs,
        )
        made.append((pools, owner))
        return pools

    yield make
    for pools, _ in made:
        pools.close()
    for _, owner in made:
        assert owned_containers(docker_client, owner) == []


def echo_job(data: bytes = b"hi") -> Job:
    return Job(
        uid=0,
        argv=("./echo",),
        files=(File("echo", compiled_echo(), 0o755),),
        stdin=data,
        cpu_ms=1000,
        wall_ms=2000,
        procs=4,
        out_bytes=1 << 20,
    )


@functools.cache
def compiled_echo() -> bytes:
    """A C echo built on the host (same Debian libc as the native run image)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["gcc", "-O2", "-x", "c", "-o", f"{tmp}/echo", "-"]
        subprocess.run(cmd, input=ECHO_C, check=True)
        return Path(tmp, "echo").read_bytes()


def container_ids(client: docker.DockerClient, owner: str, fleet: str | None = None) -> set[str]:
    return {c.id for c in owned_containers(client, owner, fleet)}  # type: ignore[attr-defined]


def test_hardening_never_privileged_no_socket_no_network() -> None:
    params = hardening(SandboxSpec(image="x", owner="o"))
    assert params["privileged"] is False
    assert params["network_mode"] == "none"
    assert params["read_only"] is True
    assert params["cap_drop"] == ["ALL"]
    assert set(params["cap_add"]) <= {"SETUID", "SETGID", "KILL", "CHOWN"}
    assert "no-new-privileges:true" in params["security_opt"]
    assert params["mem_limit"] == params["memswap_limit"]
    assert params["environment"] == {}
    assert "volumes" not in params and "mounts" not in params
    assert params["init"] is True


def test_started_container_has_the_hardening(make_pools, docker_client) -> None:
    pools = make_pools()
    pools.start()
    (listed,) = owned_containers(docker_client, pools.owner)
    container = docker_client.containers.get(listed.id)
    host = container.attrs["HostConfig"]
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["Memory"] == host["MemorySwap"] > 0
    assert host["PidsLimit"] > 0 and host["NanoCpus"] > 0
    assert host["LogConfig"]["Type"] == "none"
    assert not any("docker.sock" in b for b in host.get("Binds") or [])
    assert container.attrs["Config"]["Labels"][LABEL_SANDBOX] == "1"


def test_sandbox_is_reused_then_recycled_after_max_jobs(make_pools, docker_client) -> None:
    pools = make_pools(max_jobs=3)
    pools.start()
    first = container_ids(docker_client, pools.owner)
    for _ in range(3):
        assert pools.run("native", echo_job(), 10).stdout == b"hi"
    report = pools.run("native", echo_job(), 30)  # waits for the replacement
    assert report.stdout == b"hi"
    assert container_ids(docker_client, pools.owner).isdisjoint(first)
    (state,) = pools.state()
    assert state["recycles"] == {"max_jobs": 1}
    assert state["jobs"] == 4


def test_max_jobs_one_gives_a_container_per_job(make_pools) -> None:
    pools = make_pools(max_jobs=1)
    pools.start()
    for _ in range(3):
        pools.run("native", echo_job(), 30)
    (state,) = pools.state()
    assert state["recycles"] == {"max_jobs": 3}
    assert state["jobs_per_container"] == 1.0


def test_single_use_sandboxes_exec_python_instead_of_starting_a_fork_server(make_pools) -> None:
    job = python_job(b"print('once')\n")
    single = make_pools("python", max_jobs=1)
    single.start()
    once = single.run("python", job, 30)
    assert (once.stdout, once.via) == (b"once\n", "exec")
    reused = make_pools("python", max_jobs=2)
    reused.start()
    assert reused.run("python", job, 30).via == "server"


def test_restarted_worker_removes_what_a_crashed_one_left(make_pools, docker_client) -> None:
    crashed = make_pools()
    crashed.start()
    left = container_ids(docker_client, crashed.owner)
    assert len(left) == 1
    successor = make_pools(owner=crashed.owner)
    with capture_logs() as logs:
        successor.start()
    assert container_ids(docker_client, crashed.owner).isdisjoint(left)
    assert any(e["event"] == "pool.leftovers_removed" for e in logs)


def test_killed_container_gives_retry_on_a_fresh_sandbox(make_pools, docker_client) -> None:
    pools = make_pools()
    pools.start()
    for container in owned_containers(docker_client, pools.owner):
        container.kill()
    program = Program(LANGUAGES["c"], (File("main", compiled_echo(), 0o755),))
    result = Judge(pools).run_test(
        program, TestCase("t", b"hello", b"hello"), Limits(), Comparison()
    )
    assert result.verdict == Verdict.AC
    (state,) = pools.state()
    assert sum(state["recycles"].values()) == 1


def test_silent_container_is_killed_at_the_outer_deadline(make_pools, docker_client) -> None:
    pools = make_pools()
    pools.start()
    (container,) = owned_containers(docker_client, pools.owner)
    container.pause()
    with pytest.raises(SandboxError, match="did not answer"):
        pools.run("native", echo_job(), 1.0)
    pools.run("native", echo_job(), 30)  # a replacement serves the next job
    assert container.id not in container_ids(docker_client, pools.owner)


def test_closed_pool_refuses_leases(make_pools) -> None:
    pools = make_pools()
    pools.start()
    pools.close()
    with pytest.raises(PoolClosed):
        pools.run("native", echo_job(), 5)


def test_unknown_image_is_a_sandbox_error(make_pools) -> None:
    with pytest.raises(SandboxError, match="no sandbox pool"):
        make_pools().run("cobol", echo_job(), 5)


def test_two_concurrent_leases_use_two_sandboxes(make_pools) -> None:
    pools = make_pools(size=2)
    pools.start()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert pools.run("native", echo_job(b"x" * 1000), 10).stdout == b"x" * 1000
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    (state,) = pools.state()
    assert state["jobs"] == 40 and state["created"] == 2


def test_long_run_leaks_no_containers_fds_or_memory(make_pools, docker_client) -> None:
    pools = make_pools(size=2, max_jobs=50)
    pools.start()
    for _ in range(100):  # warm-up: caches, connection pool, first recycles
        pools.run("native", echo_job(), 10)
    gc.collect()
    fds = len(os.listdir("/proc/self/fd"))
    rss = _rss_kb()
    for i in range(2000):
        assert pools.run("native", echo_job(b"%d" % i), 10).stdout == b"%d" % i
    # in-flight replacements hold a few sockets at any moment, so they get a moment to land;
    # a leak of one descriptor per recycled container would stay at 40 or more
    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        if len(os.listdir("/proc/self/fd")) <= fds + 10 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(os.listdir("/proc/self/fd")) <= fds + 10
    assert _rss_kb() - rss < 20_000
    assert len(container_ids(docker_client, pools.owner)) <= 2 + 2  # pool plus replacements
    (state,) = pools.state()
    assert state["recycles"]["max_jobs"] >= 40


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def test_orphans_of_dead_nodes_are_removed_and_others_kept(docker_client, images) -> None:
    fleet = f"test-{RUN_ID}"

    def sandbox(owner: str, fleet: str = fleet) -> str:
        labels = {LABEL_SANDBOX: "1", LABEL_OWNER: owner, LABEL_FLEET: fleet, TEST_LABEL: RUN_ID}
        container = docker_client.containers.create(images["native"], labels=labels)
        return container.id

    dead = sandbox(f"ghost-{RUN_ID}@gone")
    alive = sandbox(f"alive-{RUN_ID}@here")
    manual = sandbox(f"manual-{RUN_ID}")  # an owner set by hand: never reaped by others
    foreign = sandbox(f"ghost-{RUN_ID}@gone", fleet=f"other-{RUN_ID}")  # another broker's
    try:
        removed = remove_orphans(
            docker_client, {f"alive-{RUN_ID}@here"}, "me@here", fleet, min_age_s=0
        )
        remaining = {c.id for c in docker_client.containers.list(all=True, sparse=True)}
        assert dead not in remaining
        assert {alive, manual, foreign} <= remaining
        assert removed == 1
    finally:
        for cid in (dead, alive, manual, foreign):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.containers.get(cid).remove(force=True)


def test_health_probe_outlives_a_failing_round(docker_client, images, settings) -> None:
    owner = f"test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    pools = open_pools(
        replace(settings, health_interval_s=1),
        size=1,
        owner=owner,
        images=["native"],
        extra_labels=((TEST_LABEL, RUN_ID),),
    )
    calls: list[float] = []

    def flaky_ping() -> set[str]:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ConnectionError("redis restarting")  # e.g. Celery's ping during a restart
        return set()

    pools.alive_nodes = flaky_ping
    pools.start()
    try:
        deadline = time.monotonic() + 20
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(calls) >= 3  # rounds went on after the failing one
        assert pools.run("native", echo_job(), 10).stdout == b"hi"
    finally:
        pools.close()
    assert owned_containers(docker_client, owner) == []


def test_fleets_sharing_an_engine_never_sweep_each_others_sandboxes(
    make_pools, docker_client, images
) -> None:
    # two fleets (two brokers) on one engine whose node names coincide, as when the demo stack
    # runs next to a worker on the host: no sweep of one touches the other's sandboxes
    owner = f"runner@{RUN_ID}-{uuid.uuid4().hex[:6]}"
    ours = make_pools(owner=owner, broker_url=f"redis://fleet-a-{RUN_ID}:6379/0")
    theirs = make_pools(owner=owner, broker_url=f"redis://fleet-b-{RUN_ID}:6380/0")
    ours.start()
    theirs.start()  # its leftover sweep, for the same owner name, must not take ours
    assert ours.fleet != theirs.fleet
    (mine,) = container_ids(docker_client, owner, ours.fleet)
    (their_idle,) = container_ids(docker_client, owner, theirs.fleet)
    labels = {
        LABEL_SANDBOX: "1",
        LABEL_OWNER: owner,
        LABEL_FLEET: theirs.fleet,
        TEST_LABEL: RUN_ID,
    }
    exited = docker_client.containers.create(images["native"], labels=labels)
    try:
        exited.start()  # stdin is not open: the supervisor exits at once
        exited.wait(timeout=10)
        # their node never answers our ping, and our sweeps run with no age limit
        assert remove_orphans(docker_client, set(), "runner@me", ours.fleet, min_age_s=0) == 1
        assert ours.reap_strays(min_age_s=0) == 0
        assert remove_dead(docker_client, ours.fleet, min_age_s=0) == 0
        remove_leftovers(docker_client, owner, ours.fleet)
        assert container_ids(docker_client, owner, ours.fleet) == set()  # ours: swept
        assert container_ids(docker_client, owner, theirs.fleet) == {their_idle, exited.id}
        assert theirs.run("native", echo_job(), 10).stdout == b"hi"  # theirs still serves
        # and their own dead sweep is what removes their exited sandbox
        assert remove_dead(docker_client, theirs.fleet, min_age_s=0) == 1
        assert container_ids(docker_client, owner, theirs.fleet) == {their_idle}
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            exited.remove(force=True)
    assert mine not in container_ids(docker_client, owner)


def test_sandboxes_of_a_killed_worker_are_removed_not_left_exited(docker_client, images) -> None:
    # a worker process holding two sandboxes, one busy with a 3 s job, dies by SIGKILL: the
    # idle one is gone at once, the busy one once its job ends, and no exited one remains
    owner = f"test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    script = f"""
import os, sys, threading, time
from tests.sandbox.helpers import python_job
from worker.sandbox import open_pools
from worker.settings import Settings
prefix = {{k: v for k, v in os.environ.items() if k == "RUNNER_IMAGE_PREFIX"}}
pools = open_pools(Settings.from_env(prefix), size=2, owner={owner!r}, images=["python"],
                   extra_labels=(({TEST_LABEL!r}, {RUN_ID!r}),))
pools.start()
job = python_job(b"import time; time.sleep(3)", wall_ms=5000)
threading.Thread(target=pools.run, args=("python", job, 10), daemon=True).start()
time.sleep(0.5)
print("busy", flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert proc.stdout is not None
        assert b"busy\n" in iter(proc.stdout.readline, b""), "the worker process died"
        held = container_ids(docker_client, owner)
        assert len(held) == 2
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        gone: dict[str, float] = {}
        while len(gone) < len(held) and time.monotonic() - killed < 15:
            for cid in held - set(gone):
                try:
                    docker_client.api.inspect_container(cid)
                except docker.errors.NotFound:
                    gone[cid] = time.monotonic() - killed
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
        left = owned_containers(docker_client, owner)
        for container in left:
            remove_container(container)
    assert set(gone) == held, "a dead worker's sandbox stayed (exited or running)"
    assert min(gone.values()) < 2.0  # the idle one: at once
    assert max(gone.values()) < 3.0 + 5.0  # the busy one: once its job ended


def test_remove_is_safe_when_the_engine_removed_the_sandbox_already(
    docker_client, images, test_labels
) -> None:
    spec = SandboxSpec(image=images["native"], owner=f"test-{RUN_ID}", extra_labels=test_labels)
    for end in ("kill", "close"):
        sandbox = Sandbox(docker_client, spec)
        try:
            sandbox.ping()
            if end == "kill":
                docker_client.api.kill(sandbox.id)  # the engine's auto-removal starts at once
            else:
                sandbox._sock.shutdown(socket.SHUT_WR)  # stdin closes: the supervisor exits
            with capture_logs() as logs:
                sandbox.remove()
                sandbox.remove()
        finally:
            sandbox.remove()
        assert not [e for e in logs if e["event"] == "sandbox.remove_failed"]
        with pytest.raises(docker.errors.NotFound):
            docker_client.api.inspect_container(sandbox.id)
