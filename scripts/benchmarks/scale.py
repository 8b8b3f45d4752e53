"""Horizontal scaling on one machine: the same stream of 10-test submissions with one worker
process, then two (each with its own warm pools), and the CPU-bound ceiling, in one run.

The program is a C echo (CPU-light: about 1 ms). A worker runs one test at a time (the fleet's
unit: add workers, not threads, to scale), so what limits one worker is its own latency per
test, which is what adding a worker multiplies, until the machine's cores run out. The same is
measured with two tests at a time per worker: one such worker already keeps most of this
2-core machine busy (the producer, Redis, the Docker engine and the programs share the cores),
so a second one can only add what is left: ``ceiling`` says how much that is."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import redis

from scripts.benchmarks.e2e import BACKEND, BROKER, RUN_ID, workers

ECHO_C = "#include <stdio.h>\nint main(){int c;while((c=getchar())!=EOF)putchar(c);return 0;}\n"
CONCURRENCIES = (1, 2)  # tests at a time per worker; the first is the headline


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


def busy_cpu_s() -> float:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def stream(client: Any, counts: Counts) -> tuple[float, float]:
    """Tests per second, and machine CPU seconds per test, over the whole stream."""
    cpu = busy_cpu_s()
    start = time.perf_counter()
    pending = []
    for i in range(counts.stream):
        pending.append(client.submit(submission(f"s{i}")))
        if len(pending) >= counts.in_flight:
            assert pending.pop(0).result(timeout=counts.timeout_s).verdict == "AC"
    for handle in pending:
        assert handle.result(timeout=counts.timeout_s).verdict == "AC"
    tests = counts.stream * 10
    return tests / (time.perf_counter() - start), (busy_cpu_s() - cpu) / tests


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
    for concurrency in CONCURRENCIES:
        suffix = "" if concurrency == CONCURRENCIES[0] else f"_c{concurrency}"
        for count in (1, 2):
            names = [f"scale{n}" for n in range(count)]
            with workers(names, RUNNER_CONCURRENCY=str(concurrency)):
                client.submit(submission("warm")).result(timeout=120)
                rate, cpu_per_test = stream(client, counts)
            figures[f"workers_{count}_tests_per_s{suffix}"] = round(rate, 1)
            figures[f"workers_{count}_cpu_ms_per_test{suffix}"] = round(1000 * cpu_per_test, 2)
        one = float(figures[f"workers_1_tests_per_s{suffix}"])  # type: ignore[arg-type]
        two = float(figures[f"workers_2_tests_per_s{suffix}"])  # type: ignore[arg-type]
        figures[f"speedup_2_over_1{suffix}"] = round(two / one, 2)
        cpu_ms = float(figures[f"workers_2_cpu_ms_per_test{suffix}"])  # type: ignore[arg-type]
        cores = len(os.sched_getaffinity(0))
        figures[f"cpu_bound_limit_tests_per_s{suffix}"] = round(cores * 1000 / cpu_ms, 1)
    figures["cores"] = cores
    figures["per_worker_concurrency"] = CONCURRENCIES[0]
    return figures
