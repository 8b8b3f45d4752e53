"""Run a source through the real judge and return per-test results; build Python jobs."""

from __future__ import annotations

from typing import Any

from worker.compare import Comparison
from worker.contract import Limits, TestCase, TestResult
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.programs import File
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import Job

FAST = Limits(cpu_time_ms=1000, wall_time_ms=3000, memory_mb=128, output_kb=64, processes=8)


def judge_source(
    judge: Judge,
    language: str,
    source: str | bytes,
    tests: list[tuple[bytes, bytes | None]] | None = None,
    limits: Limits = FAST,
) -> list[TestResult]:
    """Compile once, run every (stdin, expected) test; a compile failure gives one result."""
    raw = source.encode() if isinstance(source, str) else source
    compiled = judge.compile(LANGUAGES[language], raw)
    if compiled.program is None:
        assert compiled.verdict is not None
        output = compiled.result.output if compiled.result else ""
        return [
            TestResult(
                id="compile", verdict=compiled.verdict, message=compiled.message, stderr=output
            )
        ]
    return [
        judge.run_test(compiled.program, TestCase(str(i), stdin, expected), limits, Comparison())
        for i, (stdin, expected) in enumerate(tests or [(b"", None)])
    ]


def verdict(judge: Judge, language: str, source: str | bytes, limits: Limits = FAST) -> TestResult:
    (result,) = judge_source(judge, language, source, limits=limits)
    return result


def python_job(source: bytes, server: tuple[str, ...] | None = None, **limits: Any) -> Job:
    """``main.py`` run as the judge runs Python (its argv and environment, through the image's
    fork server unless ``server`` names another or ``()``), with a 5 s wall limit by default."""
    python = LANGUAGES["python"]
    return Job(
        uid=0,
        argv=python.command("main.py"),
        env=python.job_env,
        files=(File("main.py", source),),
        server=python.forkserver if server is None else server,
        **{"wall_ms": 5000, **limits},
    )


def compile_static(pools: SandboxPools, name: str, source: str, compiler: str) -> File:
    """A static binary from the gcc image: it runs in every run image, C++ runtime or not."""
    src = f"{name}.{'cpp' if compiler.endswith('++') else 'c'}"
    job = Job(
        uid=0,
        argv=(compiler, "-static", "-O2", "-o", name, src),
        env=LANGUAGES["c"].job_env,
        files=(File(src, source.encode()),),
        cpu_ms=20_000,
        wall_ms=30_000,
        mem_kb=512 * 1024,
        procs=16,
        fsize_kb=64 * 1024,
        collect=(name,),
    )
    report = pools.run("gcc", job, 60)
    assert (report.status, report.exit_code) == ("ok", 0), report.stderr
    return report.files[name]


def native(binary: File, **limits: int) -> Job:
    return Job(uid=0, argv=("./main",), env=LANGUAGES["c"].job_env, files=(binary,), **limits)
