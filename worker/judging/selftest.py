"""Each language's self-test, as DMOJ's executors have one: before a worker takes any test it
compiles (when the language compiles) and runs every language's :attr:`Language.selftest` in
a real sandbox of its pools, on a known input, through the very path a submission takes.

A language passes when its program echoed the input byte for byte, exited cleanly and wrote
nothing on stderr. One that fails is *unhealthy* on this worker: logged
(``language.unhealthy`` with the reason), shown by ``runner status``, ``runner ping`` and
``/v1/languages``, announced to the fleet (:mod:`worker.data.availability`), and its submissions are
refused (``RJ language_unavailable``), never judged by a runtime that cannot run an echo. Its
self-test runs again every announcement round, so a language that failed for a passing reason
(an engine restart during the start) comes back (``language.recovered``).

A language that passed also has its runtime's start measured (:func:`start_cost`): the
self-test exec'ed on empty input, the least CPU time of a few runs, which the judge never
charges to a program exec'ed for a test (:meth:`worker.judging.judge.Judge.run_program`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import structlog

from worker.compare import CompareMode, Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.errors import RunnerError
from worker.judging.judge import Judge
from worker.judging.runs import exec_ed, program_job
from worker.languages import LANGUAGES, Language
from worker.programs import Program

log = structlog.get_logger()

# two lines, spaces and digits: an echo that drops, adds or changes a byte fails
INPUT = b"self-test 1 2 3\n  second line\t42\n"
START_RUNS = 3  # exec'ed starts timed per language
SHOWN = 200  # characters of a program's output or the compiler's quoted in a reason


def limits(max_memory_mb: int) -> Limits:
    """Roomy: a self-test must not fail because a worker's host was busy as it started."""
    return Limits(
        cpu_time_ms=5_000,
        wall_time_ms=20_000,
        memory_mb=min(256, max_memory_mb),
        output_kb=64,
        processes=8,
    )


def self_test(judge: Judge, language: Language, max_memory_mb: int) -> str:
    """Why ``language`` cannot be judged on this worker, or ``""`` when its self-test
    passed."""
    try:
        compiled = judge.compile(language, language.selftest.encode())
        if compiled.program is None:
            said = compiled.result.output if compiled.result else ""
            return (
                f"its self-test did not compile ({compiled.verdict}: {compiled.message}): "
                f"{said[:SHOWN]!r}"
            )
        test = TestCase("self-test", INPUT, INPUT)
        exact = Comparison(CompareMode.EXACT)
        result = judge.run_test(compiled.program, test, limits(max_memory_mb), exact)
    except RunnerError as exc:
        return f"its self-test could not run: {exc}"
    if result.verdict is not Verdict.AC:
        return (
            f"its self-test ended {result.verdict} ({result.message}); stdout "
            f"{result.stdout[:SHOWN]!r}, stderr {result.stderr[:SHOWN]!r}"
        )
    if result.stderr:
        return f"its self-test wrote on stderr: {result.stderr[:SHOWN]!r}"
    try:
        judge.starts[language.name] = start_cost(judge, compiled.program, max_memory_mb)
    except RunnerError as exc:
        return f"its start could not be measured: {exc}"
    return ""


def start_cost(judge: Judge, program: Program, max_memory_mb: int) -> int:
    """The CPU time (us) the runtime's own start costs a program exec'ed for a test: the
    self-test exec'ed (never forked or parked) on empty input, which does nothing else; the
    least of a few runs, so a busy host makes it smaller, never larger, than the start's."""
    job = exec_ed(program_job(program, limits(max_memory_mb)))
    costs = []
    for _ in range(START_RUNS):
        report = judge.run(program.language.image, job)
        if report.status == "ok" and report.killed == "none" and report.exit_code == 0:
            costs.append(report.cpu_us)
    return min(costs, default=0)


class Health:
    """The languages this worker runs, each with what its last self-test said: ``""`` when it
    passed, else why it failed."""

    def __init__(self, reasons: dict[str, str]) -> None:
        self._reasons = dict(reasons)
        self._lock = threading.Lock()

    @classmethod
    def assumed(cls, languages: Iterable[str]) -> Health:
        """Every language healthy, no self-test run: for runtimes without real sandboxes."""
        return cls(dict.fromkeys(languages, ""))

    def reasons(self) -> dict[str, str]:
        with self._lock:
            return dict(self._reasons)

    def healthy(self) -> list[str]:
        return [name for name, reason in self.reasons().items() if not reason]

    def why_not(self, language: str) -> str:
        """Why this worker cannot judge ``language`` (``""``: it can)."""
        with self._lock:
            if language not in self._reasons:
                return f"this worker does not run {language} (RUNNER_LANGUAGES)"
            reason = self._reasons[language]
        return f"{language} failed its self-test on this worker: {reason}" if reason else ""

    def run(self, judge: Judge, max_memory_mb: int, languages: Iterable[str]) -> None:
        """Self-test ``languages`` (at once: each takes a sandbox or two), log what changed."""
        names = list(languages)
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            said = dict(
                zip(
                    names,
                    pool.map(lambda n: self_test(judge, LANGUAGES[n], max_memory_mb), names),
                    strict=True,
                )
            )
        with self._lock:
            before = dict(self._reasons)
            self._reasons.update(said)
        for name, reason in said.items():
            if reason:
                log.error("language.unhealthy", language=name, reason=reason)
            elif before.get(name):
                log.info("language.recovered", language=name)

    def retest(self, judge: Judge, max_memory_mb: int) -> None:
        """Run again the self-tests that failed."""
        failed = [name for name, reason in self.reasons().items() if reason]
        if failed:
            self.run(judge, max_memory_mb, failed)
