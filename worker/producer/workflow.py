"""A submission as a Celery canvas.

::

    runner.compile(meta) ──► chord( runner.test(compiled, ref, 0, test0),
                                    runner.test(compiled, ref, 1, test1), ... )
                             ──► runner.join(outcomes, ref, ids)  =  SubmissionResult

``ref`` is the run's meta by reference (:class:`~worker.messages.RunRef`): the producer stores
the meta once (:func:`store_meta`), so a test's message carries its own test and not the run's
meta twice (once as its argument, once in the join's signature that rides in every test's
chord option).

The same canvas is built by the Python client (producer side) and by ``runner.submit`` (on a
worker, for backends that send one task by name), so both give the same result. The join is
exactly-once per test: each test's first stored result wins (``HSETNX``), a redelivered or
duplicated test returns that same result, and the join (:func:`worker.pipeline.scoring.assemble`)
keys reports by test index, so no result is duplicated, dropped or reordered. Messages between the
steps are the typed models of :mod:`worker.messages`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from celery import chain, chord
from celery.canvas import Signature

from worker.app import app
from worker.contract import Judging, ProgramSpec, Submission
from worker.errors import BrokerError
from worker.keyspace import run_key
from worker.kinds import kind_of
from worker.messages import (
    CompileOutcome,
    DataRef,
    JudgingMsg,
    RunMeta,
    RunRef,
    StoredProgram,
    TestSpec,
    meta_json,
)
from worker.producer.admission import tenant_of
from worker.queue.fairqueue import TENANT_HEADER

SUBMIT_TASK = "runner.submit"
PROBLEM_TASK = "runner.problem"
COMPILE_TASK = "runner.compile"
TEST_TASK = "runner.test"
JOIN_TASK = "runner.join"


def judging_of(judging: Judging, store: Callable[[ProgramSpec, bool], StoredProgram]) -> JudgingMsg:
    """How a run's tests are judged, as its messages carry it: a program checker and the
    interactor by their files, as ``store(program, static)`` keeps them (``static``: built to
    run in any image, as an interactor runs beside the program)."""
    checker = judging.checker
    return JudgingMsg(
        limits=judging.limits,
        checker=kind_of(checker).sent(checker, lambda program: store(program, False)),
        interactor=None if judging.interactor is None else store(judging.interactor, True),
        groups=list(judging.groups),
    )


def meta_of(
    submission: Submission, run_id: str | None, program: StoredProgram, judging: JudgingMsg
) -> RunMeta:
    """What every task of a submission needs besides its own test. Every test task's message
    carries it, so it stays small: no per-test data (that would make messages grow with the
    square of the number of tests), and programs only as references to their stored files
    (for a test that must compile one again)."""
    return RunMeta(
        run=run_id or uuid.uuid4().hex,
        submission_id=submission.id,
        tenant=submission.tenant,
        program=program,
        args=list(submission.program.args),
        stop_on_first_failure=submission.stop_on_first_failure,
        judging=judging,
        sent_ms=int(time.time() * 1000),
    )


def store_meta(client: Any, meta: RunMeta, ttl_s: int) -> None:
    """The run's meta, stored once for its test and join tasks (they carry a
    :class:`~worker.messages.RunRef`), kept as long as its results."""
    try:
        client.set(run_key(meta.run, "meta"), meta_json(meta)[0], ex=ttl_s)
    except redis.RedisError as exc:
        raise BrokerError(f"cannot store run {meta.run}'s meta: {exc}") from exc


def canvas(
    meta: RunMeta, tests: list[TestSpec], compiled: CompileOutcome | None = None
) -> Signature:
    """compile, then a chord of one task per test joined by ``runner.join``; with ``compiled``
    (every program compiled before) the chord alone. The compile and test tasks name the
    submission's tenant, which the broker queues them by (:mod:`worker.queue.fairqueue`); the join
    is not held back by anyone's share."""
    fair = {"headers": {TENANT_HEADER: tenant_of(meta.tenant)}}
    run = meta.run
    encoded = meta.encode()
    ref = RunRef(run=run, digest=meta_json(meta)[1]).encode()
    # argsrepr is what Flower shows for a task; given here, Celery does not build it with its
    # saferepr walk over every argument (a third of a producer's CPU per submission)
    join = app.signature(
        JOIN_TASK,
        args=(ref, [t.id for t in tests]),
        argsrepr=f"[run {run}, {len(tests)} tests]",
    )

    def test_task(index: int, test: TestSpec, *first: object) -> Signature:
        return app.signature(
            TEST_TASK,
            args=(*first, ref, index, test.encode()),
            argsrepr=f"[run {run}, test {index} {test.id!r}]",
            **fair,
        )

    if compiled is not None:
        header = [test_task(i, t, compiled.encode()) for i, t in enumerate(tests)]
        return chord(header, join)
    size = sum(blob.size for _, blob in meta.program.files if isinstance(blob, DataRef))
    compile_step = app.signature(
        COMPILE_TASK,
        args=(encoded,),
        argsrepr=f"[run {run}, {meta.program.language}, {size} bytes]",
        **fair,
    )
    return chain(compile_step, chord([test_task(i, t) for i, t in enumerate(tests)], join))
