"""End to end, one worker host: send to joined result, through Redis, Celery and the warm
pools; and the same with a container per test (``RUNNER_MAX_JOBS=1``), in one run."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

ECHO = "import sys\nsys.stdout.write(sys.stdin.read())\n"
RUNS = {1: 30, 10: 30, 100: 8}
COLD_RUNS = 5
STREAM = 200  # submissions of 10 tests for the throughput figure
IN_FLIGHT = 20
BROKER = "redis://127.0.0.1:6379/10"
BACKEND = "redis://127.0.0.1:6379/11"


def submission(n: int, tag: str) -> dict[str, Any]:
    tests = [{"stdin": f"{tag}-{i}\n", "expected_stdout": f"{tag}-{i}\n"} for i in range(n)]
    return {"language": "python", "source": ECHO, "tests": tests}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def worker(name: str, **env: str) -> Iterator[None]:
    """A ``runner worker`` process on the benchmark's own queue, ready before we go on."""
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    node = f"{name}@bench"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("runner")), "worker", "-n", node, "-l", "WARNING"],
        env={**os.environ, "RUNNER_OWNER": f"bench-{name}", **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    from worker.app import app

    try:
        deadline = time.monotonic() + 120
        while not app.control.ping(destination=[node], timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {node} did not start: {log.read_text()[-2000:]}")
        yield
    finally:
        proc.terminate()
        proc.wait(120)
        log.unlink()


def latencies(client: Any, n: int, runs: int) -> list[float]:
    samples = []
    for r in range(runs):
        sub = submission(n, f"{n}-{r}")
        start = time.perf_counter()
        result = client.submit(sub).result(timeout=600)
        samples.append(1000 * (time.perf_counter() - start))
        assert result.verdict == "AC", result
    return samples


def throughput(client: Any) -> float:
    start = time.perf_counter()
    pending = []
    for i in range(STREAM):
        pending.append(client.submit(submission(10, f"s{i}")))
        if len(pending) >= IN_FLIGHT:
            assert pending.pop(0).result(timeout=600).verdict == "AC"
    for handle in pending:
        assert handle.result(timeout=600).verdict == "AC"
    return STREAM * 10 / (time.perf_counter() - start)


def run() -> dict[str, object]:
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
        latencies(client, 10, 3)  # warm: compile cache, connections
        for n, runs in RUNS.items():
            samples = latencies(client, n, runs)
            figures[f"submit_{n}_p50_ms"] = round(statistics.median(samples), 1)
            figures[f"submit_{n}_p95_ms"] = round(percentile(samples, 0.95), 1)
        figures["throughput_tests_per_s"] = round(throughput(client), 1)
    with worker("cold", RUNNER_MAX_JOBS="1"):
        latencies(client, 10, 1)
        cold = latencies(client, 10, COLD_RUNS)
        figures["cold_submit_10_p50_ms"] = round(statistics.median(cold), 1)
    figures["ratio_cold_over_pooled_10"] = round(
        float(figures["cold_submit_10_p50_ms"]) / float(figures["submit_10_p50_ms"]),
        1,  # type: ignore[arg-type]
    )
    figures["worker_concurrency"] = os.environ.get("RUNNER_CONCURRENCY") or 2 * (
        os.cpu_count() or 1
    )
    return figures
