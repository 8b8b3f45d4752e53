"""worker.logs: the standard library's lines (Celery's, kombu's) rendered as ours, with the
context a task bound (its run id) on them too."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.contextvars import bound_contextvars

from worker.logs import configure_logging


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """What the root logger writes once configure_logging set it up as an entry point does;
    the process's logging put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("json", "info")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def test_celerys_lines_inside_a_task_carry_its_run_id(written: io.StringIO) -> None:
    with bound_contextvars(run_id="api-5f0c", test_id="big"):
        logging.getLogger("celery.app.trace").warning("Task runner.test raised: boom")
    logging.getLogger("celery.worker").warning("outside any task")
    first, second = (json.loads(line) for line in written.getvalue().splitlines())
    assert (first["run_id"], first["test_id"], first["logger"]) == (
        "api-5f0c",
        "big",
        "celery.app.trace",
    )
    assert first["event"] == "Task runner.test raised: boom"
    assert "run_id" not in second
