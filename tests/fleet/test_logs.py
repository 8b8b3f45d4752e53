"""One log format per worker: Celery's own lines come out as our JSON events do."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.redis]


def test_celerys_own_log_lines_are_json_events_like_ours(workers: Any) -> None:
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
