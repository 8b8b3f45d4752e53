"""One log format per worker: Celery's own lines come out as our JSON events do."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.client import Client

pytestmark = [pytest.mark.docker, pytest.mark.redis]


def test_celerys_own_log_lines_are_json_events_like_ours(workers: Any, client: Client) -> None:
    worker = workers("logs")
    lines = [line for line in worker.log.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    ours = [e for e in events if e.get("event") == "worker.ready"]
    celerys = [e for e in events if str(e.get("logger", "")).startswith("celery.")]
    assert ours and celerys, lines
    ready = [e for e in celerys if e["event"] == f"{worker.name} ready."]
    assert ready and {"level", "timestamp", "logger"} <= set(ready[0]), ready
    # nothing of Celery's in its own format: "[2026-12-01 10:00:00,000: INFO/MainProcess] ..."
    assert not [line for line in worker.log.read_text().splitlines() if "/MainProcess]" in line]

    # every line of a submission's tasks names its run: the id its sender holds (the HTTP
    # API's submission id, Client's handle), even when the submission has no id of its own
    source = "print(int(input()) + 1)"
    tests = [{"stdin": "1", "expected_stdout": "2"}, {"stdin": "2", "expected_stdout": "3"}]
    handle = client.submit({"language": "python", "source": source, "tests": tests})
    assert handle.result(timeout=60).verdict == "AC"
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if "run_id" in line]
    ours = [e for e in lines if e["run_id"] == handle.id]
    assert sorted(e["event"] for e in ours if e["event"].endswith(".done")) == [
        "compile.done",
        "submission.done",
        "test.done",
        "test.done",
    ], ours
    assert all(e.get("submission_id") is None for e in ours)
