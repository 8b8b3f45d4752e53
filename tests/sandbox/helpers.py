"""Run a source through the real judge and return per-test results."""

from __future__ import annotations

from worker.compare import Comparison
from worker.contract import Limits, TestCase, TestResult
from worker.judge import Judge
from worker.languages import LANGUAGES

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
