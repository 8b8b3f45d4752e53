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

from worker import runtime
from worker.contract import Maxima, TestResult, Verdict, parse_submission
from worker.errors import SandboxError
from worker.intake import Intake
from worker.languages import LANGUAGES
from worker.sandbox.fake import FakePool, report
from worker.sandbox.protocol import Job, RunReport
from worker.settings import Settings
from worker.tasks import compile_submission, join_results, run_test, submit
from worker.workflow import COMPILE_TASK, JOIN_TASK, TEST_TASK, assemble, canvas, meta_of


def sub(n: int = 3, **extra: Any) -> dict[str, Any]:
    tests = [{"id": f"t{i}", "stdin": str(i), "expected_stdout": str(i)} for i in range(n)]
    return {"language": "python", "source": "print(input())", "tests": tests, **extra}


def parsed(raw: dict[str, Any]):  # type: ignore[no-untyped-def]
    return parse_submission(raw, Maxima(), frozenset(LANGUAGES))


def part(index: int, verdict: Verdict, test_id: str | None = None) -> dict[str, Any]:
    result = TestResult(id=test_id or f"t{index}", verdict=verdict, cpu_time_ms=index)
    return {"index": index, "result": result.model_dump(mode="json")}


IDS = ["t0", "t1", "t2"]


def test_canvas_is_compile_then_chord_of_one_task_per_test_then_join() -> None:
    sig = canvas(parsed(sub(3)), run_id="r1")
    compile_step, chord_step = sig.tasks
    assert compile_step.task == COMPILE_TASK
    assert [t.task for t in chord_step.tasks] == [TEST_TASK] * 3
    assert chord_step.body.task == JOIN_TASK
    assert chord_step.body.args[1] == IDS


def test_every_task_carries_a_short_readable_argsrepr_for_flower() -> None:
    """Given, not computed: Celery's saferepr over every argument was a third of a producer's
    CPU; and Flower shows which test of which run a task is."""
    compile_step, chord_step = canvas(parsed(sub(3)), run_id="r1").tasks
    assert [t.options["argsrepr"] for t in chord_step.tasks] == [
        f"[run r1, test {i} 't{i}']" for i in range(3)
    ]
    assert chord_step.body.options["argsrepr"] == "[run r1, 3 tests]"
    assert compile_step.options["argsrepr"] == "[run r1, python, 14 bytes]"


def test_test_messages_do_not_grow_with_the_number_of_tests() -> None:
    small = canvas(parsed(sub(2)), run_id="r").tasks[1].tasks[0]
    large = canvas(parsed(sub(150)), run_id="r").tasks[1].tasks[0]
    assert len(json.dumps(large.args)) == len(json.dumps(small.args))


def test_assemble_orders_by_index_and_keeps_the_first_of_duplicates() -> None:
    parts = [part(2, Verdict.AC), part(0, Verdict.AC), part(2, Verdict.WA), part(1, Verdict.AC)]
    result = assemble(meta_of(parsed(sub(3))), IDS, {"verdict": None}, parts)
    assert [t.id for t in result.tests] == IDS
    assert result.verdict == Verdict.AC
    assert (result.passed, result.total) == (3, 3)


def test_assemble_reports_a_lost_test_as_ie_instead_of_hanging_or_dropping_it() -> None:
    result = assemble(
        meta_of(parsed(sub(3))), IDS, None, [part(0, Verdict.AC), part(2, Verdict.AC)]
    )
    assert [t.verdict for t in result.tests] == [Verdict.AC, Verdict.IE, Verdict.AC]
    assert result.verdict == Verdict.IE
    assert result.error is not None and "lost" in result.error.message


def test_overall_verdict_is_the_first_failure_in_submission_order() -> None:
    parts = [part(0, Verdict.AC), part(1, Verdict.TLE), part(2, Verdict.WA)]
    result = assemble(meta_of(parsed(sub(3))), IDS, None, parts)
    assert result.verdict == Verdict.TLE
    assert result.max_cpu_time_ms == 2


def test_stop_on_first_failure_marks_later_tests_skipped() -> None:
    meta = meta_of(parsed(sub(3, stop_on_first_failure=True)))
    parts = [part(0, Verdict.WA), part(1, Verdict.AC), part(2, Verdict.AC)]
    result = assemble(meta, IDS, None, parts)
    assert [t.verdict for t in result.tests] == [Verdict.WA, Verdict.SK, Verdict.SK]
    assert result.verdict == Verdict.WA


def test_compile_error_gives_ce_with_output_and_every_test_skipped() -> None:
    compiled = {
        "verdict": "CE",
        "message": "compilation failed",
        "compile": {"exit_code": 1, "output": "main.c:1: error", "time_ms": 5},
    }
    result = assemble(meta_of(parsed(sub(3))), IDS, compiled, [])
    assert result.verdict == Verdict.CE
    assert result.compile is not None and "error" in result.compile.output
    assert {t.verdict for t in result.tests} == {Verdict.SK}


# --- tasks, eagerly, against a fake pool and fakeredis ---------------------------------------


@pytest.fixture
def fake_runtime() -> Iterator[runtime.Runtime]:
    settings = Settings.from_env({})
    server = fakeredis.FakeServer()
    intake = Intake.open(settings, lambda url: fakeredis.FakeRedis(server=server))
    rt = runtime.build(
        settings, FakePool(lambda image, job: report(stdout=job.stdin)), intake=intake
    )
    runtime.install(rt)
    yield rt
    runtime.install(None)


def meta(**extra: Any) -> dict[str, Any]:
    return meta_of(parsed(sub(3, **extra)), run_id="run1")


def compiled_for(rt: runtime.Runtime) -> dict[str, Any]:
    out: dict[str, Any] = compile_submission.apply(args=(meta(), "cHJpbnQoaW5wdXQoKSk=")).get()
    return out


def test_compile_is_cached_for_the_same_source(fake_runtime: runtime.Runtime) -> None:
    first = compiled_for(fake_runtime)
    calls = len(fake_runtime.runner.calls)  # type: ignore[attr-defined]
    second = compiled_for(fake_runtime)
    assert first["key"] == second["key"]
    assert second["compile"]["cached"] is True
    assert len(fake_runtime.runner.calls) == calls  # type: ignore[attr-defined]


def test_a_test_run_twice_reports_the_first_result_both_times(
    fake_runtime: runtime.Runtime,
) -> None:
    compiled = compiled_for(fake_runtime)
    test = {"id": "t1", "stdin": "MQ==", "expected": "MQ=="}
    first = run_test.apply(args=(compiled, meta(), 1, test)).get()
    fake_runtime.runner.script = lambda image, job: report(stdout=b"different")  # type: ignore[attr-defined]
    again = run_test.apply(args=(compiled, meta(), 1, test)).get()
    assert first == again
    assert first["result"]["verdict"] == "AC"


def test_sandbox_failure_becomes_an_ie_result_not_an_exception(
    fake_runtime: runtime.Runtime,
) -> None:
    compiled = compiled_for(fake_runtime)

    def broken(image: str, job: Job) -> RunReport:
        raise SandboxError("engine gone")

    fake_runtime.runner.script = broken  # type: ignore[attr-defined]
    out = run_test.apply(
        args=(compiled, meta(), 0, {"id": "t0", "stdin": "", "expected": None})
    ).get()
    assert out["result"]["verdict"] == "IE"
    assert "engine gone" in out["result"]["message"]


def test_tests_after_a_failure_are_not_run_when_asked_to_stop(
    fake_runtime: runtime.Runtime,
) -> None:
    compiled = compiled_for(fake_runtime)
    m = meta(stop_on_first_failure=True)
    run_test.apply(args=(compiled, m, 0, {"id": "t0", "stdin": "", "expected": "eA=="})).get()
    calls = len(fake_runtime.runner.calls)  # type: ignore[attr-defined]
    later = run_test.apply(args=(compiled, m, 2, {"id": "t2", "stdin": "", "expected": None})).get()
    assert later["result"]["verdict"] == "SK"
    assert len(fake_runtime.runner.calls) == calls  # type: ignore[attr-defined]


def test_join_builds_the_result_and_cleans_up(fake_runtime: runtime.Runtime) -> None:
    compiled = compiled_for(fake_runtime)
    parts = [
        run_test.apply(
            args=(compiled, meta(), i, {"id": f"t{i}", "stdin": "", "expected": None})
        ).get()
        for i in range(3)
    ]
    out = join_results.apply(args=(parts, meta(), IDS)).get()
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

    monkeypatch.setattr("worker.tasks.parse_submission", broken)
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
    submission = parsed(sub(3))
    found = fake_runtime.intake.shortcut(submission, "run2")
    assert found is not None and found["key"] == compiled["key"]
    assert found["compile"]["cached"] is True
    sig = canvas(submission, run_id="run2", compiled=found)
    assert [t.task for t in sig.tasks] == [TEST_TASK] * 3  # a chord: no compile step
    assert sig.tasks[0].args[0] == found
    assert json.loads(fake_runtime.redis.get("runner:run:run2:compile"))["key"] == found["key"]


def test_unknown_source_or_identity_gets_no_shortcut(fake_runtime: runtime.Runtime) -> None:
    shortcut = fake_runtime.intake.shortcut
    assert shortcut(parsed(sub(1)), "run3") is None  # no identity yet
    fake_runtime.store.publish_identity("python", fake_runtime.runner.identity("python"))
    assert shortcut(parsed(sub(1)), "run3") is None  # never compiled
