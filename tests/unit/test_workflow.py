"""The canvas and the join, and the tasks' exactly-once and never-raise rules, without Docker
or a broker: tasks run eagerly against a fake pool and fakeredis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from tests.unit.fleet import parsed, run_all, start_runtime, sub
from worker.contract import CompileResult, ProgramSpec, TestResult, Verdict
from worker.data.storage import stored_program
from worker.errors import BrokerError, SandboxError
from worker.keyspace import result_key, run_key
from worker.messages import (
    CompileOutcome,
    RunMeta,
    StoredProgram,
    TestOutcome,
    TestSpec,
    meta_json,
)
from worker.pipeline import runtime, tasks
from worker.pipeline.scoring import CANCELLED, assemble
from worker.pipeline.tasks import join_results, meta_of_message, run_test, submit
from worker.producer.workflow import (
    COMPILE_TASK,
    JOIN_TASK,
    TEST_TASK,
    canvas,
    judging_of,
    meta_of,
    store_meta,
)
from worker.sandbox.fake import report
from worker.sandbox.protocol import Job, RunReport

IDS = ["t0", "t1", "t2"]


def meta_for(raw: dict[str, Any], run: str = "r1") -> RunMeta:
    """The meta a producer would build for ``raw`` (its programs as if stored)."""
    submission = parsed(raw)
    packed: dict[str, bytes] = {}

    def store(program: ProgramSpec, static: bool) -> StoredProgram:
        return stored_program(program, packed, static)

    return meta_of(
        submission, run, store(submission.program, False), judging_of(submission.judging, store)
    )


def specs(n: int = 3) -> list[TestSpec]:
    return [TestSpec(id=f"t{i}", stdin=None, expected_stdout=None) for i in range(n)]


def part(index: int, verdict: Verdict, test_id: str | None = None, **fields: Any) -> dict[str, Any]:
    result = TestResult(id=test_id or f"t{index}", verdict=verdict, cpu_time_ms=index, **fields)
    return TestOutcome(index=index, result=result).encode()


def test_canvas_is_compile_then_chord_of_one_task_per_test_then_join() -> None:
    sig = canvas(meta_for(sub(3)), specs(3))
    compile_step, chord_step = sig.tasks
    assert compile_step.task == COMPILE_TASK
    assert [t.task for t in chord_step.tasks] == [TEST_TASK] * 3
    assert chord_step.body.task == JOIN_TASK
    assert chord_step.body.args[1] == IDS


def test_every_task_carries_a_short_readable_argsrepr_for_flower() -> None:
    """Given, not computed: Celery's saferepr over every argument was a third of a producer's
    CPU; and Flower shows which test of which run a task is."""
    compile_step, chord_step = canvas(meta_for(sub(3)), specs(3)).tasks
    assert [t.options["argsrepr"] for t in chord_step.tasks] == [
        f"[run r1, test {i} 't{i}']" for i in range(3)
    ]
    assert chord_step.body.options["argsrepr"] == "[run r1, 3 tests]"
    assert compile_step.options["argsrepr"] == "[run r1, python, 14 bytes]"


def test_test_messages_do_not_grow_with_the_number_of_tests() -> None:
    small = canvas(meta_for(sub(2)), specs(2)).tasks[1].tasks[0]
    large = canvas(meta_for(sub(150)), specs(150)).tasks[1].tasks[0]
    assert len(json.dumps(large.args)) == len(json.dumps(small.args))


def test_a_test_message_carries_the_runs_meta_by_reference_not_twice() -> None:
    """The meta is stored once (intake.accept); a test's arguments and the join's signature,
    which rides in every test's chord option, name it by run and digest."""
    meta = meta_for(sub(3))
    compile_step, chord_step = canvas(meta, specs(3)).tasks
    assert compile_step.args[0] == meta.encode()  # the compile step: once per run, whole
    ref = {"run": "r1", "digest": meta_json(meta)[1]}
    assert chord_step.body.args[0] == ref
    for index, task in enumerate(chord_step.tasks):
        assert task.args[0] == ref and task.args[1] == index
        assert "judging" not in json.dumps([task.args, chord_step.body.args])


def test_a_worker_reads_a_runs_meta_once_and_never_another_runs_under_the_same_id(
    fake_runtime: runtime.Runtime,
) -> None:
    first = meta_for(sub(1))
    second = first.model_copy(update={"args": ["another"]})
    store_meta(fake_runtime.redis, first, 60)
    ref = {"run": first.run, "digest": meta_json(first)[1]}
    assert meta_of_message(fake_runtime, ref) == first
    fake_runtime.redis.delete(run_key(first.run, "meta"))
    assert meta_of_message(fake_runtime, ref) == first  # kept by this process
    store_meta(fake_runtime.redis, second, 60)  # the same run id, another meta
    assert (
        meta_of_message(fake_runtime, {"run": second.run, "digest": meta_json(second)[1]}) == second
    )
    with pytest.raises(BrokerError):  # gone and never kept
        meta_of_message(fake_runtime, {"run": "gone", "digest": "0" * 16})


def test_a_join_delivered_again_after_it_ended_returns_the_result_it_stored(
    fake_runtime: runtime.Runtime,
) -> None:
    """Its worker died after the join stored the run's result, before acknowledging it: the
    join runs again, with the run's meta gone, and must neither fail nor overwrite it."""
    meta = meta_for(sub(1), run="again")
    ref = {"run": meta.run, "digest": meta_json(meta)[1]}
    parts = [part(0, Verdict.AC)]
    store_meta(fake_runtime.redis, meta, 60)
    first = join_results.apply(args=(parts, ref, ["t0"]), task_id=meta.run).get()
    assert first["verdict"] == "AC"
    assert fake_runtime.redis.get(run_key(meta.run, "meta")) is None  # gone with the run
    fake_runtime.redis.set(result_key(meta.run), json.dumps({"status": "SUCCESS", "result": first}))
    tasks._METAS.clear()  # delivered again to another worker: it never read that meta
    with capture_logs() as logs:
        again = join_results.apply(args=(parts, ref, ["t0"]), task_id=meta.run).get()
    assert again == first
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["join.again"]


def test_a_join_whose_run_meta_is_gone_and_never_ended_fails(
    fake_runtime: runtime.Runtime,
) -> None:
    ref = {"run": "lost", "digest": "0" * 16}
    with pytest.raises(BrokerError, match="meta is gone"):
        join_results.apply(args=([part(0, Verdict.AC)], ref, ["t0"]), task_id="lost").get()


def test_assemble_orders_by_index_and_keeps_the_first_of_duplicates() -> None:
    parts = [part(2, Verdict.AC), part(0, Verdict.AC), part(2, Verdict.WA), part(1, Verdict.AC)]
    result = assemble(meta_for(sub(3)), IDS, CompileOutcome(), parts)
    assert [t.id for t in result.tests] == IDS
    assert result.verdict == Verdict.AC
    assert (result.passed, result.total) == (3, 3)


def test_assemble_reports_a_lost_test_as_ie_instead_of_hanging_or_dropping_it() -> None:
    result = assemble(meta_for(sub(3)), IDS, None, [part(0, Verdict.AC), part(2, Verdict.AC)])
    assert [t.verdict for t in result.tests] == [Verdict.AC, Verdict.IE, Verdict.AC]
    assert result.verdict == Verdict.IE
    assert result.error is not None and "lost" in result.error.message
    assert result.error.code == "internal_error"  # the fleet's fault, not the problem's


def test_overall_verdict_is_the_first_failure_in_submission_order() -> None:
    parts = [part(0, Verdict.AC), part(1, Verdict.TLE), part(2, Verdict.WA)]
    result = assemble(meta_for(sub(3)), IDS, None, parts)
    assert result.verdict == Verdict.TLE
    assert result.max_cpu_time_ms == 2


def test_stop_on_first_failure_marks_later_tests_skipped_whatever_they_did() -> None:
    """The join decides: a later test that ran (and passed) is SK all the same, and one a
    worker did not run (its report says why) is too."""
    meta = meta_for(sub(3, stop_on_first_failure=True))
    not_run = TestOutcome(index=2, skipped="an earlier test failed").encode()
    result = assemble(meta, IDS, None, [part(0, Verdict.WA), part(1, Verdict.AC), not_run])
    assert [t.verdict for t in result.tests] == [Verdict.WA, Verdict.SK, Verdict.SK]
    assert result.tests[1].message == "skipped after test 't0' failed"
    assert result.verdict == Verdict.WA


def test_compile_error_gives_ce_with_output_and_every_test_skipped() -> None:
    compiled = CompileOutcome(
        verdict=Verdict.CE,
        message="compilation failed",
        compile=CompileResult(exit_code=1, output="main.c:1: error", time_ms=5),
    )
    result = assemble(meta_for(sub(3)), IDS, compiled, [])
    assert result.verdict == Verdict.CE
    assert result.compile is not None and "error" in result.compile.output
    assert {t.verdict for t in result.tests} == {Verdict.SK}


def test_a_contract_1_result_has_exactly_the_fields_it_always_had() -> None:
    """Contract 1.1 is additive: score, max_score, groups and a test's score and group appear
    only where a submission used them."""
    result = assemble(meta_for(sub(3)), IDS, None, [part(i, Verdict.AC) for i in range(3)])
    dumped = result.model_dump(mode="json")
    assert set(dumped) == {
        "contract", "submission_id", "verdict", "passed", "total", "compile", "tests",
        "max_cpu_time_ms", "max_memory_kb", "error",
    }  # fmt: skip
    assert set(dumped["tests"][0]) == {
        "id", "verdict", "cpu_time_ms", "wall_time_ms", "memory_kb", "exit_code", "signal",
        "stdout", "stderr", "stdout_truncated", "stderr_truncated", "message",
    }  # fmt: skip


# --- tasks, eagerly, against a fake pool and fakeredis ---------------------------------------


@pytest.fixture
def fake_runtime() -> Iterator[runtime.Runtime]:
    yield start_runtime(fakeredis.FakeServer())
    runtime.install(None)


def accepted(rt: runtime.Runtime, raw: dict[str, Any], run: str = "run1") -> Any:
    """The canvas of an accepted submission: (compile step or None, test tasks, join)."""
    work = rt.intake.accept(parsed(raw), run)
    if work.tasks[0].task == TEST_TASK:
        return None, work.tasks, work.body
    return work.tasks[0], work.tasks[1].tasks, work.tasks[1].body


def compiled_for(rt: runtime.Runtime, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    step, _, _ = accepted(rt, raw or sub(), run="compile-run")
    out: dict[str, Any] = step.apply().get()
    return out


def task_args(rt: runtime.Runtime, raw: dict[str, Any], index: int) -> tuple[Any, ...]:
    """A test task's own arguments (meta, index, test), as the canvas gives them."""
    _, tests, _ = accepted(rt, raw)
    return tuple(tests[index].args[-3:])


def test_compile_is_cached_for_the_same_source(fake_runtime: runtime.Runtime) -> None:
    first = compiled_for(fake_runtime)
    calls = len(fake_runtime.runner.calls)  # type: ignore[attr-defined]
    second = compiled_for(fake_runtime)
    assert first["program"] == second["program"]
    assert second["compile"]["cached"] is True
    assert len(fake_runtime.runner.calls) == calls  # type: ignore[attr-defined]


def test_a_test_run_twice_reports_the_first_result_both_times(
    fake_runtime: runtime.Runtime,
) -> None:
    compiled = compiled_for(fake_runtime)
    args = task_args(fake_runtime, sub(), 1)
    first = run_test.apply(args=(compiled, *args)).get()
    fake_runtime.runner.script = lambda image, job: report(stdout=b"different")  # type: ignore[attr-defined]
    again = run_test.apply(args=(compiled, *args)).get()
    assert first == again
    assert first["result"]["verdict"] == "AC"


def test_sandbox_failure_becomes_an_ie_result_not_an_exception(
    fake_runtime: runtime.Runtime,
) -> None:
    compiled = compiled_for(fake_runtime)

    def broken(image: str, job: Job) -> RunReport:
        raise SandboxError("engine gone")

    fake_runtime.runner.script = broken  # type: ignore[attr-defined]
    out = run_test.apply(args=(compiled, *task_args(fake_runtime, sub(), 0))).get()
    assert out["result"]["verdict"] == "IE"
    assert "engine gone" in out["result"]["message"]


def test_tests_after_a_failure_are_not_run_when_asked_to_stop(
    fake_runtime: runtime.Runtime,
) -> None:
    """Only a hint: the worker spares the sandbox; the join decides the SK (above)."""
    raw = sub(3, stop_on_first_failure=True)
    raw["tests"][0]["expected_stdout"] = "x"
    compiled = compiled_for(fake_runtime, raw)
    run_test.apply(args=(compiled, *task_args(fake_runtime, raw, 0))).get()
    calls = len(fake_runtime.runner.calls)  # type: ignore[attr-defined]
    later = run_test.apply(args=(compiled, *task_args(fake_runtime, raw, 2))).get()
    assert later == {"index": 2, "result": None, "skipped": "an earlier test failed"}
    assert len(fake_runtime.runner.calls) == calls  # type: ignore[attr-defined]


def test_join_builds_the_result_and_cleans_up(fake_runtime: runtime.Runtime) -> None:
    out = run_all(fake_runtime.intake.accept(parsed(sub()), "run1"))
    assert out["verdict"] == "AC" and out["total"] == 3
    assert fake_runtime.redis.keys("runner:run:run1:*") == []


@pytest.mark.parametrize(
    ("args", "kwargs", "code"),
    [
        ((), {}, "bad_call"),
        (({"language": "python"}, 2), {}, "bad_call"),
        ((sub(),), {"extra": 1}, "bad_call"),
        ((), {"submission": sub()}, "bad_call"),
        ((None, None), {}, "bad_call"),
        (("text",), {}, "not_an_object"),
        ((None,), {}, "not_an_object"),  # one argument, JSON null: not a bad call
        ((sub(language="brainfuck"),), {}, "unknown_language"),
        ((sub(compare={"mode": "float", "abs_tol": float("inf")}),), {}, "invalid_value"),
        ((sub(limits={"cpu_time_ms": float("nan")}),), {}, "invalid_value"),
        ((sub(tests=[None]),), {}, "wrong_type"),
    ],
)
def test_submit_turns_bad_calls_into_rj_results(
    fake_runtime: runtime.Runtime, args: tuple[Any, ...], kwargs: dict[str, Any], code: str
) -> None:
    out = submit.apply(args=args, kwargs=kwargs).get()
    assert out["verdict"] == "RJ"
    assert out["error"]["code"] == code


def test_submit_rejects_a_tolerance_of_1e999_instead_of_failing(
    fake_runtime: runtime.Runtime,
) -> None:
    """The reported fault: Python's json reads 1e999 as infinity, which used to escape the
    task as a ValueError, leaving the sender with no result."""
    text = json.dumps(sub(compare={"mode": "float", "abs_tol": 0})).replace(
        '"abs_tol": 0', '"abs_tol": 1e999'
    )
    task = submit.apply(args=(json.loads(text),))
    assert task.successful()
    assert task.get()["error"] == {
        "code": "invalid_value",
        "message": "compare.abs_tol: inf is not a finite number (JSON has no infinity or NaN)",
    }


def test_a_fault_while_checking_a_submission_is_an_ie_result_and_logged(
    fake_runtime: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr("worker.pipeline.tasks.parse_submission", broken)
    with capture_logs() as logs:
        task = submit.apply(args=(sub(id="sub-9"),))
    assert task.successful()
    out = task.get()
    assert (out["verdict"], out["submission_id"], out["total"]) == ("IE", "sub-9", 0)
    assert out["error"]["code"] == "internal_error"
    [failed] = [e for e in logs if e["event"] == "submission.check_failed"]
    assert failed["log_level"] == "error" and failed["exc_info"]


def test_an_id_that_is_not_a_string_is_neither_echoed_nor_logged(
    fake_runtime: runtime.Runtime,
) -> None:
    with capture_logs(processors=[merge_contextvars]) as logs:
        out = submit.apply(args=(sub(id=[["not", "a string"]]),), task_id="task-7").get()
    assert (out["error"]["code"], out["submission_id"]) == ("wrong_type", None)
    [event] = [e for e in logs if e["event"] == "submission.rejected"]
    assert (event["task_id"], event["submission_id"]) == ("task-7", None)


def test_known_source_skips_the_compile_task(fake_runtime: runtime.Runtime) -> None:
    compiled = compiled_for(fake_runtime)  # compiles and stores the program
    fake_runtime.store.publish_identity("python", fake_runtime.runner.identity("python"))
    step, tests, _ = accepted(fake_runtime, sub(3), run="run2")
    assert step is None  # a chord: no compile step
    found = tests[0].args[0]
    assert found["program"] == compiled["program"]
    assert found["compile"]["cached"] is True
    stored = CompileOutcome.model_validate_json(fake_runtime.redis.get("runner:run:run2:compile"))
    assert stored.program == compiled["program"]


def test_unknown_source_or_identity_gets_no_shortcut(fake_runtime: runtime.Runtime) -> None:
    assert accepted(fake_runtime, sub(1), run="run3")[0] is not None  # no identity yet
    fake_runtime.store.publish_identity("python", fake_runtime.runner.identity("python"))
    assert accepted(fake_runtime, sub(1), run="run4")[0] is not None  # never compiled


def test_tests_not_started_when_a_submission_is_cancelled_are_sk_and_so_is_its_verdict(
    fake_runtime: runtime.Runtime,
) -> None:
    """DELETE /v1/submissions/{id} leaves the hint; tests that ran keep their verdicts."""
    compile_step, tests, join = accepted(fake_runtime, sub(3))
    compiled = compile_step.apply().get()
    parts = [run_test.apply(args=(compiled, *tests[0].args)).get()]
    fake_runtime.redis.hset(run_key("run1", "failed"), CANCELLED, 1)
    calls = len(fake_runtime.runner.calls)  # type: ignore[attr-defined]
    parts += [run_test.apply(args=(compiled, *task.args)).get() for task in tests[1:]]
    assert len(fake_runtime.runner.calls) == calls  # type: ignore[attr-defined]
    out = join_results.apply(args=(parts, *join.args)).get()
    assert [t["verdict"] for t in out["tests"]] == ["AC", "SK", "SK"]
    assert (
        out["tests"][1]["message"]
        == "not run: the submission was cancelled before this test started"
    )
    assert (out["verdict"], out["passed"]) == ("SK", 1)
    assert out["error"] == {
        "code": "cancelled",
        "message": "cancelled by its submitter: 2 of 3 tests not run",
    }
