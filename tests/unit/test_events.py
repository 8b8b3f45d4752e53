"""The core announces, the edges subscribe: a subscriber's failure never fails the emitter,
and the join announces each run it finishes (the HTTP API's notice hangs on it)."""

from __future__ import annotations

import fakeredis
import pytest
from structlog.testing import capture_logs

from tests.unit.fleet import judged, start_runtime, sub
from worker import keyspace
from worker.api import records
from worker.contract import SubmissionResult
from worker.pipeline import events


def test_a_failing_subscriber_is_logged_and_the_others_still_hear() -> None:
    event: events.Event[[str]] = events.Event("probe")
    heard: list[str] = []

    def broken(run: str) -> None:
        raise RuntimeError("edge bug")

    event.subscribe(broken)
    event.subscribe(heard.append)
    with capture_logs() as logs:
        event.emit("run1")
    assert heard == ["run1"]
    [failed] = [e for e in logs if e["event"] == "event.subscriber_failed"]
    assert failed["name"] == "probe" and failed["log_level"] == "error"
    assert failed["subscriber"].endswith("broken")


def test_the_join_announces_the_run_it_finished_and_the_api_notice_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "run_finished", events.Event("run_finished"))
    heard: list[tuple[str, SubmissionResult]] = []
    events.run_finished.subscribe(lambda run, result: heard.append((run, result)))
    server = fakeredis.FakeServer()
    rt = start_runtime(server)
    records.subscribe(rt.redis)
    rt.redis.hset(keyspace.record_key("run1"), mapping={"key": "k1"})
    rt.redis.zadd(keyspace.inflight_key("k1"), {"run1": 1})
    result = judged(rt, sub(2))
    [(run, announced)] = heard
    assert run == "run1" and announced.model_dump(mode="json") == result
    assert rt.redis.hget(keyspace.record_key("run1"), "finished_ms") is not None
    assert rt.redis.zcard(keyspace.inflight_key("k1")) == 0
