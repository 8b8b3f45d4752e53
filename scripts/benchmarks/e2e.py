"""End to end, one worker host: send to joined result, through Redis, Celery and the warm
pools. 10-test submissions three ways, turn about (the built-in comparison, a compiled C++
checker, and the HTTP API with ``?wait``: scripts/benchmarks/api.py), so the ratios between
them compare like with like; interactive games; GETs of a result over HTTP; one-test
submissions while another process sends a big one (20 tests of 8 MB stdin each); and the same
with a container per test (``RUNNER_MAX_JOBS=1``), in one run.

Redis databases 10 and 11 are the benchmarks' own (flushed at the start);
``BENCH_BROKER_URL`` and ``BENCH_RESULT_BACKEND`` name others, as the tests do. Each run's
workers label their sandboxes with an owner of the run's own, so runs side by side leave each
other's sandboxes alone."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from scripts.benchmarks.api import Api, api_process, webhooks
from scripts.benchmarks.fleet import (  # the names scale.py imports from here too
    BACKEND,
    BROKER,
    MB,
    RUN_ID,
    MemorySampler,
    percentile,
    used_memory,
    worker,
    workers,
)
from worker.settings import Settings

__all__ = ["BACKEND", "BROKER", "RUN_ID", "run", "workers"]

ECHO = "import sys\nsys.stdout.write(sys.stdin.read())\n"


@dataclass(frozen=True)
class Counts:
    runs: dict[int, int]  # tests per submission -> timed submissions
    warm: int  # untimed 10-test submissions before timing
    cold_warm: int  # the same on the single-use worker
    cold: int  # timed 10-test submissions on the single-use worker
    stream: int  # 10-test submissions for the throughput figure
    in_flight: int  # submissions the stream keeps in flight
    timeout_s: float  # for one submission's result: a lost one fails the run
    big_tests: int  # tests of the big submission
    big_kb: int  # stdin of each of its tests (each different)
    big_rounds: int  # big submissions, one after the other, small ones timed meanwhile
    get_s: float  # seconds of GETs of a finished submission over HTTP
    hooks: int  # webhooks timed one after the other
    hooks_during_stall: int  # honest webhooks sent while another receiver stalls


FULL = Counts(
    runs={1: 30, 10: 30, 100: 8},
    warm=3,
    cold_warm=1,
    cold=5,
    stream=200,
    in_flight=20,
    timeout_s=600,
    big_tests=20,
    big_kb=8 * 1024,
    big_rounds=3,
    get_s=5.0,
    hooks=30,
    hooks_during_stall=24,
)
QUICK = Counts(
    runs={1: 2, 10: 2, 100: 1},
    warm=1,
    cold_warm=0,
    cold=1,
    stream=4,
    in_flight=2,
    timeout_s=60,
    big_tests=2,
    big_kb=256,
    big_rounds=1,
    get_s=0.5,
    hooks=2,
    hooks_during_stall=3,
)
# The big submission's program only consumes its input: the sandboxes are not what is measured
BIG_CONSUMER = "import sys\nprint(len(sys.stdin.buffer.read()))\n"
DIGITS = bytes(b"0123456789 \n"[i % 12] for i in range(256))  # random bytes -> text test data


def submission(n: int, tag: str, **extra: Any) -> dict[str, Any]:
    tests = [{"stdin": f"{tag}-{i}\n", "expected_stdout": f"{tag}-{i}\n"} for i in range(n)]
    return {"language": "python", "source": ECHO, "tests": tests, **extra}


# A compiled C++ checker (testlib-style, against the example's header) that compares tokens
TOKENS_CHECKER = """#include "testlib_lite.h"
int main(int argc, char *argv[]) {
    registerTestlibCmd(argc, argv);
    while (!ans.seekEof()) {
        std::string want = ans.readToken(), got = ouf.readToken();
        if (want != got) quitf(_wa, "expected %s, got %s", want.c_str(), got.c_str());
    }
    if (!ouf.seekEof()) quitf(_wa, "extra output");
    quitf(_ok, "same tokens");
}
"""
EXAMPLES = Path(__file__).parents[2] / "examples"
CHECKER = {
    "language": "cpp",
    "files": [
        {"name": "check.cpp", "content": TOKENS_CHECKER},
        {
            "name": "testlib_lite.h",
            "content": (EXAMPLES / "any-pair-checker" / "testlib_lite.h").read_text(),
        },
    ],
    "entry": "check.cpp",
}
GUESS = EXAMPLES / "guess-interactive"


def game(_: int, tag: str) -> dict[str, Any]:
    """One game of the example's guessing game, its secret unique to ``tag``."""
    secret = 1 + int(hashlib.sha256(tag.encode()).hexdigest(), 16) % 10**9
    return {
        "language": "python",
        "source": (GUESS / "main.py").read_text(),
        "tests": [{"stdin": f"{secret} 30\n"}],
        "interactor": {"language": "cpp", "source": (GUESS / "interactor.cpp").read_text()},
    }


def latencies(
    client: Any,
    n: int,
    runs: int,
    timeout: float,
    tag: str = "",
    make: Any = submission,
) -> list[float]:
    samples = []
    for r in range(runs):
        sub = make(n, f"{tag}{n}-{r}")
        start = time.perf_counter()
        result = client.submit(sub).result(timeout=timeout)
        samples.append(1000 * (time.perf_counter() - start))
        assert result.verdict == "AC", result
    return samples


def one_test(tag: str) -> dict[str, Any]:
    return submission(1, tag)


def with_checker(n: int, tag: str) -> dict[str, Any]:
    return submission(n, tag, checker=CHECKER)


def side_by_side(client: Any, api: Api, counts: Counts, figures: dict[str, object]) -> None:
    """10-test submissions three ways, turn about: judged by the built-in comparison (the
    plain ``submit_10``), by a compiled C++ checker, and through ``POST /v1/submissions?wait``;
    so the machine's drift, which moves a figure by half between minutes here, hits all three
    alike and the ratios compare like with like."""
    runs = counts.runs[10]
    latencies(client, 10, 1, counts.timeout_s, "warm-checker", with_checker)  # its compile
    api.submit_ms(submission(10, "warm-http"))
    plain: list[float] = []
    checked: list[float] = []
    posted: list[float] = []
    for r in range(runs):
        plain += latencies(client, 10, 1, counts.timeout_s, f"p{r}-")
        checked += latencies(client, 10, 1, counts.timeout_s, f"c{r}-", with_checker)
        posted.append(api.submit_ms(submission(10, f"h{r}-")))
    figures["submit_10_p50_ms"] = round(statistics.median(plain), 1)
    figures["submit_10_p95_ms"] = round(percentile(plain, 0.95), 1)
    for name, samples in (("checker", checked), ("api", posted)):
        figures[f"{name}_submit_10_p50_ms"] = round(statistics.median(samples), 1)
        figures[f"ratio_{name}_over_submit_10"] = round(
            statistics.median(samples) / statistics.median(plain), 2
        )


def interactive(client: Any, counts: Counts, figures: dict[str, object]) -> None:
    """One-test interactive submissions: a C++ interactor, a Python program."""
    latencies(client, 1, 1, counts.timeout_s, "warm-game", game)  # the interactor's compile
    played = latencies(client, 1, counts.runs[10], counts.timeout_s, "game", game)
    figures["interactive_test_p50_ms"] = round(statistics.median(played), 1)
    figures["interactive_test_p95_ms"] = round(percentile(played, 0.95), 1)


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


def big_submission(counts: Counts, rng: random.Random) -> dict[str, Any]:
    """``big_tests`` tests, each with its own ``big_kb`` of random digits as stdin (test data
    as judges have it: text, which compresses about 2x), the expected output its length."""
    size = counts.big_kb * 1024
    tests = [
        {"stdin": rng.randbytes(size).translate(DIGITS).decode(), "expected_stdout": f"{size}\n"}
        for _ in range(counts.big_tests)
    ]
    # another backend's submission: a tenant of its own, beside the small ones' (default)
    return {"language": "python", "source": BIG_CONSUMER, "tests": tests, "tenant": "bulk"}


def send_big(counts: Counts, seed: int, conn: Any) -> None:
    """In a process of its own, as another backend would be: make a big submission, say
    ``ready``, send it, wait for its result, and report the times."""
    from worker.client import Client
    from worker.logs import configure_logging

    configure_logging("console", "warning")
    client = Client()
    big = big_submission(counts, random.Random(seed))
    conn.send("ready")
    start = time.perf_counter()
    handle = client.submit(big)
    call = time.perf_counter() - start
    conn.send("sent")
    del big
    result = handle.result(timeout=counts.timeout_s)
    conn.send(
        {
            "verdict": result.verdict,
            "result": result.model_dump_json()[:2000],
            "submit_call_s": call,
            "total_s": time.perf_counter() - start,
        }
    )


def small_during_big(client: Any, counts: Counts, figures: dict[str, object]) -> None:
    """One-test submissions timed one after the other from the moment another process starts
    sending a big submission until it has the result, ``big_rounds`` times (and apart, those
    started once ``submit()`` had returned, while its tests were in the queue or running);
    the big one's time from ``submit()`` to its result (and in ``submit()`` itself:
    validating, hashing, compressing and storing its data), and the Redis instance's peak
    ``used_memory``."""
    small: list[float] = []
    running: list[float] = []  # started once the big one was sent (its tests in the fleet)
    big_s: list[float] = []
    submit_s: list[float] = []
    backend = redis.Redis.from_url(BACKEND)
    warm = {"language": "python", "source": BIG_CONSUMER, "tests": [{"stdin": "warm"}]}
    assert client.submit(warm).result(timeout=counts.timeout_s).verdict == "AC"  # its compile
    before = used_memory(backend)
    spawn = multiprocessing.get_context("spawn")
    with MemorySampler(backend, every_s=0.05) as sampler:
        for r in range(counts.big_rounds):
            ours, theirs = spawn.Pipe()
            sender = spawn.Process(target=send_big, args=(counts, r, theirs))
            sender.start()
            if not ours.poll(120) or ours.recv() != "ready":
                raise RuntimeError("the big submission's sender did not start")
            sent = False
            while True:  # at least one, sent before the big one is answered
                sample = latencies(client, 1, 1, counts.timeout_s, tag=f"b{r}-{len(small)}")
                small.extend(sample)
                if sent:
                    running.extend(sample)
                if ours.poll():
                    message = ours.recv()
                    if message != "sent":
                        break
                    sent = True
            report = message
            sender.join()
            assert report["verdict"] == "AC", report["result"]
            big_s.append(report["total_s"])
            submit_s.append(report["submit_call_s"])
    after = used_memory(backend)
    figures["small_p50_ms_during_big"] = round(statistics.median(small), 1)
    figures["small_p95_ms_during_big"] = round(percentile(small, 0.95), 1)
    figures["small_max_ms_during_big"] = round(max(small), 1)
    figures["small_samples_during_big"] = len(small)
    if running:  # none when the big one is answered before a small one ends (quick mode)
        figures["small_p50_ms_while_big_in_fleet"] = round(statistics.median(running), 1)
        figures["small_p95_ms_while_big_in_fleet"] = round(percentile(running, 0.95), 1)
    figures["small_samples_while_big_in_fleet"] = len(running)
    figures["ratio_small_during_big_over_alone"] = round(
        statistics.median(small) / float(figures["submit_1_p50_ms"]),  # type: ignore[arg-type]
        2,
    )
    figures["big_submission_s"] = round(statistics.median(big_s), 2)
    figures["big_submit_call_s"] = round(statistics.median(submit_s), 2)
    figures["big_submission_mb"] = round(counts.big_tests * counts.big_kb / 1024, 1)
    figures["redis_mb_before_big"] = round(before / MB, 1)
    figures["redis_peak_mb_during_big"] = round(sampler.peak / MB, 1)
    # test data is kept (compressed) as long as results are: what one big submission leaves
    figures["redis_mb_kept_per_big"] = round((after - before) / counts.big_rounds / MB, 1)


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
    with worker("pooled"), api_process() as api:
        latencies(client, 10, counts.warm, counts.timeout_s)  # warm: compile cache, connections
        for n in (1, 100):
            samples = latencies(client, n, counts.runs[n], counts.timeout_s)
            figures[f"submit_{n}_p50_ms"] = round(statistics.median(samples), 1)
            figures[f"submit_{n}_p95_ms"] = round(percentile(samples, 0.95), 1)
        side_by_side(client, api, counts, figures)
        figures["throughput_tests_per_s"] = round(throughput(client, counts), 1)
        interactive(client, counts, figures)
        figures["api_requests_per_s"] = round(api.get_rate(submission(10, "got"), counts.get_s), 1)
        webhooks(api, BACKEND, one_test, counts.hooks, counts.hooks_during_stall, figures)
        small_during_big(client, counts, figures)
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
    for url in (BROKER, BACKEND):  # not an hour of the big submissions' data in a shared Redis
        redis.Redis.from_url(url).flushdb()
    return figures
