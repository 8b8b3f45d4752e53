"""The join's decisions, and only the join's: which tests are ``SK``, each group's score, the
submission's verdict and score. Test tasks report what happened to each test
(:class:`~worker.messages.TestOutcome`); this turns those reports, whatever their order or
duplicates, into one :class:`~worker.contract.SubmissionResult`, the same for the same reports.

- A test that did not pass ends what depends on it: with ``stop_on_first_failure`` every later
  test is ``SK``; in a group, every later test of the group (``all``: any test not ``AC``;
  ``min``: a test that scored nothing); a group whose dependencies did not all get their full
  points has every test ``SK`` (worker tasks may not even run them: the join decides anyway).
- A group's score: ``all``, its points when every test is ``AC``, else 0; ``min``, its points
  times the least of its tests' fractions (``AC`` 1, a checker's partial points, else 0).
- The verdict keeps contract 1's meaning: ``AC`` when every test is, else the verdict of the
  first test that is neither ``AC`` nor ``SK``; but a submission cancelled before all its tests
  ran is ``SK`` (error ``cancelled``): the tests it skipped are ``SK`` with that reason, those
  that ran keep their verdicts, and none of them stands for the whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.contract import (
    ErrorInfo,
    Group,
    GroupResult,
    SubmissionResult,
    TestResult,
    Verdict,
)
from worker.messages import CompileOutcome, RunMeta, TestOutcome
from worker.verdicts import CANCELLED_CODE, INTERNAL_ERROR

# What a test task reports for a test it did not run because the submission was cancelled
CANCELLED = "cancelled"


def fraction(result: TestResult) -> float:
    """What a test scored, 0 to 1."""
    if result.verdict is Verdict.AC:
        return 1.0
    return result.score or 0.0


def fails(result: TestResult, policy: str) -> bool:
    """Whether a test ends its group's chances (and, with stop_on_first_failure, the run)."""
    return fraction(result) == 0.0 if policy == "min" else result.verdict is not Verdict.AC


# What a test's result ends for the tests after it, as marks; the join applies them below, and
# workers leave them in Redis (the lowest index per mark) so that a test the join will skip is
# not run at all. One rule for both, so a worker never skips a test the join would count.
STOP = "*"  # with stop_on_first_failure: every later test


def _ended(group: str) -> str:
    """The mark of a group a test ended: its later tests are SK. Prefixed, as the other group
    mark is, so that no group's name (``cancelled``, say) reads as a mark of the run's."""
    return f"={group}"


def _short(group: str) -> str:
    """The mark of a group that will not get all its points: its dependents are SK."""
    return f"~{group}"


def marks(meta: RunMeta, index: int, result: TestResult) -> list[str]:
    """The marks test ``index``'s result leaves: :data:`STOP`, its group's ended mark (every
    later test of the group is SK) and its short mark (it will not get all its points)."""
    found = []
    if meta.stop_on_first_failure and result.verdict is not Verdict.AC:
        found.append(STOP)
    group = meta.group_of(index)
    if group is not None:
        if fails(result, group.policy):
            found.append(_ended(group.name))
        if _loses_points(result, group):
            found.append(_short(group.name))
    return found


def _loses_points(result: TestResult, group: Group) -> bool:
    """Whether this test keeps its group under its points (:func:`_groups`' rule, test by
    test): a group worth nothing loses nothing, whatever its tests did."""
    if group.points <= 0:
        return False
    return fraction(result) < 1.0 if group.policy == "min" else result.verdict is not Verdict.AC


def skip_reason(meta: RunMeta, index: int, lowest: dict[str, int]) -> str:
    """Why the join will skip test ``index`` whatever it does, given the lowest index each mark
    was left by (and :data:`CANCELLED` when the submitter cancelled), or ``""``."""
    if CANCELLED in lowest:
        return CANCELLED
    if lowest.get(STOP, index) < index:
        return "an earlier test failed"
    group = meta.group_of(index)
    if group is None:
        return ""
    if lowest.get(_ended(group.name), index) < index:
        return f"an earlier test of group {group.name!r} failed"
    if meta.stop_on_first_failure:
        # the join makes a group SK for its dependencies only after every test's result has
        # had its say in stopping the run, so each of them must run
        return ""
    groups = {g.name: g for g in meta.judging.groups}

    def short(name: str) -> bool:
        # :func:`_groups`' rule: a group gets less than its points when one of its tests lost
        # some, or when it is SK for a dependency that did; one worth nothing never does
        skipped = any(short(dep) for dep in groups[name].depends_on)
        return groups[name].points > 0 and (_short(name) in lowest or skipped)

    failed = next((dep for dep in group.depends_on if short(dep)), None)
    return f"group {failed!r}, which its group depends on, did not pass" if failed else ""


def assemble(
    meta: RunMeta, ids: list[str], compiled: CompileOutcome | None, parts: Iterable[object]
) -> SubmissionResult:
    """The submission result from the compile outcome and the per-test reports."""
    if compiled is not None and compiled.verdict is not None:
        return _unrun(meta, ids, compiled)
    reported: dict[int, TestOutcome] = {}
    for part in parts:
        outcome = _outcome(part)
        if outcome is not None:
            reported.setdefault(outcome.index, outcome)
    groups = {group.name: group for group in meta.judging.groups}
    group_of = {index: group for group in meta.judging.groups for index in group.tests}
    results: list[TestResult] = []
    lowest: dict[str, int] = {}  # mark -> the first test that left it
    for index, test_id in enumerate(ids):
        group = group_of.get(index)
        result = _result(reported.get(index), test_id)
        if STOP in lowest:
            result = _skipped(test_id, f"skipped after test {ids[lowest[STOP]]!r} failed")
        elif group is not None and _ended(group.name) in lowest:
            failed = ids[lowest[_ended(group.name)]]
            result = _skipped(test_id, f"skipped after test {failed!r} of its group failed")
        if group is not None:
            result = result.model_copy(update={"group": group.name})
        results.append(result)
        if result.verdict is not Verdict.SK:
            for mark in marks(meta, index, result):
                lowest.setdefault(mark, index)
    group_results = (
        _groups(meta.judging.groups, groups, results, ids) if meta.judging.groups else []
    )
    # tests of groups that did not get to count are SK whatever they did
    for entry in group_results:
        if entry.verdict is Verdict.SK:
            for index in groups[entry.name].tests:
                results[index] = _skipped(
                    ids[index], "skipped: a group it depends on did not pass"
                ).model_copy(update={"group": entry.name})
    cancelled = sum(
        1
        for index, outcome in reported.items()
        if outcome.skipped == CANCELLED
        and index < len(results)
        and results[index].verdict is Verdict.SK
    )
    return _result_of(meta, results, group_results, compiled, cancelled)


def _groups(
    order: list[Group],
    groups: dict[str, Group],
    results: list[TestResult],
    ids: list[str],
) -> list[GroupResult]:
    scored: dict[str, GroupResult] = {}

    def score(group: Group) -> GroupResult:
        if group.name in scored:
            return scored[group.name]
        deps = [score(groups[dep]) for dep in group.depends_on]
        tests = [results[i] for i in group.tests]
        if any(dep.score < dep.max_score for dep in deps):
            verdict, points = Verdict.SK, 0.0
        else:
            if group.policy == "min":
                points = group.points * min(fraction(t) for t in tests)
            else:
                points = group.points if all(t.verdict is Verdict.AC for t in tests) else 0.0
            failed = next((t.verdict for t in tests if t.verdict not in _NEUTRAL), Verdict.AC)
            verdict = Verdict.AC if points == group.points else failed
        scored[group.name] = GroupResult(
            name=group.name,
            verdict=verdict,
            score=points,
            max_score=group.points,
            tests=[ids[i] for i in group.tests],
        )
        return scored[group.name]

    return [score(group) for group in order]


_NEUTRAL = (Verdict.AC, Verdict.SK)


def _result_of(
    meta: RunMeta,
    tests: list[TestResult],
    groups: list[GroupResult],
    compiled: CompileOutcome | None,
    cancelled: int = 0,
) -> SubmissionResult:
    failed = next((t for t in tests if t.verdict not in _NEUTRAL), None)
    verdict = Verdict.AC if failed is None else failed.verdict
    error = None
    if cancelled:
        # not judged whole: no verdict of the tests that did run stands for the submission
        verdict = Verdict.SK
        error = ErrorInfo(
            code=CANCELLED_CODE,
            message=f"cancelled by its submitter: {cancelled} of {len(tests)} tests not run",
        )
    elif verdict is Verdict.IE:
        assert failed is not None
        # whose fault it is: the problem's checker or interactor, or the fleet
        code = failed.error_code or INTERNAL_ERROR
        error = ErrorInfo(code=code, message=failed.message or "internal error")
    return SubmissionResult(
        submission_id=meta.submission_id,
        verdict=verdict,
        passed=sum(t.verdict is Verdict.AC for t in tests),
        total=len(tests),
        compile=compiled.compile if compiled is not None else None,
        tests=tests,
        max_cpu_time_ms=max((t.cpu_time_ms for t in tests), default=0),
        max_memory_kb=max((t.memory_kb for t in tests), default=0),
        error=error,
        score=sum(g.score for g in groups) if groups else None,
        max_score=sum(g.max_score for g in groups) if groups else None,
        groups=groups or None,
    )


def _unrun(meta: RunMeta, ids: list[str], compiled: CompileOutcome) -> SubmissionResult:
    """No test ran: the program did not compile (``CE``), ours failed (``IE``), or the
    problem's checker or interactor did not compile (``RJ``, with nothing run)."""
    if compiled.verdict is Verdict.RJ:
        return SubmissionResult(
            submission_id=meta.submission_id,
            verdict=Verdict.RJ,
            passed=0,
            total=0,
            tests=[],
            error=ErrorInfo(code=compiled.code, message=compiled.message),
        )
    tests = [_skipped(test_id, f"not run: {compiled.message}") for test_id in ids]
    error = None
    if compiled.verdict is Verdict.IE:
        error = ErrorInfo(code=INTERNAL_ERROR, message=compiled.message or "internal error")
    groups = [
        GroupResult(
            name=g.name,
            verdict=Verdict.SK,
            score=0.0,
            max_score=g.points,
            tests=[ids[i] for i in g.tests],
        )
        for g in meta.judging.groups
    ]
    return SubmissionResult(
        submission_id=meta.submission_id,
        verdict=compiled.verdict or Verdict.IE,
        passed=0,
        total=len(ids),
        compile=compiled.compile,
        tests=tests,
        error=error,
        score=0.0 if groups else None,
        max_score=sum(g.max_score for g in groups) if groups else None,
        groups=groups or None,
    )


def _outcome(part: object) -> TestOutcome | None:
    try:
        return TestOutcome.model_validate(part)
    except ValueError:
        return None  # not a test's report (nothing else reaches the join, but never crash)


def _result(outcome: TestOutcome | None, test_id: str) -> TestResult:
    if outcome is None:
        return TestResult(
            id=test_id, verdict=Verdict.IE, message="result lost: the test task left no result"
        )
    if outcome.result is not None:
        return outcome.result
    if outcome.skipped == CANCELLED:
        return _skipped(test_id, CANCELLED_MESSAGE)
    # not run because an earlier test failed: the rules above make it SK; reaching here means
    # they did not, which only a lost result could cause
    return TestResult(id=test_id, verdict=Verdict.IE, message=f"not run: {outcome.skipped}")


CANCELLED_MESSAGE = "not run: the submission was cancelled before this test started"


def _skipped(test_id: str, message: str) -> TestResult:
    return TestResult(id=test_id, verdict=Verdict.SK, message=message)
