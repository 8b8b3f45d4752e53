"""Simulated hosts (issue 21): 1, 2 and 3 worker hosts of equal size against one shared Redis
and one producer, each host a ``runner worker`` confined with its sandboxes to a CPU slice of
its own (``RUNNER_HOST_SLICE``, ``RUNNER_HOST_CPUS``: a cgroup v1 cpu,cpuacct cgroup with a CFS
quota, :mod:`worker.sandbox.slice`), so that a host brings its own CPUs as separate machines
would; the same stream of 10-test C-echo submissions as the scale benchmark through each.

What is shared, and measured per test as hosts are added: Redis (servers of the run's own, so
``INFO cpu`` is the fleet's alone; the broker's and the result backend's apart when they are
two servers, as scale.py starts them), the producer (this process: submits,
result waits and this benchmark's samplers, ``getrusage``), the Docker engine (dockerd,
containerd and the shims, by ``/proc``: on real hosts each host has its own, here the one
engine runs outside every slice), and the queue (tests waiting in the broker, sampled; their
wait by Little's law, waiting ÷ rate). And how busy the slices were: their ``cpuacct.usage``
over their quota, and the share of CFS periods in which a slice ran out of it. A slice busy
near 100 % and throttled is the limit; a slice with time to spare while hosts are added says
something shared is.

``host_ready_s``: a new host (the same slice size, images present) from the start of its
process, put in its slice before Python starts, to the end of its first test, a submission
waiting for it in the queue (its program compiled and cached by the streams before).
``host_ready_with_pull_s``: the same for a host without its images, which it pulls from a
registry of the run's own (:func:`host_ready_with_pull`; full runs only).

A host's slice has first call on its quota (:mod:`worker.sandbox.slice`), and the benchmark's
own Redis servers and producer get a slice of their own with the same weight (capped at
:data:`SHARED_CPUS`): other sessions' load on this shared machine then takes neither from
them. The Docker engine is everyone's here and is left as it is: its CPU per test is the whole
machine's engine's, others' containers included.

Started by :mod:`scripts.benchmarks.scale` in a process of its own pointed at Redis servers of
the run's own (``python -m scripts.benchmarks.hosts [--quick]``, with RUNNER_BROKER_URL and
RUNNER_RESULT_BACKEND); its last line is one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis

from scripts.benchmarks.fleet import (
    RUN_ID,
    RUNNER,
    SandboxCpu,
    busy_cpu_s,
    cpu_s,
    owner_of,
    workers,
)
from scripts.benchmarks.profile import processes
from worker.errors import ImageError
from worker.images.registry import push
from worker.sandbox import docker_client
from worker.sandbox.reaper import owned_containers, remove_container
from worker.sandbox.slice import HostSlice, hierarchies, remove

HOSTS = (1, 2, 3)
HOST_CPUS = float(os.environ.get("BENCH_HOST_CPUS", "0.4"))  # each simulated host's slice
HOST_CONCURRENCY = 2  # tests at a time per host: enough to keep its slice busy
SHARED_CPUS = 1.0  # the cap on the benchmark's own Redis and producer (they use far less)
# issue 21's goals: hosts_2 >= 1.85 x hosts_1, hosts_3 >= 2.6 x hosts_1, a new host ready in 5 s
GOAL_HOSTS_2 = 1.85
GOAL_HOSTS_3 = 2.6
GOAL_READY_S = 5.0
ENGINE = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")
PULL_NOTE = (
    "a new host without its images: replicas of the C images (every layer with a few bytes "
    "added, so the engine holds none of them) under a prefix of the run's own, pushed to a "
    "registry of the run's own and removed here; the worker pulls them from RUNNER_REGISTRY "
    "by content tag, then starts as host_ready_s does (its program compiled anew: the "
    "replicas are other images). One run"
)
QUICK_PULL_NOTE = "quick mode: not measured (a replica of the 323 MB compile image costs a minute)"


@dataclass(frozen=True)
class Counts:
    stream: int  # 10-test submissions per stream
    in_flight: int
    timeout_s: float
    ready_runs: int  # new hosts timed from start to first test


FULL = Counts(stream=150, in_flight=20, timeout_s=600, ready_runs=3)
QUICK = Counts(stream=3, in_flight=2, timeout_s=60, ready_runs=1)


def slice_of(name: str, cpus: float = HOST_CPUS) -> HostSlice:
    return HostSlice(f"bench-{RUN_ID}-{name}", cpus)


class QueueSampler:
    """The queue's length (tests waiting in the broker: LLEN counts each, tenant's or not,
    worker/queue/fairqueue.py) every ``every_s`` on a thread, while it runs."""

    def __init__(self, client: redis.Redis, queue: str, every_s: float = 0.05) -> None:
        self._client, self._queue, self._every = client, queue, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.samples: list[int] = []

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append(int(self._client.llen(self._queue)))

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else 0.0


def engine_cpu() -> dict[int, float]:
    """pid -> CPU seconds so far of the Docker engine's processes (dockerd, containerd, the
    shims)."""
    return {pid: cpu for pid, (name, cpu, _) in processes().items() if name in ENGINE}


def engine_cpu_since(before: dict[int, float]) -> float:
    """CPU seconds the engine's processes used since ``before`` (a shim that ended meanwhile,
    with its sandbox, is missed: a little under the truth)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in engine_cpu().items())


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def servers() -> tuple[redis.Redis, redis.Redis | None]:
    """The broker's Redis, and the result backend's when it is another server (None when the
    two are databases of one)."""
    broker = redis.Redis.from_url(os.environ["RUNNER_BROKER_URL"])
    results = redis.Redis.from_url(os.environ["RUNNER_RESULT_BACKEND"])
    if broker.info("server")["run_id"] == results.info("server")["run_id"]:
        return broker, None
    return broker, results


def stream(
    client: Any,
    counts: Counts,
    server: redis.Redis,
    names: list[str],
    hosts: list[HostSlice],
    results: redis.Redis | None = None,
) -> dict[str, float]:
    """One stream through the running hosts (workers ``names`` in slices ``hosts``): its rate
    and the shared components' cost."""
    from scripts.benchmarks.scale import send

    with (
        SandboxCpu([owner_of(name) for name in names]) as boxes,
        QueueSampler(server, os.environ["RUNNER_QUEUE"]) as queue,
    ):
        used = [host.usage_ns() for host in hosts]
        throttled = [host.throttled() for host in hosts]
        redis_cpu, engine, own, busy = cpu_s(server), engine_cpu(), own_cpu_s(), busy_cpu_s()
        results_cpu = cpu_s(results) if results is not None else 0.0
        seconds = send(client, counts, f"h{len(hosts)}-")
        redis_cpu, engine_s = cpu_s(server) - redis_cpu, engine_cpu_since(engine)
        results_cpu = cpu_s(results) - results_cpu if results is not None else 0.0
        own, busy = own_cpu_s() - own, busy_cpu_s() - busy
        slices_s = sum(host.usage_ns() - u for host, u in zip(hosts, used, strict=True)) / 1e9
        periods = sum(host.throttled()[0] - t[0] for host, t in zip(hosts, throttled, strict=True))
        out = sum(host.throttled()[1] - t[1] for host, t in zip(hosts, throttled, strict=True))
    tests = counts.stream * 10
    rate = tests / seconds
    ms = 1000 / tests
    apart = (
        {
            "redis_broker_cpu_ms_per_test": round(redis_cpu * ms, 3),
            "redis_results_cpu_ms_per_test": round(results_cpu * ms, 3),
        }
        if results is not None
        else {}
    )
    return {
        **apart,
        "tests_per_s": round(rate, 1),
        "slice_busy_pct": round(100 * slices_s / (HOST_CPUS * len(hosts) * seconds), 1),
        "throttled_pct": round(100 * out / periods, 1) if periods else 0.0,
        "slice_cpu_ms_per_test": round(slices_s * ms, 2),
        "sandbox_cpu_ms_per_test": round(boxes.ours_s * ms, 2),
        "redis_cpu_ms_per_test": round((redis_cpu + results_cpu) * ms, 3),
        "producer_cpu_ms_per_test": round(own * ms, 3),
        "engine_cpu_ms_per_test": round(engine_s * ms, 3),
        "machine_cpu_ms_per_test": round(busy * ms, 2),
        "machine_busy_pct": round(100 * busy / (len(os.sched_getaffinity(0)) * seconds), 1),
        "queue_waiting_tests": round(queue.mean, 1),
        "queue_wait_ms": round(1000 * queue.mean / rate, 1),
    }


def host_ready(client: Any, name: str, timeout_s: float = 120, **settings: str) -> float:
    """A new host, its images present, from the start of its process to the end of its first
    test: a submission waits for it in the queue (no other worker runs). ``settings``: the
    host's own besides."""
    from scripts.benchmarks.scale import submission

    host, owner = slice_of(name), owner_of(name)
    host.create()
    handle = client.submit(submission(f"ready-{name}"))
    procs = " ".join(str(host.directory(c) / "cgroup.procs") for c in ("cpu", "cpuacct"))
    # into its slice before Python starts, as on a host of that size; then the worker itself
    argv = ["sh", "-c", f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"', "sh"]
    argv += [RUNNER, "worker", "-n", f"{name}@bench-{RUN_ID}", "-l", "WARNING"]
    env = {
        **os.environ,
        "RUNNER_OWNER": owner,
        "RUNNER_LANGUAGES": os.environ.get("RUNNER_LANGUAGES", "c"),
        "RUNNER_CONCURRENCY": str(HOST_CONCURRENCY),
        "RUNNER_HOST_SLICE": host.name,
        "RUNNER_HOST_CPUS": str(HOST_CPUS),
        **settings,
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not handle.started():
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"host {name} did not start: {log.read()[-2000:]!r}")
            if time.perf_counter() - start > timeout_s:
                raise RuntimeError(f"host {name} ran no test in {timeout_s} s")
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        assert handle.result(timeout=timeout_s).verdict == "AC"
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for container in owned_containers(docker_client(), owner):
            remove_container(container)
        forget(host)
        log.close()
    return seconds


def host_ready_with_pull(client: Any) -> float:
    """:func:`host_ready` for a host that has to pull its images first (:data:`PULL_NOTE`)."""
    from scripts.benchmarks.images import _registry, _replica
    from worker.images.catalog import image_name
    from worker.images.docker_cli import DockerCli
    from worker.sandbox import sandbox_images
    from worker.settings import Settings

    cli = DockerCli.pick()
    prefix = f"bench{RUN_ID}"
    keys = sandbox_images(Settings.from_env({"RUNNER_LANGUAGES": "c"}))
    ours = []
    try:
        for key in keys:
            name = image_name("runner", key)
            tags = json.loads(cli.run("image", "inspect", "--format", "{{json .RepoTags}}", name))
            tag = next(t.rpartition(":")[2] for t in tags if not t.endswith(":latest"))
            replica = _replica(cli, f"{name}:{tag}")
            ours.append(f"{image_name(prefix, key)}:{tag}")
            cli.run("tag", replica, ours[-1])
            cli.run("rmi", replica)
        with _registry() as registry:
            push(cli, registry, ours)
            for ref in ours:  # a host without them
                cli.run("rmi", ref)
            return host_ready(
                client,
                "pulling0",
                RUNNER_IMAGE_PREFIX=prefix,
                RUNNER_REGISTRY=registry.address,
                RUNNER_LANGUAGES="c",
            )
    finally:
        for key in keys:
            listed = cli.run(
                "images", "--format", "{{.Repository}}:{{.Tag}}", image_name(prefix, key)
            )
            for ref in listed.split():
                with suppress(ImageError):
                    cli.run("rmi", ref)


def forget(host: HostSlice) -> None:
    """Remove a slice once its workers have stopped (the engine removes sandboxes' cgroups a
    moment after the containers)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        remove(host)
        if not host.directory("cpu").exists():
            return
        time.sleep(0.2)


def run(quick: bool = False) -> dict[str, object]:
    counts = QUICK if quick else FULL
    from worker.client import Client

    client = Client()
    server, results = servers()
    figures: dict[str, object] = {"host_cpus": HOST_CPUS, "host_concurrency": HOST_CONCURRENCY}
    per_hosts: dict[int, dict[str, float]] = {}
    env = {"RUNNER_CONCURRENCY": str(HOST_CONCURRENCY), "RUNNER_LANGUAGES": "c"}
    for count in HOSTS:
        names = [f"host{count}-{n}" for n in range(count)]
        hosts = [slice_of(name) for name in names]
        each = {
            name: {"RUNNER_HOST_SLICE": host.name, "RUNNER_HOST_CPUS": str(HOST_CPUS)}
            for name, host in zip(names, hosts, strict=True)
        }
        try:
            with workers(names, each=each, **env):
                warm = [client.submit(submission_for_warmup(n)) for n in range(2 * count)]
                for handle in warm:
                    handle.result(timeout=120)
                per_hosts[count] = stream(client, counts, server, names, hosts, results)
        finally:
            for host in hosts:
                forget(host)
        for key, value in per_hosts[count].items():
            figures[f"hosts_{count}_{key}"] = value
    one = per_hosts[1]["tests_per_s"]
    for count in HOSTS[1:]:
        figures[f"hosts_speedup_{count}_over_1"] = round(per_hosts[count]["tests_per_s"] / one, 2)
    ready = [host_ready(client, f"ready{n}") for n in range(counts.ready_runs)]
    figures["host_ready_s"] = round(statistics.median(ready), 2)
    figures["host_ready_runs_s"] = [round(s, 2) for s in ready]
    figures["host_ready_with_pull_s"] = None if quick else round(host_ready_with_pull(client), 2)
    figures["host_ready_with_pull_note"] = QUICK_PULL_NOTE if quick else PULL_NOTE
    # one Redis is one core (its commands run on one thread): where it stops, at the cost per
    # test of the largest fleet measured
    last = per_hosts[HOSTS[-1]]
    figures["redis_limit_tests_per_s"] = round(1000 / last["redis_cpu_ms_per_test"])
    if results is not None:  # results apart from the broker: each Redis its own core
        busiest = max(last["redis_broker_cpu_ms_per_test"], last["redis_results_cpu_ms_per_test"])
        figures["redis_apart_limit_tests_per_s"] = round(1000 / busiest)
    figures["producer_limit_tests_per_s"] = round(1000 / last["producer_cpu_ms_per_test"])
    missed = []
    two, three = (per_hosts[n]["tests_per_s"] for n in (2, 3))
    if two < GOAL_HOSTS_2 * one:
        missed.append(f"hosts_2_tests_per_s {two} < {GOAL_HOSTS_2} x hosts_1 ({one})")
    if three < GOAL_HOSTS_3 * one:
        missed.append(f"hosts_3_tests_per_s {three} < {GOAL_HOSTS_3} x hosts_1 ({one})")
    if figures["host_ready_s"] > GOAL_READY_S:  # type: ignore[operator]
        missed.append(f"host_ready_s {figures['host_ready_s']} > {GOAL_READY_S}")
    figures["goals_missed"] = missed
    return figures


def submission_for_warmup(n: int) -> dict[str, Any]:
    from scripts.benchmarks.scale import submission

    return submission(f"warm{n}")


@contextmanager
def shared_slice(*redises: redis.Redis) -> Iterator[HostSlice]:
    """The shared components this benchmark runs, its Redis servers and its producer (this
    process),
    in a slice of their own with the same first call on CPU as the hosts' (capped at
    :data:`SHARED_CPUS`), so that other load on this shared machine does not make them the
    limit either; the Docker engine is everyone's on this machine and stays as it is. Moved
    back, and the slice removed, afterwards."""
    shared = slice_of("shared", SHARED_CPUS)
    pids = [int(server.info("server")["process_id"]) for server in redises]
    shared.create()
    try:
        for pid in pids:
            shared.enter(pid)
        shared.enter()
        yield shared
    finally:
        for pid in (*pids, os.getpid()):
            for controller in ("cpu", "cpuacct"):
                with suppress(OSError):  # back to the root: where both were started
                    (hierarchies()[controller] / "cgroup.procs").write_text(str(pid))
        forget(shared)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from worker.logs import configure_logging

    configure_logging("console", "warning")
    broker, results = servers()
    with shared_slice(broker, *([results] if results is not None else [])):
        figures = run(quick=args.quick)
    figures["shared_cpus"] = SHARED_CPUS
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
