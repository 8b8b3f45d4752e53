"""The fleet's Celery tasks. ``runner.submit`` is the contract's one public task; the others
are the steps of :func:`worker.workflow.canvas`.

No task lets an exception escape for a submission's sake: bad input becomes ``RJ``, a sandbox
or Redis failure becomes an ``IE`` test result, so the chord always completes.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import structlog
from celery import Task
from structlog.contextvars import bound_contextvars

from worker import runtime
from worker.admission import Ticket, tenant_of
from worker.app import app
from worker.artifacts import Stored, artifact_key, compiled_message
from worker.compare import CompareMode, Comparison
from worker.contract import (
    Limits,
    TestCase,
    TestResult,
    Verdict,
    echoed_id,
    internal_error,
    parse_submission,
    rejected,
)
from worker.errors import BrokerError, RunnerError, SubmissionRejected
from worker.intake import remember_compile
from worker.judge import Program
from worker.languages import LANGUAGES
from worker.storage import inline
from worker.workflow import (
    COMPILE_TASK,
    JOIN_TASK,
    SUBMIT_TASK,
    TEST_TASK,
    assemble,
    run_key,
)

log = structlog.get_logger()

# Keeps the lowest failing test index: tests after it are skipped (stop_on_first_failure).
LOWER_FAILED = """
local current = redis.call('GET', KEYS[1])
if not current or tonumber(ARGV[1]) < tonumber(current) then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


@app.task(name=SUBMIT_TASK, bind=True)
def submit(self: Task, *args: Any, **kwargs: Any) -> Any:
    """The contract's entry point: one positional argument, the submission object."""
    # Only an id a result may echo is logged: any other JSON value may be megabytes long or
    # nested deeper than the log renderer can go.
    sid = echoed_id(args[0].get("id")) if len(args) == 1 and isinstance(args[0], dict) else None
    with bound_contextvars(submission_id=sid, task_id=self.request.id):
        try:
            # by count, not by value: a lone null is a submission that is not an object
            if len(args) != 1 or kwargs:
                raise SubmissionRejected(
                    "bad_call",
                    f"{SUBMIT_TASK} takes exactly one positional argument, the submission, "
                    "and no keyword arguments",
                )
            rt = runtime.current()
            submission = parse_submission(args[0], rt.settings.maxima(), frozenset(LANGUAGES))
            # the canvas's join inherits this task's id, so its result is runner.submit's
            work = rt.intake.accept(submission, self.request.id)
        except SubmissionRejected as exc:
            log.info("submission.rejected", code=exc.code, reason=exc.message)
            return rejected(sid, exc).model_dump(mode="json")
        except BrokerError as exc:
            # Redis refused or is away: nothing of the run was kept, and the caller hears so
            log.error("submission.not_accepted", error=str(exc))
            return internal_error(sid, f"the fleet could not accept it: {exc}").model_dump(
                mode="json"
            )
        except Exception:
            # A bug of ours, not the submission's fault, so IE; but still a result: a task
            # failure would leave a backend in another language with no answer it can use.
            log.exception("submission.check_failed")
            message = "internal error while checking the submission (see the worker's log)"
            return internal_error(sid, message).model_dump(mode="json")
        log.info("submission.accepted", tests=len(submission.tests), language=submission.language)
        return self.replace(work)


@app.task(name=COMPILE_TASK, bind=True)
def compile_submission(self: Task, meta: dict[str, Any], source_b64: str) -> dict[str, Any]:
    """Compile once per submission (or reuse an earlier compile of the same source)."""
    rt = runtime.current()
    started = time.monotonic()
    with bound_contextvars(
        submission_id=meta["submission_id"], task_id=self.request.id, host=rt.host
    ):
        language = LANGUAGES[meta["language"]]
        try:
            source = base64.b64decode(source_b64)
            key = artifact_key(language.name, rt.runner.identity(language.compile_image), source)
            stored = rt.store.get(key)
            cached = stored is not None
            if stored is None:
                stored = _compile(rt, language.name, source)
                if stored.outcome["verdict"] != Verdict.IE:
                    rt.store.put(key, stored)
            compiled = compiled_message(key, stored.outcome, cached)
        except RunnerError as exc:
            compiled = {"key": None, "verdict": Verdict.IE, "message": str(exc), "compile": None}
        try:
            remember_compile(rt.redis, meta["run"], compiled, rt.settings.result_expires_s)
        except Exception as exc:
            log.error("compile.store_failed", error=str(exc))
        log.info(
            "compile.done",
            verdict=compiled["verdict"],
            cached=bool(compiled.get("compile") and compiled["compile"].get("cached")),
            duration_ms=round(1000 * (time.monotonic() - started), 1),
        )
        return compiled


def _compile(rt: runtime.Runtime, language: str, source: bytes) -> Stored:
    compiled = rt.judge.compile(LANGUAGES[language], source)
    outcome: dict[str, Any] = {
        "verdict": compiled.verdict,
        "message": compiled.message,
        "compile": compiled.result.model_dump(mode="json") if compiled.result else None,
    }
    files = compiled.program.files if compiled.program else ()
    size = sum(len(f.data) for f in files)
    if size > rt.store.max_bytes:
        limit_kb = rt.store.max_bytes // 1024
        outcome |= {
            "verdict": Verdict.CE,
            "message": f"compiled program is {size // 1024} KB, over the {limit_kb} KB limit",
        }
        files = ()
    return Stored(files, outcome)


# No result of its own in the backend: the chord's join gets each test's return value from
# the chord's own set, and progress reads the run's hash. Storing it as well would cost a SET
# and a PUBLISH of the whole result per test for nobody.
@app.task(name=TEST_TASK, bind=True, ignore_result=True)
def run_test(
    self: Task, compiled: dict[str, Any], meta: dict[str, Any], index: int, test: dict[str, Any]
) -> dict[str, Any]:
    """Run one test. Always returns ``{"index", "result"}``; the same one if run again."""
    rt = runtime.current()
    started = time.monotonic()
    with bound_contextvars(
        submission_id=meta["submission_id"],
        test_id=test["id"],
        task_id=self.request.id,
        host=rt.host,
    ):
        results = run_key(meta["run"], "tests")
        try:
            result = _judge_test(rt, compiled, meta, index, test)
            # First result wins, in one round trip: a redelivered or duplicated run of this
            # test returns what the first run stored, so the join sees one answer per test.
            with rt.redis.pipeline() as pipe:
                pipe.hsetnx(results, str(index), result.model_dump_json())
                pipe.hget(results, str(index))
                pipe.expire(results, rt.settings.result_expires_s)
                first, stored, _ = pipe.execute()
            if not first:
                log.info("test.duplicate", index=index)
            payload = json.loads(stored)
            if meta["stop_on_first_failure"] and result.verdict not in (Verdict.AC, Verdict.SK):
                rt.redis.eval(
                    LOWER_FAILED,
                    1,
                    run_key(meta["run"], "failed"),
                    index,
                    rt.settings.result_expires_s,
                )
        except Exception as exc:
            log.exception("test.failed", index=index)
            payload = TestResult(
                id=test["id"], verdict=Verdict.IE, message=f"internal error: {exc}"
            ).model_dump(mode="json")
        log.info(
            "test.done",
            index=index,
            verdict=payload["verdict"],
            cpu_time_ms=payload["cpu_time_ms"],
            wall_time_ms=payload["wall_time_ms"],
            memory_kb=payload["memory_kb"],
            duration_ms=round(1000 * (time.monotonic() - started), 1),
        )
        return {"index": index, "result": payload}


def _judge_test(
    rt: runtime.Runtime,
    compiled: dict[str, Any],
    meta: dict[str, Any],
    index: int,
    test: dict[str, Any],
) -> TestResult:
    if compiled.get("verdict"):
        return TestResult(
            id=test["id"], verdict=Verdict.SK, message="not run: the compile step failed"
        )
    if meta["stop_on_first_failure"]:
        failed = rt.redis.get(run_key(meta["run"], "failed"))
        if failed is not None and int(failed) < index:
            return TestResult(
                id=test["id"], verdict=Verdict.SK, message="skipped after an earlier failure"
            )
    stored = rt.store.get(compiled["key"]) or _compile_again(rt, compiled["key"], meta)
    if stored.outcome.get("verdict") is not None:
        return TestResult(
            id=test["id"],
            verdict=Verdict.IE,
            message="evicted from the cache, the program failed to compile again: "
            + str(stored.outcome.get("message")),
        )
    program = Program(LANGUAGES[meta["language"]], stored.files)
    case = TestCase(
        test["id"],
        inline(test.get("stdin"), rt.intake.data) or b"",
        inline(test.get("expected"), rt.intake.data),
    )
    how = meta["compare"]
    comparison = Comparison(CompareMode(how["mode"]), how["abs_tol"], how["rel_tol"])
    return rt.judge.run_test(program, case, Limits(**meta["limits"]), comparison)


def _compile_again(rt: runtime.Runtime, key: str, meta: dict[str, Any]) -> Stored:
    """The program of a run whose cache entry was evicted: compiled again from the run's
    stored source, and stored again, so the cache costs time, never a verdict."""
    if meta.get("source") is None:
        raise BrokerError("compiled program expired or lost, and the run kept no source")
    source = inline(meta["source"], rt.intake.data)
    assert source is not None
    log.info("compile.again", key=key[:12])
    stored = _compile(rt, meta["language"], source)
    if stored.outcome["verdict"] is None:
        rt.store.put(key, stored)
    return stored


@app.task(name=JOIN_TASK, bind=True)
def join_results(
    self: Task, parts: list[Any], meta: dict[str, Any], test_ids: list[str]
) -> dict[str, Any]:
    """The chord's callback: one submission result, in submission order."""
    rt = runtime.current()
    with bound_contextvars(
        submission_id=meta["submission_id"], task_id=self.request.id, host=rt.host
    ):
        raw = rt.redis.get(run_key(meta["run"], "compile"))
        compiled = json.loads(raw) if raw else None
        result = assemble(meta, test_ids, compiled, parts)
        rt.redis.delete(*(run_key(meta["run"], w) for w in ("compile", "tests", "failed")))
        rt.intake.give_back(Ticket(tenant_of(meta.get("tenant")), meta["run"]))
        log.info(
            "submission.done", verdict=result.verdict, passed=result.passed, total=result.total
        )
        return result.model_dump(mode="json")
