"""What an operator sees of a task: the run it belongs to on every log line, and its outcome in
Flower as one readable line.

**The run id on every log line.** A submission's tasks all carry its run id (``RunMeta.run`` in
every compile, test and join message; ``runner.submit``'s own task id, which its join
inherits), and it is the id its sender knows: the HTTP API's submission id, the id
``Client.submit`` returns, the task id a foreign backend sent ``runner.submit`` with. The
submission's own ``id`` field (``submission_id`` in the logs) is optional and often absent. So
``run_id`` is bound for the whole of each task, from Celery's ``task_prerun`` to its
``task_postrun``: our events and Celery's own lines alike (:mod:`worker.logs` merges the context
into both) carry it.

**Flower's Result column.** A task-succeeded event carries Celery's ``saferepr`` of the return
value, cut at 1024 characters: for a join, a Python dict of the whole result, its verdict
somewhere in the middle and the end missing. The return values cannot change (the join's is
the stored submission result, the tests' feed the chord), so each task says what it decided in
a line of its own (:func:`show`) and the tasks' :class:`ShownRequest` puts that line in the
event instead. Flower's ``/api/task/result/<id>``, which reads the result backend, still gives
the result itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import Any

from celery.signals import task_postrun, task_prerun
from celery.worker.request import Request
from structlog.contextvars import bind_contextvars, reset_contextvars

from worker.producer.workflow import SUBMIT_TASK

_KEPT = 4096  # lines waiting for their task's event; more than any worker's threads run at once
_lines: OrderedDict[str, str] = OrderedDict()
_lock = threading.Lock()
_bound: dict[str, Mapping[str, Token[Any]]] = {}


def run_of(name: str, task_id: str | None, args: Sequence[Any]) -> str | None:
    """The run a task belongs to: ``runner.submit``'s is its own id (its join inherits it),
    a step's is in the run's meta, its first argument with a ``run``; None for a task of no
    run (``runner.problem``)."""
    if name == SUBMIT_TASK:
        return task_id
    for arg in args:
        if isinstance(arg, dict) and isinstance(arg.get("run"), str):
            return str(arg["run"])
    return None


def _bind_run(task_id: str | None = None, task: Any = None, args: Any = (), **_: Any) -> None:
    run = run_of(getattr(task, "name", ""), task_id, args or ())
    if run is not None and task_id is not None:
        _bound[task_id] = bind_contextvars(run_id=run)


def _unbind_run(task_id: str | None = None, **_: Any) -> None:
    tokens = _bound.pop(task_id or "", None)
    if tokens is not None:
        reset_contextvars(**tokens)


task_prerun.connect(_bind_run)
task_postrun.connect(_unbind_run)


def show(task_id: str | None, line: str) -> None:
    """What a task decided, as Flower is to show it (instead of the return value's repr)."""
    if task_id is None:
        return
    with _lock:
        _lines[task_id] = line
        while len(_lines) > _KEPT:  # events off: nothing takes them, so the oldest go
            _lines.popitem(last=False)


def shown(task_id: str) -> str | None:
    """The line :func:`show` was given for ``task_id``, taken (None if none)."""
    with _lock:
        return _lines.pop(task_id, None)


class ShownRequest(Request):  # type: ignore[misc]
    """The worker's request of our tasks: a task-succeeded event carries the task's own line."""

    def send_event(self, type: str, **fields: Any) -> None:
        if type == "task-succeeded":
            line = shown(self.id)
            if line is not None:
                fields["result"] = line
        super().send_event(type, **fields)
