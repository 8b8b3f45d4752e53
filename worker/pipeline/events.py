"""What the core announces, for the edges to act on: the core names an event and emits it, an
edge (the HTTP API) subscribes at its process's start, so the core imports no edge.

A subscriber that fails is logged and never reaches the emitter: what the core decided (a
verdict) stands whatever an edge makes of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec

import structlog

from worker.contract import SubmissionResult

P = ParamSpec("P")
log = structlog.get_logger()


class Event(Generic[P]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[P, object]] = []

    def subscribe(self, subscriber: Callable[P, object]) -> None:
        self._subscribers.append(subscriber)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call every subscriber in the order they subscribed, in this thread."""
        for subscriber in self._subscribers:
            try:
                subscriber(*args, **kwargs)
            except Exception:
                log.exception(
                    "event.subscriber_failed",
                    name=self.name,
                    subscriber=getattr(subscriber, "__qualname__", repr(subscriber)),
                )


# The join decided a run's result (its run id, the result), before Celery stores it.
run_finished: Event[[str, SubmissionResult]] = Event("run_finished")
