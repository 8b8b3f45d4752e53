"""Judging: compile a program once, run one test, and turn what the supervisor measured into
a verdict.

The judge talks to any :class:`~worker.sandbox.Runner` (the real pools or the fake one), so
the verdict rules are tested without Docker. Expected output never enters the contestant's
sandbox job: a built-in checker compares here, a program checker gets it in a job of its own
(:mod:`worker.checkers`), and an interactor, which runs beside the program in a cell of its
own, reads it from its own files (:mod:`worker.judging.interaction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from worker import metrics
from worker.checkers import Judgement, judge_testlib
from worker.compare import Comparison
from worker.contract import CompileResult, Limits, TestCase, TestResult, Verdict
from worker.errors import EngineUnavailable, SandboxError, SandboxLost, SandboxTimeout
from worker.judging.interaction import run_interaction
from worker.judging.runs import limits_verdict, program_job, result_of, signal_name
from worker.kinds import kind_of
from worker.languages import Language
from worker.programs import File, Program
from worker.sandbox.protocol import Job, RunReport
from worker.sandbox.runner import Runner

log = structlog.get_logger()

COMPILE_OUTPUT_BYTES = 64 * 1024
ARTIFACT_KB = 64 * 1024  # largest file a compile step may write
GRACE_S = 5.0  # outer deadline beyond the job's wall limit, for transfer and cleanup
RETRIES = 1  # a sandbox that broke is recycled and the test retried once on another
# a sandbox that died under its job (an engine restart kills them all) is replaced and the job
# run again, up to this many times (each lease waits out the engine's outage meanwhile)
LOST_RETRIES = 3
# what a checker may take for one test (it reads three files and writes a line)
TOKENS = Comparison()  # the default checker
CHECKER_LIMITS = Limits(cpu_time_ms=5000, wall_time_ms=10000, memory_mb=256, processes=4)


@dataclass(frozen=True)
class Compiled:
    program: Program | None  # None: the verdict below ends the submission
    result: CompileResult | None
    verdict: Verdict | None = None
    message: str = ""


class Judge:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        # per language: the CPU time (us) its runtime's start costs a program exec'ed for a
        # test, as the worker measured it at its start (worker.judging.selftest); never charged
        self.starts: dict[str, int] = {}

    # -- compile -------------------------------------------------------------------------------

    def compile(
        self,
        language: Language,
        source: bytes | Sequence[File],
        *,
        entry: str = "",
        options: Sequence[str] = (),
        static: bool = False,
    ) -> Compiled:
        """Compile (or syntax-check) once: a lone ``source`` is the language's source file, or
        ``source`` is every file with ``entry`` among them; ``static`` builds a program that
        runs in any image (an interactor). ``CE`` with the compiler's output on failure."""
        entry = entry or language.source_file
        files = (File(entry, source),) if isinstance(source, bytes) else tuple(source)
        step = language.compile
        if step is None:
            return Compiled(Program(language, files, entry), None)
        names = [f.name for f in files if language.is_source(f.name)]
        sources = [entry, *(name for name in names if name != entry)]
        job = Job(
            uid=0,
            argv=step.command(sources, (*options, *(step.static if static else ()))),
            env=language.job_env,
            files=files,
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
            report = self.run(step.image, job)
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
            return Compiled(Program(language, files, entry), result)
        artifact = report.files.get(step.artifact)
        if artifact is None:
            # the compiler succeeded without making it: the source is no program (a Pascal
            # unit), which the compile image's self-test rules out for the image itself
            why = f"compiled, but into no program ({step.artifact!r} was not made)"
            return Compiled(None, result, Verdict.CE, why)
        return Compiled(Program(language, (artifact,), entry), result)

    # -- one test ------------------------------------------------------------------------------

    def run_test(
        self,
        program: Program,
        test: TestCase,
        limits: Limits,
        checker: Comparison | Program = TOKENS,
        *,
        args: Sequence[str] = (),
        interactor: Program | None = None,
    ) -> TestResult:
        """Run one test and judge it: by ``checker`` (a built-in comparison, or a program), and
        with an ``interactor`` talking to the program (worker.judging.interaction)."""
        if interactor is not None:
            return run_interaction(self, program, test, limits, interactor, args, checker)
        job = program_job(program, limits, args, stdin=test.stdin)
        try:
            report = self.run_program(program.language, job)
        except SandboxError as exc:
            return TestResult(id=test.id, verdict=Verdict.IE, message=str(exc))
        return self.verdict(test, report, limits, checker, program.language.out_of_memory)

    def verdict(
        self,
        test: TestCase,
        report: RunReport,
        limits: Limits,
        checker: Comparison | Program,
        out_of_memory: Sequence[str] = (),
    ) -> TestResult:
        """A test's result from the supervisor's measurements and its ``checker``
        (``out_of_memory``: what the program's runtime says when it runs out of memory)."""
        limited = limits_verdict(report, limits, out_of_memory)
        if limited is not None:
            return result_of(test, report, *limited)
        judged = kind_of(checker).judge(
            checker, self, test.stdin, report.stdout, test.expected_stdout
        )
        return result_of(test, report, judged.verdict, judged.message, judged.fraction, judged.code)

    def check(
        self, checker: Program, input_: bytes, output: bytes, answer: bytes | None
    ) -> Judgement:
        """Run a program checker on one test's files (testlib: ``checker input output
        answer``); its failure is an ``IE`` judgement (``checker_failed``), never the
        contestant's ``WA``; a sandbox that could not run it is the fleet's ``IE``."""
        files = (File("input", input_), File("output", output), File("answer", answer or b""))
        job = program_job(
            Program(checker.language, (*checker.files, *files), checker.entry),
            CHECKER_LIMITS,
            ("input", "output", "answer"),
        )
        try:
            report = self.run(checker.language.image, job)
        except SandboxError as exc:
            return Judgement(Verdict.IE, 0.0, f"checker could not run: {exc}")
        if report.status != "ok":
            return Judgement(Verdict.IE, 0.0, f"checker could not run: {report.error}")
        sig = signal_name(report.signal) if report.signal else None
        return judge_testlib("checker", report.exit_code, sig, report.killed, report.stderr)

    def run_program(self, language: Language, job: Job) -> RunReport:
        """Run a contestant's program: its runtime's start is not charged to it, whichever
        way it started. A runtime forked or parked for the test started before the test;
        one exec'ed for it (the language has neither, or the test fell back to exec) costs
        what the worker measured of that start (:attr:`starts`), which is taken off the CPU
        time the sandbox charged, and added to the limit the sandbox enforces, so the program
        has its whole limit to itself either way."""
        start_us = self.starts.get(language.name, 0)
        if start_us and job.cpu_ms:
            job = replace(job, cpu_ms=job.cpu_ms + -(-start_us // 1000))
        report = self.run(language.image, job)
        if start_us and report.via == "exec":
            report = replace(report, cpu_us=max(0, report.cpu_us - start_us))
        return report

    def run(self, image: str, job: Job) -> RunReport:
        """Run a job (retried once on another sandbox if this one broke)."""
        report = self._attempts(image, job)
        if report.server_error:
            # the job ran all the same (exec'ed), only slower: for the operator, not the user
            log.warning("sandbox.forkserver_unused", image=image, reason=report.server_error)
        if report.park_error:
            # likewise: exec'ed, the runtime parked for it thrown away
            log.warning("sandbox.parked_unused", image=image, reason=report.park_error)
        return report

    def _attempts(self, image: str, job: Job) -> RunReport:
        wall_ms = max(job.wall_ms, job.partner.wall_ms if job.partner else 0)
        deadline = wall_ms / 1000 + GRACE_S
        broken = lost = 0
        while True:
            try:
                return self.runner.run(image, job, deadline)
            except (SandboxTimeout, EngineUnavailable):
                # a timeout: the job already had its full time, running it again doubles the
                # wait; the engine: its lease waited out the outage window already
                raise
            except SandboxLost as exc:
                lost += 1
                if lost > LOST_RETRIES:
                    raise
                metrics.SANDBOX_FAILURES.labels(image).inc()
                log.warning("sandbox.retry", image=image, error=str(exc), lost=True)
            except SandboxError as exc:
                broken += 1
                if broken > RETRIES:
                    raise
                metrics.SANDBOX_FAILURES.labels(image).inc()
                log.warning("sandbox.retry", image=image, error=str(exc))
