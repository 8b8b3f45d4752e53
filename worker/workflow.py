"""A submission as a Celery canvas, and the join that turns per-test results into one verdict.

::

    runner.compile(meta, source) ──► chord( runner.test(compiled, meta, 0, test0),
                                            runner.test(compiled, meta, 1, test1), ... )
                                     ──► runner.join(results, meta)  =  SubmissionResult

The same canvas is built by the Python client (producer side) and by ``runner.submit`` (on a
worker, for backends that send one task by name), so both give the same result. The join is
exactly-once per test: each test's first stored result wins (``HSETNX``), a redelivered or
duplicated test returns that same result, and :func:`assemble` keys results by test index, so
no result is duplicated, dropped or reordered.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from typing import Any

from celery import chain, chord
from celery.canvas import Signature

from worker.admission import tenant_of
from worker.app import app
from worker.contract import (
    CompileResult,
    ErrorInfo,
    Submission,
    SubmissionResult,
    TestResult,
    Verdict,
)
from worker.fairqueue import TENANT_HEADER

PASSING = (Verdict.AC,)
SUBMIT_TASK = "runner.submit"
COMPILE_TASK = "runner.compile"
TEST_TASK = "runner.test"
JOIN_TASK = "runner.join"


def run_key(run: str, what: str) -> str:
    return f"runner:run:{run}:{what}"


def meta_of(
    submission: Submission, run_id: str | None = None, source: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What every task of a submission needs besides its own test. Every test task's message
    carries it, so it stays small: no per-test data (that would make messages grow with the
    square of the number of tests), and the source only as a reference to the stored bytes
    (``source``, from :func:`worker.storage.outline`), for a test that must compile again."""
    limits = submission.limits
    return {
        "run": run_id or uuid.uuid4().hex,
        "submission_id": submission.id,
        "tenant": submission.tenant,
        "source": source,
        "language": submission.language,
        "limits": {
            "cpu_time_ms": limits.cpu_time_ms,
            "wall_time_ms": limits.wall_time_ms,
            "memory_mb": limits.memory_mb,
            "output_kb": limits.output_kb,
            "processes": limits.processes,
        },
        "compare": {
            "mode": str(submission.comparison.mode),
            "abs_tol": submission.comparison.abs_tol,
            "rel_tol": submission.comparison.rel_tol,
        },
        "stop_on_first_failure": submission.stop_on_first_failure,
    }


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def canvas(
    submission: Submission,
    run_id: str | None = None,
    compiled: dict[str, Any] | None = None,
    tests: list[dict[str, Any]] | None = None,
    source: dict[str, Any] | None = None,
) -> Signature:
    """compile, then a chord of one task per test joined by ``runner.join``; with
    ``compiled`` (the same source compiled before) the chord alone. ``tests`` and ``source``
    are as :func:`worker.intake.Intake.accept` stored them (default: every byte inline).
    The compile and test tasks name the submission's tenant, which the broker queues them
    by (:mod:`worker.fairqueue`); the join is not held back by anyone's share."""
    fair = {"headers": {TENANT_HEADER: tenant_of(submission.tenant)}}
    meta = meta_of(submission, run_id, source)
    run = meta["run"]
    if tests is None:
        tests = [
            {"id": t.id, "stdin": b64(t.stdin), "expected": b64(t.expected_stdout)}
            for t in submission.tests
        ]
    # argsrepr is what Flower shows for a task; given here, Celery does not build it with its
    # saferepr walk over every argument (a third of a producer's CPU per submission)
    join = app.signature(
        JOIN_TASK,
        args=(meta, [t.id for t in submission.tests]),
        argsrepr=f"[run {run}, {len(tests)} tests]",
    )

    def test_task(index: int, test: dict[str, Any], *first: dict[str, Any]) -> Signature:
        return app.signature(
            TEST_TASK,
            args=(*first, meta, index, test),
            argsrepr=f"[run {run}, test {index} {test['id']!r}]",
            **fair,
        )

    if compiled is not None:
        return chord([test_task(i, test, compiled) for i, test in enumerate(tests)], join)
    compile_step = app.signature(
        COMPILE_TASK,
        args=(meta, b64(submission.source)),
        argsrepr=f"[run {run}, {submission.language}, {len(submission.source)} bytes]",
        **fair,
    )
    return chain(compile_step, chord([test_task(i, t) for i, t in enumerate(tests)], join))


def assemble(
    meta: dict[str, Any], ids: list[str], compiled: dict[str, Any] | None, parts: Iterable[Any]
) -> SubmissionResult:
    """The submission result from the per-test parts, whatever order or duplicates they have."""
    by_index: dict[int, TestResult] = {}
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("index"), int):
            by_index.setdefault(part["index"], TestResult.model_validate(part["result"]))
    compile_info = (compiled or {}).get("compile")
    failed_compile = (compiled or {}).get("verdict")
    if failed_compile in (Verdict.CE, Verdict.IE):
        tests = [
            TestResult(
                id=test_id,
                verdict=Verdict.SK,
                message=f"not run: {compiled and compiled.get('message')}",
            )
            for test_id in ids
        ]
        return _result(meta, Verdict(failed_compile), tests, compile_info, compiled)
    tests = []
    first_failure: int | None = None
    for index, test_id in enumerate(ids):
        result = by_index.get(index) or TestResult(
            id=test_id, verdict=Verdict.IE, message="result lost: the test task left no result"
        )
        if first_failure is not None and meta["stop_on_first_failure"]:
            result = TestResult(
                id=test_id,
                verdict=Verdict.SK,
                message=f"skipped after test {ids[first_failure]!r} failed",
            )
        elif result.verdict not in PASSING and first_failure is None:
            first_failure = index
        tests.append(result)
    verdict = Verdict.AC if first_failure is None else tests[first_failure].verdict
    return _result(meta, verdict, tests, compile_info, None)


def _result(
    meta: dict[str, Any],
    verdict: Verdict,
    tests: list[TestResult],
    compile_info: dict[str, Any] | None,
    compiled: dict[str, Any] | None,
) -> SubmissionResult:
    error = None
    if verdict == Verdict.IE:
        message = (compiled or {}).get("message") or next(
            (t.message for t in tests if t.verdict == Verdict.IE), "internal error"
        )
        error = ErrorInfo(code="internal_error", message=str(message))
    return SubmissionResult(
        submission_id=meta["submission_id"],
        verdict=verdict,
        passed=sum(t.verdict == Verdict.AC for t in tests),
        total=len(tests),
        compile=None if compile_info is None else CompileResult.model_validate(compile_info),
        tests=tests,
        max_cpu_time_ms=max((t.cpu_time_ms for t in tests), default=0),
        max_memory_kb=max((t.memory_kb for t in tests), default=0),
        error=error,
    )
