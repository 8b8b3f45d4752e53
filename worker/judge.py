"""Judging: compile a submission once, run one test, and turn what the supervisor measured
into a verdict.

The judge talks to any :class:`~worker.sandbox.Runner` (the real pools or the fake one), so
the verdict rules are tested without Docker. Expected output never enters a sandbox: the
comparison runs here.
"""

from __future__ import annotations

import json
import signal as signals
from dataclasses import dataclass

import structlog

from worker.compare import Comparison, compare
from worker.contract import CompileResult, Limits, TestCase, TestResult, Verdict
from worker.errors import SandboxError, SandboxTimeout
from worker.languages import Language
from worker.sandbox.protocol import File, Job, RunReport
from worker.sandbox.runner import Runner

log = structlog.get_logger()

SHOWN_BYTES = 16 * 1024  # stdout/stderr echoed in a result; the comparison sees all of it
COMPILE_OUTPUT_BYTES = 64 * 1024
ARTIFACT_KB = 64 * 1024  # largest file a compile step may write
GRACE_S = 5.0  # outer deadline beyond the job's wall limit, for transfer and cleanup
RETRIES = 1  # a sandbox that broke is recycled and the test retried once on another


@dataclass(frozen=True)
class Program:
    """What each test run receives: the source, or the compiled artifact."""

    language: Language
    files: tuple[File, ...]


@dataclass(frozen=True)
class Compiled:
    program: Program | None  # None: the verdict below ends the submission
    result: CompileResult | None
    verdict: Verdict | None = None
    message: str = ""


class Judge:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    # -- compile -------------------------------------------------------------------------------

    def compile(self, language: Language, source: bytes) -> Compiled:
        """Compile (or syntax-check) once; ``CE`` with the compiler's output on failure."""
        source_file = File(language.source_file, source, 0o644)
        step = language.compile
        if step is None:
            return Compiled(Program(language, (source_file,)), None)
        job = Job(
            uid=0,
            argv=step.argv,
            env=language.job_env,
            files=(source_file,),
            cpu_ms=step.cpu_time_ms,
            wall_ms=step.wall_time_ms,
            mem_kb=step.memory_mb * 1024,
            procs=step.processes,
            fsize_kb=ARTIFACT_KB,
            out_bytes=COMPILE_OUTPUT_BYTES,
            err_bytes=COMPILE_OUTPUT_BYTES,
            collect=(step.artifact,) if step.artifact else (),
        )
        try:
            report = self._run(step.image, job)
        except SandboxError as exc:
            return Compiled(None, None, Verdict.IE, f"compile step failed: {exc}")
        output = report.stderr + report.stdout
        result = CompileResult(
            exit_code=report.exit_code,
            output=output[:COMPILE_OUTPUT_BYTES].decode(errors="replace"),
            output_truncated=report.stderr_total + report.stdout_total > COMPILE_OUTPUT_BYTES,
            time_ms=report.wall_us // 1000,
        )
        if report.status != "ok":
            return Compiled(None, result, Verdict.IE, f"compile step failed: {report.error}")
        if report.killed != "none" or report.exit_code != 0:
            why = {
                "cpu": "compilation took too long",
                "wall": "compilation took too long",
                "memory": "compilation used too much memory",
                "output": "compiler output too long",
            }.get(report.killed, "compilation failed")
            return Compiled(None, result, Verdict.CE, why)
        if step.artifact is None:
            return Compiled(Program(language, (source_file,)), result)
        artifact = report.files.get(step.artifact)
        if artifact is None:
            return Compiled(None, result, Verdict.IE, f"compiler produced no {step.artifact!r}")
        return Compiled(Program(language, (artifact,)), result)

    # -- one test ------------------------------------------------------------------------------

    def run_test(
        self, program: Program, test: TestCase, limits: Limits, comparison: Comparison
    ) -> TestResult:
        language = program.language
        out_bytes = limits.output_kb * 1024
        job = Job(
            uid=0,
            argv=language.run,
            env=language.job_env,
            files=program.files,
            stdin=test.stdin,
            cpu_ms=limits.cpu_time_ms,
            wall_ms=limits.wall_time_ms,
            mem_kb=limits.memory_mb * 1024,
            procs=limits.processes + language.runtime_threads,
            fsize_kb=limits.output_kb,
            stack_kb=limits.memory_mb * 1024,
            out_bytes=out_bytes,
            err_bytes=SHOWN_BYTES,
            server=language.forkserver,
        )
        try:
            report = self._run(language.image, job)
        except SandboxError as exc:
            return TestResult(id=test.id, verdict=Verdict.IE, message=str(exc))
        if report.server_error:
            # the test ran all the same (exec'ed), only slower: for the operator, not the user
            log.warning(
                "sandbox.forkserver_unused", image=language.image, reason=report.server_error
            )
        return verdict_of(test, report, limits, comparison)

    def _run(self, image: str, job: Job) -> RunReport:
        deadline = job.wall_ms / 1000 + GRACE_S
        for _ in range(RETRIES):
            try:
                return self.runner.run(image, job, deadline)
            except SandboxTimeout:
                raise  # the job already had its full time; running it again doubles the wait
            except SandboxError as exc:
                log.warning("sandbox.retry", image=image, error=str(exc))
        return self.runner.run(image, job, deadline)


def verdict_of(
    test: TestCase, report: RunReport, limits: Limits, comparison: Comparison
) -> TestResult:
    """Decide a test's verdict from the supervisor's measurements."""
    verdict, message = _decide(test, report, limits, comparison)
    sig = signal_name(report.signal) if report.signal else None
    stdout, stdout_cut = shown(report.stdout)
    stderr, stderr_cut = shown(report.stderr)
    return TestResult(
        id=test.id,
        verdict=verdict,
        cpu_time_ms=round(report.cpu_us / 1000),
        wall_time_ms=round(report.wall_us / 1000),
        memory_kb=report.maxrss_kb,
        exit_code=None if report.signal else report.exit_code,
        signal=sig,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=stdout_cut or report.stdout_total > SHOWN_BYTES,
        stderr_truncated=stderr_cut or report.stderr_total > SHOWN_BYTES,
        message=message,
    )


def shown(output: bytes) -> tuple[str, bool]:
    """The start of an output echoed in a result, and whether it was cut short of the first
    SHOWN_BYTES: at most SHOWN_BYTES once escaped as JSON, so a result's size is bounded
    whatever the program printed (a control byte takes six characters, ``\\u0000``)."""
    text = output[:SHOWN_BYTES].decode(errors="replace")
    cut = False
    while len(json.dumps(text)) - 2 > SHOWN_BYTES:
        text, cut = text[: len(text) * 2 // 3], True
    return text, cut


def _decide(
    test: TestCase, report: RunReport, limits: Limits, comparison: Comparison
) -> tuple[Verdict, str]:
    if report.status != "ok":
        return Verdict.IE, f"sandbox could not run the program: {report.error}"
    memory = f"memory limit exceeded ({limits.memory_mb} MB)"
    cpu = f"CPU time limit exceeded ({limits.cpu_time_ms} ms)"
    if report.killed == "memory" or report.oom_kills > 0:
        return Verdict.MLE, memory
    if report.killed == "cpu" or report.signal == signals.SIGXCPU:
        return Verdict.TLE, cpu
    if report.killed == "wall":
        return Verdict.TLE, f"wall time limit exceeded ({limits.wall_time_ms} ms)"
    if report.killed == "output":
        return Verdict.OLE, f"output limit exceeded ({limits.output_kb} KB)"
    if report.signal == signals.SIGXFSZ:
        return Verdict.OLE, f"file size limit exceeded ({limits.output_kb} KB)"
    # limits are checked again after the fact: a peak or a burst between two samples counts
    if report.maxrss_kb > limits.memory_mb * 1024:
        return Verdict.MLE, memory
    if report.cpu_us > limits.cpu_time_ms * 1000:
        return Verdict.TLE, cpu
    if report.signal:
        return Verdict.RE, f"killed by signal {signal_name(report.signal)}"
    if report.exit_code != 0:
        return Verdict.RE, f"exited with code {report.exit_code}"
    if test.expected_stdout is None:
        return Verdict.AC, ""
    outcome = compare(test.expected_stdout, report.stdout, comparison)
    return (Verdict.AC, "") if outcome.ok else (Verdict.WA, outcome.message)


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"
