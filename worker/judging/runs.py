"""One run of a program in a sandbox: the job that runs it, and what its report says (the
verdict its limits give, and the test result a report makes)."""

from __future__ import annotations

import json
import signal as signals
from collections.abc import Sequence
from dataclasses import replace

from worker.contract import Limits, TestCase, TestResult, Verdict
from worker.programs import Program
from worker.sandbox.protocol import Job, RunReport

SHOWN_BYTES = 16 * 1024  # stdout/stderr echoed in a result; the comparison sees all of it


def program_job(
    program: Program,
    limits: Limits,
    args: Sequence[str] = (),
    stdin: bytes = b"",
    out_kb: int | None = None,
) -> Job:
    """The job that runs ``program`` once under ``limits``."""
    language = program.language
    out_bytes = (limits.output_kb if out_kb is None else out_kb) * 1024
    stack_kb = limits.memory_mb * 1024
    return Job(
        uid=0,
        argv=program.command(args, memory_mb=limits.memory_mb, stack_kb=stack_kb),
        env=language.job_env,
        files=program.files,
        stdin=stdin,
        cpu_ms=limits.cpu_time_ms,
        wall_ms=limits.wall_time_ms,
        mem_kb=limits.memory_mb * 1024,
        procs=limits.processes + language.runtime_threads,
        fsize_kb=limits.output_kb,
        stack_kb=stack_kb,
        out_bytes=out_bytes,
        err_bytes=SHOWN_BYTES,
        server=language.forkserver,
        park=language.park,
        park_files=language.park_files,
    )


def exec_ed(job: Job) -> Job:
    """``job`` as ``python3 main.py`` would run it: exec'ed, never forked from a server or
    handed to a parked runtime (what a runtime's own start is measured by)."""
    return replace(job, server=(), park=(), park_files=())


def limits_verdict(
    report: RunReport, limits: Limits, out_of_memory: Sequence[str] = ()
) -> tuple[Verdict, str] | None:
    """The verdict of a run that went wrong by itself (limits, crash, exit code), or None when
    it ended cleanly and its output is for a checker to judge."""
    return limit_verdict(report, limits, out_of_memory) or crash_verdict(report)


def limit_verdict(
    report: RunReport, limits: Limits, out_of_memory: Sequence[str] = ()
) -> tuple[Verdict, str] | None:
    """``TLE``, ``MLE`` or ``OLE`` for a run past its limits (``IE`` if the sandbox failed);
    ``out_of_memory``: what its runtime says on stderr when it runs out of memory its own way
    (:attr:`~worker.languages.Language.out_of_memory`)."""
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
    failed = report.signal or report.exit_code != 0
    # the runtime's words come last, after whatever the program wrote: the tail has them
    said = report.stderr + report.stderr_tail
    if failed and any(marker.encode() in said for marker in out_of_memory):
        return Verdict.MLE, memory
    return None


def crash_verdict(report: RunReport) -> tuple[Verdict, str] | None:
    """``RE`` for a run killed by a signal or ending with a non-zero exit code."""
    if report.signal:
        return Verdict.RE, f"killed by signal {signal_name(report.signal)}"
    if report.exit_code != 0:
        return Verdict.RE, f"exited with code {report.exit_code}"
    return None


def result_of(
    test: TestCase,
    report: RunReport,
    verdict: Verdict,
    message: str,
    fraction: float | None = None,
    code: str | None = None,
) -> TestResult:
    """A test's result: the verdict, what the supervisor measured, its partial score (when a
    checker gave one that is neither all nor nothing) and, with ``IE``, whose fault it is
    (``code``: ``checker_failed``; ``None``, the fleet's)."""
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
        score=fraction if fraction is not None and 0.0 < fraction < 1.0 else None,
        error_code=code if verdict is Verdict.IE else None,
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


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"
