"""Horizontal scaling on one machine: the same stream of 10-test submissions with one worker
process, then two (each with its own warm pools), and the CPU-bound ceiling, in one run.

The program is a C echo (CPU-light: about 1 ms). A worker runs one test at a time (the fleet's
unit: add workers, not threads, to scale), so what limits one worker is its own latency per
test, which is what adding a worker multiplies, until the machine's cores run out. The same is
measured with two tests at a time per worker: one such worker already keeps most of this
2-core machine busy (the producer, Redis, the Docker engine and the programs share the cores),
so a second one can only add what is left: ``ceiling`` says how much that is.

Where the machine's CPU goes, over all four streams (issue 20): ``sandbox_cpu_ms_per_test``,
the sandbox containers' own CPU from their cgroups (:class:`SandboxCpu`), and
``fleet_cpu_ms_per_test``, all the rest of the machine's busy CPU meanwhile (workers, the
producer, Redis, the Docker engine and its shims; and whatever else runs on the machine, which
the figure cannot tell apart: compare runs side by side). The goal is the fleet at most
``GOAL_FLEET_OVER_SANDBOX`` of the sandboxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from scripts.benchmarks.e2e import BACKEND, BROKER, RUN_ID, workers
from scripts.benchmarks.fleet import SandboxCpu, busy_cpu_s, owner_of, private_redis

ECHO_C = "#include <stdio.h>\nint main(){int c;while((c=getchar())!=EOF)putchar(c);return 0;}\n"
CONCURRENCIES = (1, 2)  # tests at a time per worker; the first is the headline
# issue 20's goal: the fleet's own CPU per test (all but the sandboxes') at most this share of
# the sandboxes' CPU per test
GOAL_FLEET_OVER_SANDBOX = 0.5


@dataclass(frozen=True)
class Counts:
    stream: int  # 10-test submissions per stream
    in_flight: int  # submissions the stream keeps in flight
    timeout_s: float  # for one submission's result: a lost one fails the run


FULL = Counts(stream=150, in_flight=20, timeout_s=600)
QUICK = Counts(stream=3, in_flight=2, timeout_s=60)


def submission(tag: str) -> dict[str, Any]:
    tests = [{"stdin": f"{tag}-{i}\n", "expected_stdout": f"{tag}-{i}\n"} for i in range(10)]
    return {"language": "c", "source": ECHO_C, "tests": tests}


@dataclass(frozen=True)
class Stream:
    tests: int
    seconds: float
    busy_cpu_s: float  # the whole machine's
    sandbox_cpu_s: float  # the stream's workers' sandboxes'
    all_sandboxes_cpu_s: float  # every sandbox's on the machine (theirs and others')
    sandboxes_gone: int  # of theirs, removed meanwhile (each may miss its last 50 ms)


class StreamCounts(Protocol):
    @property
    def stream(self) -> int: ...  # submissions of 10 tests

    @property
    def in_flight(self) -> int: ...

    @property
    def timeout_s(self) -> float: ...


def send(client: Any, counts: StreamCounts, tag: str) -> float:
    """The stream's submissions (``counts.in_flight`` at a time, each all AC), and the seconds
    they took (this benchmark's stream and the simulated hosts' alike)."""
    start = time.perf_counter()
    pending = []
    for i in range(counts.stream):
        pending.append(client.submit(submission(f"{tag}{i}")))
        if len(pending) >= counts.in_flight:
            assert pending.pop(0).result(timeout=counts.timeout_s).verdict == "AC"
    for handle in pending:
        assert handle.result(timeout=counts.timeout_s).verdict == "AC"
    return time.perf_counter() - start


def stream(client: Any, counts: Counts, owners: list[str]) -> Stream:
    """The stream's tests per second, the machine's CPU seconds per test, and the part of it
    the workers' (``owners``') sandboxes took."""
    with SandboxCpu(owners) as sandboxes:
        cpu = busy_cpu_s()
        seconds = send(client, counts, "s")
        busy = busy_cpu_s() - cpu
    return Stream(
        counts.stream * 10, seconds, busy, sandboxes.ours_s, sandboxes.all_s, sandboxes.gone
    )


def cpu_split(streams: list[Stream]) -> dict[str, object]:
    """Over every stream: the sandboxes' CPU per test, the rest of the machine's, the ratio,
    and the goal missed, if it is."""
    tests = sum(s.tests for s in streams)
    sandbox = 1000 * sum(s.sandbox_cpu_s for s in streams) / tests
    # every sandbox's CPU is left out of the fleet's: others' (a suite beside) are not ours
    fleet = 1000 * sum(s.busy_cpu_s - s.all_sandboxes_cpu_s for s in streams) / tests
    other = 1000 * sum(s.all_sandboxes_cpu_s - s.sandbox_cpu_s for s in streams) / tests
    ratio = round(fleet / sandbox, 2)
    missed = []
    if ratio > GOAL_FLEET_OVER_SANDBOX:
        missed.append(f"fleet/sandbox CPU per test {ratio} > {GOAL_FLEET_OVER_SANDBOX}")
    return {
        "sandbox_cpu_ms_per_test": round(sandbox, 2),
        "fleet_cpu_ms_per_test": round(fleet, 2),
        "ratio_fleet_over_sandbox_cpu": ratio,
        "other_sandboxes_cpu_ms_per_test": round(other, 2),
        "sandboxes_removed_during_streams": sum(s.sandboxes_gone for s in streams),
        "goal_fleet_over_sandbox_cpu": GOAL_FLEET_OVER_SANDBOX,
        "goals_missed": missed,
    }


def run(quick: bool = False) -> dict[str, object]:
    counts = QUICK if quick else FULL
    os.environ.update(
        {
            "RUNNER_BROKER_URL": BROKER,
            "RUNNER_RESULT_BACKEND": BACKEND,
            "RUNNER_QUEUE": f"bench-scale-{RUN_ID}",
            "RUNNER_LOG_FORMAT": "json",
        }
    )
    for url in (BROKER, BACKEND):
        redis.Redis.from_url(url).flushdb()
    from worker.client import Client

    client = Client()
    figures: dict[str, object] = {}
    streams: list[Stream] = []
    for concurrency in CONCURRENCIES:
        suffix = "" if concurrency == CONCURRENCIES[0] else f"_c{concurrency}"
        for count in (1, 2):
            names = [f"scale{n}" for n in range(count)]
            with workers(names, RUNNER_CONCURRENCY=str(concurrency)):
                client.submit(submission("warm")).result(timeout=120)
                measured = stream(client, counts, [owner_of(name) for name in names])
            streams.append(measured)
            rate, per_test = measured.tests / measured.seconds, 1000 / measured.tests
            figures[f"workers_{count}_tests_per_s{suffix}"] = round(rate, 1)
            figures[f"workers_{count}_cpu_ms_per_test{suffix}"] = round(
                measured.busy_cpu_s * per_test, 2
            )
            figures[f"workers_{count}_sandbox_cpu_ms_per_test{suffix}"] = round(
                measured.sandbox_cpu_s * per_test, 2
            )
        one = float(figures[f"workers_1_tests_per_s{suffix}"])  # type: ignore[arg-type]
        two = float(figures[f"workers_2_tests_per_s{suffix}"])  # type: ignore[arg-type]
        figures[f"speedup_2_over_1{suffix}"] = round(two / one, 2)
        cpu_ms = float(figures[f"workers_2_cpu_ms_per_test{suffix}"])  # type: ignore[arg-type]
        cores = len(os.sched_getaffinity(0))
        figures[f"cpu_bound_limit_tests_per_s{suffix}"] = round(cores * 1000 / cpu_ms, 1)
    figures["cores"] = cores
    figures["per_worker_concurrency"] = CONCURRENCIES[0]
    figures.update(cpu_split(streams))
    hosts = simulated_hosts(quick)
    missed = [*figures["goals_missed"], *hosts.pop("goals_missed")]  # type: ignore[misc]
    figures.update(hosts)
    figures["goals_missed"] = missed
    return figures


def simulated_hosts(quick: bool) -> dict[str, Any]:
    """scripts/benchmarks/hosts.py's figures: 1, 2 and 3 hosts, each a worker in a CPU slice
    of its own, on Redis servers of the run's own (their CPU is the fleet's alone), the
    broker's and the result backend's apart (so each one's CPU per test shows), in a process
    of its own (the Celery app is bound to one broker once imported)."""
    with private_redis() as broker, private_redis() as results:
        env = {
            **os.environ,
            "RUNNER_BROKER_URL": f"{broker}/0",
            "RUNNER_RESULT_BACKEND": f"{results}/0",
            "RUNNER_QUEUE": f"bench-hosts-{RUN_ID}",
        }
        argv = [sys.executable, "-m", "scripts.benchmarks.hosts", *(["--quick"] if quick else [])]
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures
