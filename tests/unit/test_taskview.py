"""What an operator sees of a task: its run id on every log line of it, and its outcome as one
line in Flower's Result column (worker.pipeline.taskview)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from tests.unit.fleet import judged, start_runtime, sub
from worker.pipeline import runtime, taskview
from worker.pipeline.tasks import submit


@pytest.fixture
def fake_runtime() -> Iterator[runtime.Runtime]:
    rt = start_runtime(fakeredis.FakeServer())
    yield rt
    runtime.install(None)


def test_every_line_a_submissions_tasks_log_names_its_run(fake_runtime: runtime.Runtime) -> None:
    """The run id is what the sender knows (the HTTP API's submission id): a submission sent
    without an ``id`` of its own has ``submission_id: null`` on every line, never the run."""
    with capture_logs(processors=[merge_contextvars]) as logs:
        result = judged(fake_runtime, sub(2), run="api-5f0c6a4e")
        structlog.get_logger().info("after.the.tasks")
    assert result["verdict"] == "AC"
    events = [e["event"] for e in logs]
    assert events.count("test.done") == 2 and "compile.done" in events, events
    assert "submission.done" in events
    during = [e for e in logs if e["event"] != "after.the.tasks"]
    assert {e.get("run_id") for e in during} == {"api-5f0c6a4e"}, during
    assert {e.get("submission_id") for e in during} == {None}
    # unbound once the task is over: a thread's next task starts clean
    [after] = [e for e in logs if e["event"] == "after.the.tasks"]
    assert "run_id" not in after


def test_runner_submits_own_lines_name_the_task_id_it_was_sent_with(
    fake_runtime: runtime.Runtime,
) -> None:
    with capture_logs(processors=[merge_contextvars]) as logs:
        submit.apply(args=(sub(language="brainfuck"),), task_id="sent-by-node-1").get()
    [event] = [e for e in logs if e["event"] == "submission.rejected"]
    assert event["run_id"] == "sent-by-node-1"


def test_each_task_says_what_it_decided_in_a_line(
    fake_runtime: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    monkeypatch.setattr("worker.pipeline.tasks.show", lambda task_id, line: lines.append(line))
    raw = sub(2, id="attempt-7")
    raw["tests"][1]["expected_stdout"] = "2"
    judged(fake_runtime, raw, run="r-9")
    assert lines == [
        "compiled, run r-9",
        "AC test 0 't0': 1 ms CPU, 1000 KB",  # the fake pool's figures
        "WA test 1 't1': 1 ms CPU, 1000 KB; token 1: expected '2', got '1'",
        "WA: 1/2 tests passed, submission 'attempt-7', run r-9",
    ]
    lines.clear()
    submit.apply(args=(sub(language="brainfuck"),)).get()
    assert lines[0].startswith("RJ unknown_language: language: "), lines


class Eventer:
    enabled = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, type: str, **fields: Any) -> None:
        self.sent.append((type, fields))


def request(task_id: str, eventer: Eventer) -> taskview.ShownRequest:
    """A worker request as far as sending events goes (a real one needs a whole message)."""
    made = taskview.ShownRequest.__new__(taskview.ShownRequest)
    made.id = task_id
    made._eventer = eventer
    made._task = SimpleNamespace(send_events=True)
    return made


def test_flower_gets_the_tasks_line_instead_of_a_truncated_repr() -> None:
    eventer = Eventer()
    taskview.show("task-1", "WA: 2/3 tests passed, run r-1")
    cut = "{'contract': 1, 'submission_id': None, 'verdict': 'WA', 'tests': [{'id': '0', ..."
    request("task-1", eventer).send_event("task-succeeded", result=cut, runtime=0.5)
    request("task-2", eventer).send_event("task-succeeded", result="{'accepted': True}")
    request("task-1", eventer).send_event("task-started")
    assert eventer.sent == [
        (
            "task-succeeded",
            {"uuid": "task-1", "result": "WA: 2/3 tests passed, run r-1", "runtime": 0.5},
        ),
        ("task-succeeded", {"uuid": "task-2", "result": "{'accepted': True}"}),  # no line: as is
        ("task-started", {"uuid": "task-1"}),
    ]
    assert taskview.shown("task-1") is None  # taken once


def test_lines_no_event_takes_are_bounded() -> None:
    for i in range(taskview._KEPT + 10):
        taskview.show(f"lost-{i}", "AC")
    assert taskview.shown("lost-0") is None
    assert taskview.shown(f"lost-{taskview._KEPT + 9}") == "AC"
    for i in range(taskview._KEPT + 10):
        taskview.shown(f"lost-{i}")
