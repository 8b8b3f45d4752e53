"""The fleet's Celery tasks. ``runner.submit`` and ``runner.problem`` are the contract's public
tasks; the others are the steps of :func:`worker.producer.workflow.canvas`.

No task lets an exception escape for a submission's sake: bad input becomes ``RJ``, a sandbox
or Redis failure becomes an ``IE`` test result, so the chord always completes. Nothing is
judged in a language this worker cannot judge (its self-test failed, or it does not run it): the
compile step refuses the run (``RJ language_unavailable``), and a test that meets such a worker
anyway (a fleet whose workers differ) is ``IE``, the fleet's fault, never a verdict.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

import redis
import structlog
from celery import Task
from structlog.contextvars import bound_contextvars

from worker import kinds, metrics
from worker.app import app
from worker.contract import (
    TestCase,
    TestResult,
    Verdict,
    echoed_id,
    internal_error,
    parse_problem,
    parse_submission,
    rejected,
)
from worker.contract.wire import ErrorInfo, ProblemResult
from worker.data.problems import problem_id
from worker.data.storage import inline, program_files, test_specs
from worker.errors import BrokerError, NotSent, RunnerError, SubmissionRejected
from worker.keyspace import RUN_LOWER_HINTS, result_key, run_key, stored_result
from worker.languages import LANGUAGES
from worker.messages import (
    CompileOutcome,
    ProblemRecord,
    RunMeta,
    RunRef,
    TestOutcome,
    TestSpec,
    meta_digest,
)
from worker.pipeline import events, runtime
from worker.pipeline.compiling import compile_role, program_for
from worker.pipeline.scoring import assemble, marks, skip_reason
from worker.pipeline.taskview import ShownRequest, show
from worker.producer.admission import Ticket, tenant_of
from worker.producer.intake import files_of, remember_compile
from worker.producer.workflow import (
    COMPILE_TASK,
    JOIN_TASK,
    PROBLEM_TASK,
    SUBMIT_TASK,
    TEST_TASK,
)
from worker.verdicts import LANGUAGE_UNAVAILABLE

log = structlog.get_logger()


def _one_argument(task: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # by count, not by value: a lone null is a submission that is not an object
    if len(args) != 1 or kwargs:
        raise SubmissionRejected(
            "bad_call",
            f"{task} takes exactly one positional argument, the object, and no keyword arguments",
        )


# The canvas it sends ends in a join with this task's id: the join's result, stored under
# that id, is the submission's. This task's own return value is not stored (it would be a
# result before the final one); only a refusal, which is final, is stored by hand. It ends
# SUCCESS, so Flower counts it succeeded, not lost (a replaced task ends IGNORED).
@app.task(name=SUBMIT_TASK, bind=True, ignore_result=True, Request=ShownRequest)
def submit(self: Task, *args: Any, **kwargs: Any) -> Any:
    """The contract's entry point: one positional argument, the submission object."""
    # Only an id a result may echo is logged: any other JSON value may be megabytes long or
    # nested deeper than the log renderer can go.
    sid = echoed_id(args[0].get("id")) if len(args) == 1 and isinstance(args[0], dict) else None
    with bound_contextvars(submission_id=sid, task_id=self.request.id):
        try:
            _one_argument(SUBMIT_TASK, args, kwargs)
            rt = runtime.current()
            submission = parse_submission(args[0], rt.settings.maxima(), frozenset(LANGUAGES))
            # the canvas's join inherits this task's id, so its result is runner.submit's
            work = rt.intake.accept(submission, self.request.id)
        except SubmissionRejected as exc:
            log.info("submission.rejected", code=exc.code, reason=exc.message)
            return _final(self, rejected(sid, exc).model_dump(mode="json"))
        except BrokerError as exc:
            # Redis refused or is away: nothing of the run was kept, and the caller hears so
            log.error("submission.not_accepted", error=str(exc))
            message = f"the fleet could not accept it: {exc}"
            return _final(self, internal_error(sid, message).model_dump(mode="json"))
        except Exception:
            # A bug of ours, not the submission's fault, so IE; but still a result: a task
            # failure would leave a backend in another language with no answer it can use.
            log.exception("submission.check_failed")
            message = "internal error while checking the submission (see the worker's log)"
            return _final(self, internal_error(sid, message).model_dump(mode="json"))
        log.info("submission.accepted", tests=len(submission.tests), language=submission.language)
        try:
            rt.intake.send(submission, self.request.id, work)
        except NotSent as exc:
            log.error("submission.not_sent", error=str(exc))
            message = f"the fleet could not accept it: {exc}"
            return _final(self, internal_error(sid, message).model_dump(mode="json"))
        show(self.request.id, f"accepted: {len(submission.tests)} tests, run {self.request.id}")
        return {"accepted": True, "tests": len(submission.tests)}


def _final(task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """A result decided by ``runner.submit`` itself, stored as the submission's."""
    task.backend.store_result(task.request.id, result, "SUCCESS", request=task.request)
    error = result.get("error") or {}
    show(task.request.id, f"{result['verdict']} {error.get('code')}: {error.get('message')}")
    return result


@app.task(name=PROBLEM_TASK, bind=True, Request=ShownRequest)
def register_problem(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Register a problem (one positional argument, the problem object): its data stored and
    kept, its checker and interactor compiled; the result names its id, or why not."""
    with bound_contextvars(task_id=self.request.id):
        try:
            _one_argument(PROBLEM_TASK, args, kwargs)
            rt = runtime.current()
            name, judging = parse_problem(args[0], rt.settings.maxima(), frozenset(LANGUAGES))
            pid = problem_id(judging)
            packed: dict[str, bytes] = {}
            tests = test_specs(judging.tests, rt.settings.inline_data_kb * 1024, packed)
            stored = rt.intake.judging(judging, packed)
            sources = kinds.sources(judging)
            for role, program in kinds.programs(stored).items():
                why = rt.health.why_not(program.language)
                if why:
                    raise SubmissionRejected(LANGUAGE_UNAVAILABLE, f"{role}: {why}")
                built = compile_role(rt, role, program, files_of(sources[role]))
                if built.outcome.verdict is not None:
                    code = built.outcome.code or "internal_error"
                    raise SubmissionRejected(code, built.outcome.message)
            record = ProblemRecord(name=name, judging=stored, tests=tests)
            rt.intake.problems.put(pid, record, packed)
        except SubmissionRejected as exc:
            log.info("problem.rejected", code=exc.code, reason=exc.message)
            show(self.request.id, f"RJ {exc.code}: {exc.message}")
            error = ErrorInfo(code=exc.code, message=exc.message)
            return ProblemResult(problem=None, tests=0, error=error).model_dump(mode="json")
        except RunnerError as exc:
            log.error("problem.not_registered", error=str(exc))
            show(self.request.id, f"not registered: {exc}")
            error = ErrorInfo(code="internal_error", message=f"not registered: {exc}")
            return ProblemResult(problem=None, tests=0, error=error).model_dump(mode="json")
        log.info("problem.registered", problem=pid, tests=len(tests))
        show(self.request.id, f"registered {pid}: {len(tests)} tests")
        return ProblemResult(problem=pid, name=name, tests=len(tests)).model_dump(mode="json")


@app.task(name=COMPILE_TASK, bind=True, Request=ShownRequest)
def compile_run(self: Task, meta_message: dict[str, Any]) -> dict[str, Any]:
    """Compile every program of a run once (each taken from the cache when compiled before)."""
    rt = runtime.current()
    started = time.monotonic()
    meta = RunMeta.model_validate(meta_message)
    with bound_contextvars(submission_id=meta.submission_id, task_id=self.request.id, host=rt.host):
        keys: dict[str, str] = {}
        output = None
        try:
            unavailable = _unavailable(rt, meta)
            for role, program in [] if unavailable else kinds.run_programs(meta):
                built = compile_role(rt, role, program, program_files(program, rt.intake.data))
                if built.outcome.verdict is not None:
                    compiled = built.outcome
                    break
                keys[role] = built.key
                if role == "program":
                    output = built.outcome.compile
            else:
                compiled = unavailable or CompileOutcome(compile=output, **keys)
        except RunnerError as exc:
            compiled = CompileOutcome(verdict=Verdict.IE, message=str(exc))
        try:
            remember_compile(rt.redis, meta.run, compiled, rt.settings.result_expires_s)
        except Exception as exc:
            log.error("compile.store_failed", error=str(exc))
        cached = bool(compiled.compile and compiled.compile.cached)
        log.info(
            "compile.done",
            verdict=compiled.verdict,
            cached=cached,
            duration_ms=round(1000 * (time.monotonic() - started), 1),
        )
        if compiled.verdict is None:
            show(self.request.id, f"compiled{' (cached)' if cached else ''}, run {meta.run}")
        else:
            show(self.request.id, f"{compiled.verdict} {compiled.message[:200]}, run {meta.run}")
        return compiled.encode()


# No result of its own in the backend: the chord's join gets each test's return value from
# the chord's own set, and progress reads the run's hash. Storing it as well would cost a SET
# and a PUBLISH of the whole result per test for nobody.
@app.task(name=TEST_TASK, bind=True, ignore_result=True, Request=ShownRequest)
def run_test(
    self: Task,
    compiled_message: dict[str, Any],
    meta_message: dict[str, Any],
    index: int,
    test_message: dict[str, Any],
) -> dict[str, Any]:
    """Run one test; report what happened to it (the same report if run again)."""
    rt = runtime.current()
    started = time.monotonic()
    test = TestSpec.model_validate(test_message)
    try:
        meta = meta_of_message(rt, meta_message)
    except RunnerError as exc:  # the run's meta is gone (expired) or Redis is away: ours, IE
        log.error("test.no_meta", index=index, test_id=test.id, error=str(exc))
        result = TestResult(id=test.id, verdict=Verdict.IE, message=f"internal error: {exc}")
        show(self.request.id, outcome_line(index, result))
        return TestOutcome(index=index, result=result).encode()
    compiled = CompileOutcome.model_validate(compiled_message)
    if meta.sent_ms:
        metrics.QUEUE_SECONDS.observe(max(0.0, time.time() - meta.sent_ms / 1000))
    with bound_contextvars(
        submission_id=meta.submission_id, test_id=test.id, task_id=self.request.id, host=rt.host
    ):
        if compiled.verdict is not None:
            show(self.request.id, f"not run: the compile step failed ({compiled.verdict})")
            return TestOutcome(index=index, skipped="the compile step failed").encode()
        try:
            reason = _not_needed(rt, meta, index)
            if reason:
                log.info("test.not_run", index=index, reason=reason)
                show(self.request.id, f"not run: {reason}")
                return TestOutcome(index=index, skipped=reason).encode()
            unavailable = _unavailable(rt, meta)
            result = (
                TestResult(id=test.id, verdict=Verdict.IE, message=unavailable.message)
                if unavailable
                else _judge_test(rt, compiled, meta, test)
            )
            # First result wins, in one round trip: a redelivered or duplicated run of this
            # test returns what the first run stored, so the join sees one answer per test.
            results = run_key(meta.run, "tests")
            with rt.redis.pipeline() as pipe:
                pipe.hsetnx(results, str(index), result.model_dump_json())
                pipe.hget(results, str(index))
                pipe.expire(results, rt.settings.result_expires_s)
                first, stored, _ = pipe.execute()
            if not first:
                log.info("test.duplicate", index=index)
            result = TestResult.model_validate(json.loads(stored))
            _hint(rt, meta, index, result)
        except Exception as exc:
            log.exception("test.failed", index=index)
            result = TestResult(id=test.id, verdict=Verdict.IE, message=f"internal error: {exc}")
        took = time.monotonic() - started
        metrics.TEST_SECONDS.labels(meta.program.language).observe(took)
        log.info(
            "test.done",
            index=index,
            verdict=result.verdict,
            cpu_time_ms=result.cpu_time_ms,
            wall_time_ms=result.wall_time_ms,
            memory_kb=result.memory_kb,
            duration_ms=round(1000 * took, 1),
        )
        show(self.request.id, outcome_line(index, result))
        return TestOutcome(index=index, result=result).encode()


# The metas of the runs this worker process has met, newest last: a run's tests mostly meet the
# same worker, so each process reads a run's meta from Redis about once.
_METAS: OrderedDict[tuple[str, str], RunMeta] = OrderedDict()
_METAS_KEPT = 256
_metas_lock = threading.Lock()


def meta_of_message(rt: runtime.Runtime, message: dict[str, Any]) -> RunMeta:
    """The run's meta a task message carries: itself (a compile message, or a test message sent
    before runs stored it), or a :class:`~worker.messages.RunRef` to the one the producer
    stored (``run_key(run, "meta")``), read once per worker process. Raises
    :class:`~worker.errors.BrokerError` when it cannot be read or is gone."""
    if "judging" in message:
        return RunMeta.model_validate(message)
    ref = RunRef.model_validate(message)
    kept = (ref.run, ref.digest)
    with _metas_lock:
        meta = _METAS.get(kept)
        if meta is not None:
            _METAS.move_to_end(kept)
            return meta
    try:
        raw = rt.redis.get(run_key(ref.run, "meta"))
    except redis.RedisError as exc:
        raise BrokerError(f"cannot read run {ref.run}'s meta: {exc}") from exc
    if raw is None or meta_digest(raw) != ref.digest:
        raise BrokerError(f"run {ref.run}'s meta is gone (expired, or the run ended)")
    meta = RunMeta.model_validate_json(raw)
    with _metas_lock:
        _METAS[kept] = meta
        while len(_METAS) > _METAS_KEPT:
            _METAS.popitem(last=False)
    return meta


def _joined(rt: runtime.Runtime, task_id: str) -> dict[str, Any] | None:
    """The submission result a join of this id stored already, or None."""
    try:
        stored = rt.redis.get(result_key(task_id))
    except redis.RedisError:
        return None
    if stored is None:
        return None
    status, value = stored_result(stored)
    return value if status == "SUCCESS" and isinstance(value, dict) else None


def _unavailable(rt: runtime.Runtime, meta: RunMeta) -> CompileOutcome | None:
    """The refusal of a run one of whose languages this worker cannot judge, or None."""
    for role, program in kinds.run_programs(meta):
        why = rt.health.why_not(program.language)
        if why:
            where = "language" if role == "program" else f"{role}.language"
            message = f"{where}: {why} (worker {rt.host})"
            return CompileOutcome(verdict=Verdict.RJ, code=LANGUAGE_UNAVAILABLE, message=message)
    return None


def outcome_line(index: int, result: TestResult) -> str:
    """A test's outcome in a line, as Flower shows a runner.test task's result."""
    line = (
        f"{result.verdict} test {index} {result.id!r}: {result.cpu_time_ms} ms CPU, "
        f"{result.memory_kb} KB"
    )
    return f"{line}; {result.message[:200]}" if result.message else line


def _not_needed(rt: runtime.Runtime, meta: RunMeta, index: int) -> str:
    """Why a test need not run (the join will skip it whatever it did), or ``""``."""
    lowest = {k.decode(): int(v) for k, v in rt.redis.hgetall(run_key(meta.run, "failed")).items()}
    return skip_reason(meta, index, lowest)


def _hint(rt: runtime.Runtime, meta: RunMeta, index: int, result: TestResult) -> None:
    """Leave the marks the result makes (the lowest index per mark wins), for the run's later
    tests to read before they run."""
    left = marks(meta, index, result)
    if left:
        fields = [field for mark in left for field in (mark, index)]
        RUN_LOWER_HINTS(
            rt.redis, [run_key(meta.run, "failed")], [*fields, rt.settings.result_expires_s]
        )


def _judge_test(
    rt: runtime.Runtime, compiled: CompileOutcome, meta: RunMeta, test: TestSpec
) -> TestResult:
    program = program_for(rt, "program", compiled.program, meta.program)
    rule = meta.judging.checker
    checker = kinds.kind_of(rule).built(
        rule, lambda stored: program_for(rt, "checker", compiled.checker, stored)
    )
    interactor = meta.judging.interactor
    case = TestCase(
        test.id,
        inline(test.stdin, rt.intake.data) or b"",
        inline(test.expected_stdout, rt.intake.data),
        test.group,
    )
    return rt.judge.run_test(
        program,
        case,
        meta.judging.limits,
        checker,
        args=meta.args,
        interactor=None
        if interactor is None
        else program_for(rt, "interactor", compiled.interactor, interactor),
    )


@app.task(name=JOIN_TASK, bind=True, Request=ShownRequest)
def join_results(
    self: Task, parts: list[Any], meta_message: dict[str, Any], test_ids: list[str]
) -> dict[str, Any]:
    """The chord's callback: one submission result, in submission order."""
    rt = runtime.current()
    try:
        meta = meta_of_message(rt, meta_message)
    except BrokerError:
        # a join delivered again after it ended (its worker died before acknowledging it):
        # the run's meta went with it, and the result it stored stands
        done = _joined(rt, self.request.id)
        if done is None:
            raise
        log.warning("join.again", task_id=self.request.id)
        return done
    with bound_contextvars(submission_id=meta.submission_id, task_id=self.request.id, host=rt.host):
        raw = rt.redis.get(run_key(meta.run, "compile"))
        compiled = CompileOutcome.model_validate_json(raw) if raw else None
        result = assemble(meta, test_ids, compiled, parts)
        rt.redis.delete(*(run_key(meta.run, w) for w in ("compile", "tests", "failed", "meta")))
        rt.intake.give_back(Ticket(tenant_of(meta.tenant), meta.run))
        events.run_finished.emit(meta.run, result)  # the HTTP API's: a slot back, a webhook due
        metrics.SUBMISSIONS.labels(result.verdict).inc()
        for test in result.tests:
            metrics.TESTS.labels(meta.program.language, test.verdict).inc()
        log.info(
            "submission.done", verdict=result.verdict, passed=result.passed, total=result.total
        )
        score = (
            f", score {result.score:g}/{result.max_score:g}"
            if result.score is not None and result.max_score is not None
            else ""
        )
        named = f", submission {result.submission_id!r}" if result.submission_id else ""
        show(
            self.request.id,
            f"{result.verdict}: {result.passed}/{result.total} tests passed{score}{named}, "
            f"run {meta.run}",
        )
        return result.model_dump(mode="json")
