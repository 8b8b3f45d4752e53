"""Interactive problems: an interactor talks to the program through pipes, its stdout the
program's stdin and back.

Both run at once in the program's sandbox (the interactor is built static, so it runs in any
image), each in a cell of its own under a uid of its own, each under its own limits (the
supervisor's pair runs). The interactor is run as testlib runs one: ``interactor input output
answer``, with the test's ``stdin`` as its input file and its ``expected_stdout`` as the answer
(the program sees neither); it ends with a checker's exit codes (:mod:`worker.checkers`), and
what it writes to ``output`` goes to a program checker, if the problem has one.

Who is to blame, in this order:

1. the program past its own limits: ``TLE`` (its wall time counts its idle waiting), ``MLE``;
   but a program killed for wall time while it barely ran, beside an interactor that was busy
   all along, waited on a hung interactor: ``IE``;
2. the interactor failing (a crash, its limits, testlib's FAIL, an unknown exit code): ``IE``
   with what it said;
3. the program killed by a signal other than ``SIGPIPE`` (writing to an interactor that has
   finished): ``RE``, whatever the interactor then made of the lost conversation;
4. the interactor's verdict: ``WA`` (too many queries, a wrong guess...), partial points;
5. the program exiting with a non-zero code: ``RE``;
6. a program checker on the interactor's output, when there is one; else ``AC``.
"""

from __future__ import annotations

import signal as signals
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from worker.checkers import judge_testlib
from worker.compare import Comparison
from worker.contract import Limits, TestCase, TestResult, Verdict
from worker.errors import SandboxError
from worker.programs import File, Program
from worker.runs import crash_verdict, limit_verdict, program_job, result_of, signal_name

if TYPE_CHECKING:
    from worker.judge import Judge

GRACE_MS = 5000  # the interactor's wall time beyond the program's, to say its verdict
INTERACTOR_MEMORY_MB = 256


def run_interaction(
    judge: Judge,
    program: Program,
    test: TestCase,
    limits: Limits,
    interactor: Program,
    args: Sequence[str],
    checker: Comparison | Program,
) -> TestResult:
    files = (File("input", test.stdin), File("answer", test.expected_stdout or b""))
    partner_limits = Limits(
        cpu_time_ms=max(limits.cpu_time_ms, GRACE_MS),
        wall_time_ms=limits.wall_time_ms + GRACE_MS,
        memory_mb=INTERACTOR_MEMORY_MB,
        processes=4,
    )
    partner = program_job(
        Program(interactor.language, (*interactor.files, *files), interactor.entry),
        partner_limits,
        ("input", "output", "answer"),
    )
    job = replace(
        program_job(program, limits, args),
        partner=replace(partner, collect=("output",), server=()),
    )
    try:
        report = judge.run(program.language.image, job)
    except SandboxError as exc:
        return TestResult(id=test.id, verdict=Verdict.IE, message=str(exc))
    side = report.partner
    if report.status != "ok" or side is None:
        why = report.error or "the supervisor ran no interactor"
        return result_of(test, report, Verdict.IE, f"sandbox could not run the interaction: {why}")
    if report.killed == "wall" and 2 * report.cpu_us < report.wall_us <= 2 * side.cpu_us:
        message = "the interactor was busy while the program waited for it (interactor hung)"
        return result_of(test, report, Verdict.IE, message)
    limited = limit_verdict(report, limits)
    if limited is not None:
        return result_of(test, report, *limited)
    sig = signal_name(side.signal) if side.signal else None
    said = judge_testlib("interactor", side.exit_code, sig, side.killed, side.stderr)
    if said.verdict is Verdict.IE:
        return result_of(test, report, Verdict.IE, said.message)
    crashed = crash_verdict(report)
    if crashed and report.signal and report.signal != signals.SIGPIPE:
        return result_of(test, report, *crashed)
    if said.verdict is not Verdict.AC:
        return result_of(test, report, said.verdict, said.message, said.fraction)
    if crashed and not report.signal:
        return result_of(test, report, *crashed)
    if isinstance(checker, Program):
        written = side.files.get("output")
        output = written.data if written else b""
        judged = judge.check(checker, test.stdin, output, test.expected_stdout)
        return result_of(test, report, judged.verdict, judged.message, judged.fraction)
    return result_of(test, report, Verdict.AC, said.message)
