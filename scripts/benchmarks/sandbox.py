"""Sandbox latency and throughput: warm pool vs a fresh container per test (the brief's
parallel executor), per language, with the same hardening, in one run.

Each measurement is a function that returns its own figures; ``run`` calls them in turn and
the ratios come last, from the figures alone, so a new figure is one more function."""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from worker.compare import Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.judging.judge import Judge, Program
from worker.judging.runs import exec_ed, program_job
from worker.languages import LANGUAGES
from worker.languages.model import Language
from worker.sandbox import docker_client, open_pools
from worker.sandbox.container import Sandbox, SandboxSpec
from worker.sandbox.pool import UidSource
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import Job, RunReport
from worker.settings import Settings

TEST = TestCase("bench", b"hello 42\n", b"hello 42\n")


@dataclass(frozen=True)
class Counts:
    pooled: int  # timed runs per language through the warm pool (and interpreter starts)
    cold: int  # timed runs per language, each in a fresh container
    throughput: int  # tests per throughput stream


# issue 19's goals, side by side in one run: at least this many languages, every language's
# pooled test this many times cheaper than a fresh container's, and every pre-started runtime's
# pooled test at most this share of the runtime's own start
GOAL_LANGUAGES = 14
GOAL_COLD_OVER_POOLED = 5.0
GOAL_POOLED_OVER_START = 0.5

CORES = os.cpu_count() or 1
READY_RUNS = 30  # tests timed per parked runtime once it is ready
READY_IDLE_S = 0.5  # time the pool is left for parking the next runtime before each

FULL = Counts(pooled=100, cold=15, throughput=500)
QUICK = Counts(pooled=3, cold=1, throughput=6)


class ColdRunner:
    """A fresh hardened container per job, created and removed on the job's path."""

    def __init__(self, specs: dict[str, SandboxSpec], uid_base: int) -> None:
        self._client = docker_client()
        self._specs = specs
        self._uids = UidSource(uid_base)

    def run(self, image: str, job: Job, deadline: float) -> RunReport:
        sandbox = Sandbox(self._client, self._specs[image])
        try:
            return sandbox.run(replace(job, uid=self._uids.take()), deadline)
        finally:
            sandbox.remove()

    def state(self) -> list[dict[str, object]]:
        return []

    def close(self) -> None:
        pass


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(1000 * (time.perf_counter() - start))
    return samples


def compile_all(judge: Judge, counts: Counts) -> tuple[dict[str, Program], dict[str, object]]:
    """Every language's echo (its self-test), compiled (or syntax-checked) ``counts.cold``
    times: the programs, and each compile step's median wall time as the supervisor timed it."""
    programs = {}
    figures: dict[str, object] = {}
    for name, language in LANGUAGES.items():
        times = []
        for _ in range(counts.cold):
            compiled = judge.compile(language, language.selftest.encode())
            assert compiled.program is not None, compiled
            if compiled.result is not None:
                times.append(compiled.result.time_ms)
        programs[name] = compiled.program
        if times:
            figures[f"{name}_compile_ms"] = statistics.median(times)
    return programs, figures


def check(judge: Judge, program: Program) -> int:
    """One test of ``program`` through the judge, checked; the CPU milliseconds it was charged."""
    result = judge.run_test(program, TEST, Limits(), Comparison())
    assert result.verdict == Verdict.AC, result
    return result.cpu_time_ms


def throughput(pools: SandboxPools, program: Program, tests: int) -> float:
    judge = Judge(pools)
    left = [tests]
    lock = threading.Lock()

    def lease_loop() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            check(judge, program)

    start = time.perf_counter()
    threads = [threading.Thread(target=lease_loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tests / (time.perf_counter() - start)


def latencies(
    judge: Judge, cold: Judge, programs: dict[str, Program], counts: Counts
) -> dict[str, object]:
    """Per language: p50/p95 of a whole test through the warm pool, and with a fresh
    container per test."""
    figures: dict[str, object] = {}
    for name, program in programs.items():
        check(judge, program)  # warm caches before timing
        pooled = timed(lambda p=program: check(judge, p), counts.pooled)
        cold_ms = timed(lambda p=program: check(cold, p), counts.cold)
        figures[f"{name}_pooled_p50_ms"] = round(statistics.median(pooled), 2)
        figures[f"{name}_pooled_p95_ms"] = round(percentile(pooled, 0.95), 2)
        figures[f"{name}_cold_p50_ms"] = round(statistics.median(cold_ms), 1)
        figures[f"{name}_cold_p95_ms"] = round(percentile(cold_ms, 0.95), 1)
        if program.language.park:
            figures.update(ready(judge, name, program, counts))
    return figures


def ready(judge: Judge, name: str, program: Program, counts: Counts) -> dict[str, object]:
    """A parked runtime's test when its runtime is ready: each after the pool has been idle
    long enough to park the next runtime (back to back, a test waits for the start of the
    runtime parked for it, which costs what an exec'ed start does); its time, and the CPU it
    was charged."""
    walls, cpus = [], []
    for _ in range(min(counts.pooled, READY_RUNS)):
        time.sleep(READY_IDLE_S)
        start = time.perf_counter()
        cpus.append(check(judge, program))
        walls.append(1000 * (time.perf_counter() - start))
    return {
        f"{name}_pooled_ready_p50_ms": round(statistics.median(walls), 2),
        f"{name}_pooled_ready_cpu_ms": statistics.median(cpus),
    }


def prestarted(language: Language) -> bool:
    """Whether a test finds the language's runtime already started (forked from a server, or
    parked for it)."""
    return bool(language.forkserver or language.park)


def runtime_starts(
    pools: SandboxPools, programs: dict[str, Program], counts: Counts
) -> dict[str, object]:
    """Each language's own start inside a sandbox: its self-test on empty input, exec'ed as
    ``python3 main.py`` would be (never forked or handed to a runtime parked for it), as the
    supervisor times it from exec to exit. Python's is also timed as ``python3 -c pass``."""
    figures: dict[str, object] = {}
    for name, program in programs.items():
        job = exec_ed(program_job(program, Limits()))
        image = program.language.image
        reports = [pools.run(image, job, 10) for _ in range(counts.pooled)]
        figures[f"{name}_runtime_start_ms"] = round(
            statistics.median(r.wall_us / 1000 for r in reports), 2
        )
        figures[f"{name}_runtime_start_cpu_ms"] = round(
            statistics.median(r.cpu_us / 1000 for r in reports), 2
        )
    bare = Job(uid=0, argv=("/usr/bin/python3", "-c", "pass"), env=LANGUAGES["python"].job_env)
    starts = [pools.run("python", bare, 10).wall_us / 1000 for _ in range(counts.pooled)]
    figures["python_interpreter_start_ms"] = round(statistics.median(starts), 2)
    return figures


def single_use_throughput(
    settings: Settings, owner: str, program: Program, counts: Counts
) -> dict[str, object]:
    """Python tests per second when every test gets a fresh container (``max_jobs=1``)."""
    single = open_pools(settings, size=2, owner=owner, images=["python"], max_jobs=1)
    single.start()
    try:
        return {
            "python_single_use_tests_per_s": round(
                throughput(single, program, counts.throughput), 1
            )
        }
    finally:
        single.close()


def isolation_overhead(
    settings: Settings, owner: str, programs: dict[str, Program], counts: Counts
) -> dict[str, object]:
    """What a job's cell (its own user, IPC, mount and PID namespaces) costs: the same test
    through pools that give jobs cells and pools that do not (``RUNNER_ISOLATION=uid``), one
    after the other, alternating, in one run."""
    figures: dict[str, object] = {}
    # an owner each: a set of pools removes, as leftovers, any sandbox of its owner it does
    # not hold itself
    both = {
        mode: open_pools(replace(settings, isolation=mode), size=1, owner=f"{owner}-{mode}")
        for mode in ("namespaces", "uid")
    }
    try:
        for pools in both.values():
            pools.start()
        judges = {mode: Judge(pools) for mode, pools in both.items()}
        for name in ("c", "python"):
            samples: dict[str, list[float]] = {mode: [] for mode in judges}
            for _ in range(counts.pooled):
                for mode, judge in judges.items():
                    samples[mode] += timed(lambda j=judge, n=name: check(j, programs[n]), 1)
            cell, plain = (statistics.median(samples[m]) for m in ("namespaces", "uid"))
            figures[f"{name}_pooled_uid_only_p50_ms"] = round(plain, 2)
            figures[f"{name}_isolation_overhead_ms"] = round(cell - plain, 2)
    finally:
        for pools in both.values():
            pools.close()
    figures["isolation_overhead_ms"] = figures["c_isolation_overhead_ms"]
    return figures


def ratios(figures: dict[str, object]) -> dict[str, object]:
    def figure(key: str) -> float:
        return float(figures[key])  # type: ignore[arg-type]

    pooled_p50 = figure("python_pooled_p50_ms")
    per_language: dict[str, object] = {"languages": len(LANGUAGES)}
    missed = [] if len(LANGUAGES) >= GOAL_LANGUAGES else [f"languages < {GOAL_LANGUAGES}"]
    for name, language in LANGUAGES.items():
        pooled = figure(f"{name}_pooled_p50_ms")
        cold = round(figure(f"{name}_cold_p50_ms") / pooled, 1)
        per_language[f"ratio_cold_over_pooled_{name}"] = cold
        if cold < GOAL_COLD_OVER_POOLED:
            missed.append(f"{name}: cold/pooled {cold} < {GOAL_COLD_OVER_POOLED}")
        start = round(pooled / figure(f"{name}_runtime_start_ms"), 2)
        per_language[f"ratio_pooled_over_runtime_start_{name}"] = start
        floor = ""
        if f"{name}_pooled_ready_p50_ms" in figures:
            per_language[f"ratio_ready_over_runtime_start_{name}"] = round(
                figure(f"{name}_pooled_ready_p50_ms") / figure(f"{name}_runtime_start_ms"), 2
            )
            # back to back, every test needs a runtime of its own: its whole CPU (start, the
            # test, exit: what an exec'ed run takes) spread over the machine's cores is the
            # least a test of a steady stream can take, however the starts overlap the tests
            floor_ms = figure(f"{name}_runtime_start_cpu_ms") / CORES
            per_language[f"{name}_back_to_back_floor_ms"] = round(floor_ms, 2)
            floor_ratio = round(floor_ms / figure(f"{name}_runtime_start_ms"), 2)
            per_language[f"ratio_floor_over_runtime_start_{name}"] = floor_ratio
            floor = f" (its floor back to back on {CORES} cores: {floor_ratio})"
        if prestarted(language) and start > GOAL_POOLED_OVER_START:
            missed.append(f"{name}: pooled/start {start} > {GOAL_POOLED_OVER_START}{floor}")
    per_language["goals_missed"] = missed
    return per_language | {
        "ratio_cold_over_pooled_python": round(figure("python_cold_p50_ms") / pooled_p50, 1),
        "ratio_pooled_over_interpreter_start": round(
            pooled_p50 / figure("python_interpreter_start_ms"), 2
        ),
        "ratio_pooled_over_single_use_throughput": round(
            figure("python_pooled_tests_per_s") / figure("python_single_use_tests_per_s"), 1
        ),
    }


def run(quick: bool = False) -> dict[str, object]:
    counts = QUICK if quick else FULL
    settings = Settings.from_env()
    owner = f"bench-{uuid.uuid4().hex[:8]}"
    figures: dict[str, object] = {}
    pools = open_pools(settings, size=2, owner=owner)
    pools.start()
    try:
        judge = Judge(pools)
        programs, compile_times = compile_all(judge, counts)
        figures.update(compile_times)
        specs = {key: replace(spec, owner=owner) for key, spec in pools.specs.items()}
        cold = Judge(ColdRunner(specs, settings.job_uid_base))
        figures.update(latencies(judge, cold, programs, counts))
        figures.update(runtime_starts(pools, programs, counts))
        figures["python_pooled_tests_per_s"] = round(
            throughput(pools, programs["python"], counts.throughput), 1
        )
    finally:
        pools.close()
    figures.update(single_use_throughput(settings, owner, programs["python"], counts))
    figures.update(isolation_overhead(settings, owner, programs, counts))
    figures.update(ratios(figures))
    return figures
