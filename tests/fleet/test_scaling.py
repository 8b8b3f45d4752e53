"""Horizontal scaling on one machine: a worker added mid-run takes work at once, and a worker
stopped with SIGTERM (warm shutdown) finishes or hands back its tests, losing nothing."""

from __future__ import annotations

import signal
import time

import pytest

from worker.client import Client
from worker.contract import Verdict

pytestmark = [pytest.mark.docker, pytest.mark.redis]

SLOW_ECHO = "import sys, time\ntime.sleep(0.3)\nprint(sys.stdin.read().strip())\n"


def slow_submission(n: int, tag: str) -> dict[str, object]:
    tests = [
        {"id": f"{tag}{i:02d}", "stdin": f"{i}\n", "expected_stdout": f"{i}\n"} for i in range(n)
    ]
    return {"id": tag, "language": "python", "source": SLOW_ECHO, "tests": tests}


def judged_by(worker: object, submission_id: str) -> int:
    return sum(1 for e in worker.events("test.done") if e.get("submission_id") == submission_id)  # type: ignore[attr-defined]


def test_a_worker_added_mid_run_takes_work_at_once(workers, client: Client) -> None:
    first = workers("first", concurrency=1)
    handle = client.submit(slow_submission(30, "added"))
    deadline = time.monotonic() + 60
    while len(handle.finished_tests()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    second = workers("second", concurrency=1)
    result = handle.result(timeout=240)
    assert [t.verdict for t in result.tests] == [Verdict.AC] * 30
    assert judged_by(second, "added") >= 5
    assert judged_by(first, "added") + judged_by(second, "added") == 30


def test_sigterm_is_a_warm_shutdown_that_loses_nothing(workers, client: Client) -> None:
    leaving = workers("leaving", concurrency=2)
    staying = workers("staying", concurrency=2)
    handle = client.submit(slow_submission(40, "warm"))
    deadline = time.monotonic() + 60
    while len(handle.finished_tests()) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    code = leaving.stop(signal.SIGTERM)
    assert code == 0  # it finished what it was running and exited cleanly
    result = handle.result(timeout=240)
    assert [t.id for t in result.tests] == [f"warm{i:02d}" for i in range(40)]
    assert [t.verdict for t in result.tests] == [Verdict.AC] * 40
    assert judged_by(leaving, "warm") + judged_by(staying, "warm") == 40
    assert leaving.events("worker.stopped")
