"""The verdicts: one registry entry each, from which the contract's enum, its JSON Schema and
docs/contract.md's table derive; and the codes an ``IE`` carries, which say whose fault it is."""

from __future__ import annotations

import enum


class Verdict(enum.StrEnum):
    AC = "AC"
    WA = "WA"
    TLE = "TLE"
    MLE = "MLE"
    OLE = "OLE"
    RE = "RE"
    CE = "CE"
    IE = "IE"
    SK = "SK"
    RJ = "RJ"


MEANINGS: dict[Verdict, str] = {
    Verdict.AC: "accepted",
    Verdict.WA: "wrong answer (a checker's presentation error and partial points too, with "
    "the test's score)",
    Verdict.TLE: "CPU or wall time limit exceeded",
    Verdict.MLE: "memory limit exceeded (peak over the limit, or killed by the memory cgroup)",
    Verdict.OLE: "output limit exceeded",
    Verdict.RE: "runtime error: non-zero exit or killed by a signal",
    Verdict.CE: "compile error (also Python and JavaScript syntax errors)",
    Verdict.IE: "internal error of the judge (error code internal_error), or of the problem's "
    "checker or interactor (checker_failed): not the submission's fault",
    Verdict.SK: "skipped: after an earlier failure (stop_on_first_failure, its group's), or "
    "its group depends on one not passed, or the submission was cancelled before it ran (a "
    "cancelled submission's verdict, error code cancelled)",
    Verdict.RJ: "rejected: the submission breaks the contract",
}

PASSING = frozenset({Verdict.AC})


# An IE is never the submission's fault; its error code says whose it is, so that a backend can
# tell a problem to fix from a fleet to call its operator about.
INTERNAL_ERROR = "internal_error"
CANCELLED_CODE = "cancelled"  # the error of a submission cancelled before all its tests ran
# The RJ code of a submission in a language no worker can judge now (worker.data.availability): the
# fleet's state, not the submission's fault, so it is worth sending again later
LANGUAGE_UNAVAILABLE = "language_unavailable"
CHECKER_FAILED = "checker_failed"
IE_CODES: dict[str, str] = {
    INTERNAL_ERROR: "the fleet failed (a sandbox, Redis, a bug of ours): send it again later",
    CHECKER_FAILED: "the problem's own checker or interactor failed (a crash, its own limits, "
    "testlib's FAIL or an unknown exit code, an interactor that hung): fix the problem",
}
