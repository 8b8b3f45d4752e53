"""Interactive problems: an interactor talks to the program through pipes, its stdout the
program's stdin and back.

Both run at once in the program's sandbox (the interactor is built static, so it runs in any
image), each in a cell of its own under a uid of its own, each under its own limits (the
supervisor's pair runs). The interactor is run as testlib runs one: ``interactor input output
answer``, with the test's ``stdin`` as its input file and its ``expected_stdout`` as the answer
(the program sees neither); it ends with a checker's exit codes (:mod:`worker.checkers`), and
what it writes to ``output`` goes to a program checker, if the problem has one.

Who is to blame, in this order: the program's own ending decides before anything the
interactor made of it, and the interactor is blamed only for failing on its own.

1. the program past its own limits: ``TLE`` (its wall time counts its idle waiting), ``MLE``;
   but a program killed for wall time whose interactor then did not end by itself either (the
   program's end gave it an end of file, and it went on until its own limits) waited on a hung
   interactor: ``IE`` (``checker_failed``). How busy either was says nothing: a program can
   keep an interactor busy (a flood of whitespace to skip) and then let its time run out;
2. the interactor failing on its own (a crash by any signal but ``SIGPIPE``, its own limits,
   testlib's FAIL, an unknown exit code): ``IE`` (``checker_failed``) with what it said; the
   program's ending may be its consequence (an EOF or a broken pipe mid-game);
3. the program killed by a signal other than ``SIGPIPE`` (writing to an interactor that has
   finished): ``RE``, whatever the interactor then made of the lost conversation;
4. the interactor killed by ``SIGPIPE``: it wrote to a program that had ended (or closed its
   stdin), so the program ended the conversation, and the interactor said nothing: ``RE`` when
   the program exited with a non-zero code (or died of ``SIGPIPE`` itself), else ``WA``, the
   program ended the interaction before the interactor finished. The supervisor runs
   interactors with ``SIGPIPE`` ignored, so a write to a program that has ended fails with
   ``EPIPE`` and the interactor says its own verdict (5); only one that asked for ``SIGPIPE``
   back dies of it;
5. the interactor's verdict: ``WA`` (too many queries, a wrong guess, an unexpected EOF...),
   partial points;
6. the program exiting with a non-zero code: ``RE`` (one killed by ``SIGPIPE`` after the
   interactor accepted wrote past the end of a game it won: not held against it, as an
   interactor's extra line is not);
7. a program checker on the interactor's output, when there is one; else ``AC``.
"""

from __future__ import annotations

import signal as signals
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from worker import kinds
from worker.checkers import judge_testlib
from worker.compare import Comparison
from worker.contract import Limits, TestCase, TestResult, Verdict
from worker.errors import SandboxError
from worker.judging.runs import crash_verdict, limit_verdict, program_job, result_of, signal_name
from worker.languages import Language
from worker.programs import File, Program
from worker.sandbox.protocol import Job, RunReport
from worker.verdicts import CHECKER_FAILED

GRACE_MS = 5000  # the interactor's wall time beyond the program's, to say its verdict
INTERACTOR_MEMORY_MB = 256
ENDED_EARLY = (
    "the program ended the interaction before the interactor finished (the interactor was "
    "killed by SIGPIPE writing to it)"
)


class Referee(kinds.Referee, Protocol):
    """What an interaction needs of the judge (:class:`worker.judging.judge.Judge`, which calls
    it): a program checker's job, and the program's beside its interactor."""

    def run_program(self, language: Language, job: Job) -> RunReport: ...


def run_interaction(
    judge: Referee,
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
        report = judge.run_program(program.language, job)
    except SandboxError as exc:
        return TestResult(id=test.id, verdict=Verdict.IE, message=str(exc))
    side = report.partner
    if report.status != "ok" or side is None:
        why = report.error or "the supervisor ran no interactor"
        return result_of(test, report, Verdict.IE, f"sandbox could not run the interaction: {why}")
    if report.killed == "wall" and side.killed in ("wall", "cpu"):
        message = "the interactor did not end when the program did (interactor hung)"
        return result_of(test, report, Verdict.IE, message, code=CHECKER_FAILED)
    limited = limit_verdict(report, limits, program.language.out_of_memory)
    if limited is not None:
        return result_of(test, report, *limited)
    crashed = crash_verdict(report)
    if side.signal == signals.SIGPIPE and side.killed == "none":
        # not the interactor's failure: the program's ending broke the pipe, so the program's
        # ending decides (steps 3 and 4), and it cut the interactor short
        return result_of(test, report, *(crashed or (Verdict.WA, ENDED_EARLY)))
    sig = signal_name(side.signal) if side.signal else None
    said = judge_testlib("interactor", side.exit_code, sig, side.killed, side.stderr)
    if said.verdict is Verdict.IE:
        return result_of(test, report, Verdict.IE, said.message, code=said.code)
    if crashed and report.signal and report.signal != signals.SIGPIPE:
        return result_of(test, report, *crashed)
    if said.verdict is not Verdict.AC:
        return result_of(test, report, said.verdict, said.message, said.fraction)
    if crashed and not report.signal:
        return result_of(test, report, *crashed)
    written = side.files.get("output")
    output = written.data if written else b""
    judged = kinds.kind_of(checker).after_interactor(
        checker, judge, test.stdin, output, test.expected_stdout
    )
    if judged is None:
        return result_of(test, report, Verdict.AC, said.message)
    return result_of(test, report, judged.verdict, judged.message, judged.fraction, judged.code)
