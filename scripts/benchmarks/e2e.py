"""End to end, one worker host: send to joined result, through Redis, Celery and the warm
pools; and the same with a container per test (``RUNNER_MAX_JOBS=1``), in one run.

Redis databases 10 and 11 are the benchmarks' own (flushed at the start);
``BENCH_BROKER_URL`` and ``BENCH_RESULT_BACKEND`` name others, as the tests do. Each run's
workers label their sandboxes with an owner of the run's own, so runs side by side leave each
other's sandboxes alone."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from worker.sandbox import docker_client
from worker.sandbox.reaper import owned_containers, remove_container
from worker.settings import Settings

ECHO = "import sys\nsys.stdout.write(sys.stdin.read())\n"
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")
BACKEND = os.environ.get("BENCH_RESULT_BACKEND", "redis://127.0.0.1:6379/11")
RUN_ID = uuid.uuid4().hex[:6]
RUNNER = str(Path(sys.executable).with_name("runner"))


@dataclass(frozen=True)
class Counts:
    runs: dict[int, int]  # tests per submission -> timed submissions
    warm: int  # untimed 10-test submissions before timing
    cold_warm: int  # the same on the single-use worker
    cold: int  # timed 10-test submissions on the single-use worker
    stream: int  # 10-test submissions for the throughput figure
    in_flight: int  # submissions the stream keeps in flight
    timeout_s: float  # for one submission's result: a lost one fails the run


FULL = Counts(
    runs={1: 30, 10: 30, 100: 8},
    warm=3,
    cold_warm=1,
    cold=5,
    stream=200,
    in_flight=20,
    timeout_s=600,
)
QUICK = Counts(
    runs={1: 2, 10: 2, 100: 1}, warm=1, cold_warm=0, cold=1, stream=4, in_flight=2, timeout_s=60
)


def submission(n: int, tag: str) -> dict[str, Any]:
    tests = [{"stdin": f"{tag}-{i}\n", "expected_stdout": f"{tag}-{i}\n"} for i in range(n)]
    return {"language": "python", "source": ECHO, "tests": tests}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def workers(names: Sequence[str], **env: str) -> Iterator[None]:
    """``runner worker`` processes on the benchmark's own queue, started side by side, all
    ready before we go on; stopped, and whatever sandboxes they left removed, afterwards."""
    from worker.app import app

    started: list[tuple[str, str, subprocess.Popen[bytes], Path]] = []
    try:
        for name in names:
            log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
            node, owner = f"{name}@bench-{RUN_ID}", f"bench-{name}-{RUN_ID}"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [RUNNER, "worker", "-n", node, "-l", "WARNING"],
                    env={**os.environ, "RUNNER_OWNER": owner, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append((node, owner, proc, log))
        deadline = time.monotonic() + 120
        for node, _, proc, log in started:
            while not app.control.ping(destination=[node], timeout=0.5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {node} did not start: {log.read_text()[-2000:]}")
        yield
    finally:
        for _, _, proc, _ in started:
            proc.terminate()
        for _, owner, proc, log in started:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for container in owned_containers(docker_client(), owner):  # a dead worker's
                remove_container(container)
            log.unlink()


def worker(name: str, **env: str) -> AbstractContextManager[None]:
    """One ``runner worker`` process, as :func:`workers`."""
    return workers([name], **env)


def latencies(client: Any, n: int, runs: int, timeout: float) -> list[float]:
    samples = []
    for r in range(runs):
        sub = submission(n, f"{n}-{r}")
        start = time.perf_counter()
        result = client.submit(sub).result(timeout=timeout)
        samples.append(1000 * (time.perf_counter() - start))
        assert result.verdict == "AC", result
    return samples


def throughput(client: Any, counts: Counts) -> float:
    start = time.perf_counter()
    pending = []
    for i in range(counts.stream):
        pending.append(client.submit(submission(10, f"s{i}")))
        if len(pending) >= counts.in_flight:
            assert pending.pop(0).result(timeout=counts.timeout_s).verdict == "AC"
    for handle in pending:
        assert handle.result(timeout=counts.timeout_s).verdict == "AC"
    return counts.stream * 10 / (time.perf_counter() - start)


def run(quick: bool = False) -> dict[str, object]:
    counts = QUICK if quick else FULL
    os.environ.update(
        {
            "RUNNER_BROKER_URL": BROKER,
            "RUNNER_RESULT_BACKEND": BACKEND,
            "RUNNER_QUEUE": f"bench-{uuid.uuid4().hex[:6]}",
            "RUNNER_LOG_FORMAT": "json",
        }
    )
    for url in (BROKER, BACKEND):
        redis.Redis.from_url(url).flushdb()
    from worker.client import Client

    client = Client()
    figures: dict[str, object] = {}
    with worker("pooled"):
        latencies(client, 10, counts.warm, counts.timeout_s)  # warm: compile cache, connections
        for n, runs in counts.runs.items():
            samples = latencies(client, n, runs, counts.timeout_s)
            figures[f"submit_{n}_p50_ms"] = round(statistics.median(samples), 1)
            figures[f"submit_{n}_p95_ms"] = round(percentile(samples, 0.95), 1)
        figures["throughput_tests_per_s"] = round(throughput(client, counts), 1)
    with worker("cold", RUNNER_MAX_JOBS="1"):
        latencies(client, 10, counts.cold_warm, counts.timeout_s)
        cold = latencies(client, 10, counts.cold, counts.timeout_s)
        figures["cold_submit_10_p50_ms"] = round(statistics.median(cold), 1)
    figures["ratio_cold_over_pooled_10"] = round(
        float(figures["cold_submit_10_p50_ms"]) / float(figures["submit_10_p50_ms"]),
        1,  # type: ignore[arg-type]
    )
    from worker.app import concurrency_of

    figures["worker_concurrency"] = concurrency_of(Settings.from_env())  # what the worker used
    return figures
