"""Checkers: what decides whether a program's output for a test is right. One registry.

A submission (or a problem) names its checker. A **built-in** one (:data:`BUILTINS`) is one of
the comparisons of :mod:`worker.compare`, run in the worker on raw bytes; contract 1's
``compare`` field names the same ones. A **program** checker is the problem setter's own, in
any supported language, following testlib's checker protocol so that existing checkers work
unmodified (their author ships their own copy of ``testlib.h`` as one of its files)::

    checker input output answer

It runs sandboxed, in a cell of its own like any job, with those three files in its work dir:
the test's input, the program's whole output and the expected answer. The contestant's program
never sees the answer; the checker sees nothing else of the contestant's. Its exit code decides
(:data:`TESTLIB`); what it wrote on stderr is the test's message. A checker that crashes, is
killed for its limits or exits with any other code is *its* failure, never the contestant's
``WA``: ``IE`` with what it said, error code ``checker_failed`` (the problem's fault, not the
fleet's ``internal_error``). An interactor ends by the same codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.compare import CompareMode, Comparison, compare
from worker.verdicts import CHECKER_FAILED, Verdict

MESSAGE_BYTES = 1024  # of a checker's stderr, in the test's message


@dataclass(frozen=True)
class Builtin:
    """A built-in checker: its name (also a :class:`~worker.compare.CompareMode`), what it
    accepts, and the tolerances it takes (each a float >= 0)."""

    name: str
    summary: str
    params: tuple[str, ...] = ()


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin(CompareMode.TOKENS, "the whitespace-separated tokens are equal (the default)"),
        Builtin(CompareMode.EXACT, "the bytes are equal"),
        Builtin(CompareMode.LINES, "line by line, trailing whitespace and blank lines ignored"),
        Builtin(
            CompareMode.FLOAT,
            "as tokens, numbers within abs_tol or rel_tol (default 1e-6 each)",
            ("abs_tol", "rel_tol"),
        ),
    )
}


@dataclass(frozen=True)
class Judgement:
    """What a checker (or interactor) decided about one test: ``fraction`` of its points; with
    ``IE``, ``code`` says whose fault it is (``None``: the fleet's)."""

    verdict: Verdict
    fraction: float
    message: str
    code: str | None = None


def failed(message: str) -> Judgement:
    """The judgement of a problem's checker or interactor that failed: its fault, not the
    contestant's nor the fleet's."""
    return Judgement(Verdict.IE, 0.0, message, CHECKER_FAILED)


def judge_builtin(expected: bytes, output: bytes, how: Comparison) -> Judgement:
    outcome = compare(expected, output, how)
    if outcome.ok:
        return Judgement(Verdict.AC, 1.0, "")
    return Judgement(Verdict.WA, 0.0, outcome.message)


# testlib's exit codes (OK_EXIT_CODE and the rest, without the CONTESTER/EJUDGE variants)
TESTLIB: dict[int, tuple[Verdict, str]] = {
    0: (Verdict.AC, ""),
    1: (Verdict.WA, ""),
    2: (Verdict.WA, "presentation error"),
    3: (Verdict.IE, "failed"),
    4: (Verdict.WA, "presentation error"),  # "dirt": extra output
    8: (Verdict.WA, "unexpected end of output"),
}
POINTS_EXIT = 7  # quitp(x): stderr says "points x ...", x the fraction of the test's points
_POINTS = re.compile(rb"^\s*points\s+([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)")


def judge_testlib(
    role: str, exit_code: int, signal_name: str | None, killed: str, stderr: bytes
) -> Judgement:
    """The judgement of a ``role`` (``checker`` or ``interactor``) program that ended as given
    (``killed``: the supervisor's reason, ``none`` when it ended by itself)."""
    said = stderr[:MESSAGE_BYTES].decode(errors="replace").strip()
    if killed != "none":
        return failed(f"{role} exceeded its {killed} limit: {said}".rstrip())
    if signal_name:
        return failed(f"{role} killed by {signal_name}: {said}".rstrip())
    if exit_code == POINTS_EXIT:
        match = _POINTS.match(stderr[:MESSAGE_BYTES])
        fraction = float(match.group(1)) if match else -1.0
        if not 0.0 <= fraction <= 1.0:
            return failed(f"{role} gave points outside [0, 1] (expected 'points X'): {said}")
        verdict = Verdict.AC if fraction == 1.0 else Verdict.WA
        return Judgement(verdict, fraction, said)
    known = TESTLIB.get(exit_code)
    if known is None:
        return failed(f"{role} exited with code {exit_code}: {said}".rstrip())
    verdict, what = known
    if verdict is Verdict.IE:
        return failed(f"{role} {what}: {said}" if said else f"{role} {what}")
    message = f"{what}: {said}" if what and said else what or said
    return Judgement(verdict, 1.0 if verdict is Verdict.AC else 0.0, message)
