"""The Celery application ``worker.app:app``.

Configuration is read from the environment (:class:`~worker.settings.Settings`) when Celery
first needs it, not at import. Reliability choices, each for a reason:

- ``task_acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1: a test whose worker dies
  is delivered again, and a worker never sits on tests it has not started;
- ``visibility_timeout`` above the longest task time limit: a slow test is never handed to a
  second worker while the first still runs it;
- JSON only, pickle refused: any backend in any language can send and read;
- results (and chord state) kept longer than the longest chord can take;
- task events on, so Flower shows workers, tasks and their states live;
- the thread pool, ``RUNNER_CONCURRENCY`` threads: a worker process holds one set of warm
  sandbox pools that its threads share (:mod:`worker.pipeline.runtime`), so the plain
  ``celery -A worker.app worker`` runs what ``runner worker`` runs. A pool that would run tests
  in other processes or in green threads stops the start
(:func:`worker.pipeline.runtime.check_pool`); - a Redis restart ridden out
  (``RUNNER_OUTAGE_WINDOW_S``, :mod:`worker.outages`): the result backend's calls wait for Redis
  (:mod:`worker.queue.backend`), sending a task is retried over the window, and a consumer that lost
  the broker tries again every 0.5 to 2 s (kombu's 2, 4, 6 ... 30 s apart brought a worker back up
  to 12 s after a 30 s restart).
"""

from __future__ import annotations

import math
import os
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.entity import Queue

import worker.queue.backend  # noqa: F401 - registers the redis:// result backend that rides out restarts
from worker.errors import SettingsError
from worker.languages import LANGUAGES
from worker.outages import WINDOW_OPTION
from worker.queue.transport import SHARE_OPTION  # importing it registers the redis:// transport
from worker.redis_access import celery_options
from worker.settings import Settings

GRACE_S = 30  # on top of a wall limit: transfer, waiting for a sandbox, cleanup


def task_time_limit(settings: Settings) -> int:
    """Hard time limit of any task: the longest wall limit of a test or a compile step, plus a
    generous grace."""
    compile_ms = max(lang.compile.wall_time_ms for lang in LANGUAGES.values() if lang.compile)
    return max(settings.ceilings().wall_time_ms, compile_ms) // 1000 + GRACE_S


def available_cpus() -> float:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (a container
    sees every core of its host in os.cpu_count())."""
    cpus = float(len(os.sched_getaffinity(0)))
    quota = _read("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
    if quota and quota[0] != "max":
        cpus = min(cpus, int(quota[0]) / int(quota[1]))
    quota_v1 = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")  # cgroup v1: -1 when unlimited
    period_v1 = _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    if quota_v1 and period_v1 and int(quota_v1[0]) > 0:
        cpus = min(cpus, int(quota_v1[0]) / int(period_v1[0]))
    return max(cpus, 1.0)


def _read(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return []


def concurrency_of(settings: Settings) -> int:
    """Tests one worker runs at once: ``RUNNER_CONCURRENCY``, or twice the usable CPUs (a host
    slice's quota, RUNNER_HOST_CPUS, caps them: the worker enters its slice only at start)."""
    cpus = available_cpus()
    if settings.host_cpus:
        cpus = max(min(cpus, settings.host_cpus), 1.0)
    return settings.concurrency or round(2 * cpus)


def publish_retry_policy(window_s: int) -> dict[str, float]:
    """How Celery sends a task again while the broker's Redis is away (a submission's steps, a
    chord's join as its last test ends): 0, 0.5, 1, 1.5 s, then every 2 s, for the outage
    window (a lost join would leave a submission unanswered)."""
    step, most = 0.5, 2.0
    retries = 4 + max(0, math.ceil((window_s - 3.0) / most))  # waits: 3 s, then 2 s each
    return {
        "max_retries": retries,
        "interval_start": 0,
        "interval_step": step,
        "interval_max": most,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    hard = task_time_limit(settings)
    if settings.visibility_timeout_s <= hard:
        raise SettingsError(
            f"RUNNER_VISIBILITY_TIMEOUT_S={settings.visibility_timeout_s} must exceed the longest "
            f"task time limit ({hard} s), or running tasks would be delivered twice"
        )
    options = {
        "visibility_timeout": settings.visibility_timeout_s,
        SHARE_OPTION: settings.tenant_max_share_pct,
        WINDOW_OPTION: settings.outage_window_s,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }
    return {
        # ACL user, password and TLS (certificates always checked) of both
        **celery_options(settings),
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_transport_options": options,
        "broker_connection_retry_on_startup": True,
        # the result backend's client waits out a Redis restart itself (worker.queue.backend), so a
        # result that cannot be stored meanwhile is not a task failure (which would fail the
        # whole chord); only an outage past RUNNER_OUTAGE_WINDOW_S is
        "result_backend_transport_options": {WINDOW_OPTION: settings.outage_window_s},
        "task_publish_retry_policy": publish_retry_policy(settings.outage_window_s),
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # what `celery worker` runs without -P/-c: every test is a wait on a sandbox, and one
        # warm pool per process serves all its threads
        "worker_pool": "threads",
        "worker_concurrency": concurrency_of(settings),
        "task_default_queue": settings.queue,
        "task_queues": [Queue(settings.queue)],
        "task_create_missing_queues": True,
        "worker_send_task_events": True,
        "result_expires": settings.result_expires_s,
        "result_chord_join_timeout": 30,
        "task_time_limit": hard,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


class BrokerConnection(Connection):
    """A broker connection tried again every 0.5 to 2 s while Redis is away, unless the caller
    says otherwise (Celery's consumer does not)."""

    def _ensure_connection(
        self,
        errback: Any = None,
        max_retries: Any = None,
        interval_start: Any = 0.5,
        interval_step: Any = 0.5,
        interval_max: Any = 2.0,
        callback: Any = None,
        reraise_as_library_errors: Any = True,
        timeout: Any = None,
    ) -> Any:
        return super()._ensure_connection(
            errback,
            max_retries,
            interval_start,
            interval_step,
            interval_max,
            callback,
            reraise_as_library_errors,
            timeout,
        )


class BrokerAMQP(AMQP):  # type: ignore[misc]
    Connection = BrokerConnection


def create_app() -> Celery:
    app = Celery("runner", include=["worker.pipeline.tasks"], amqp=f"{__name__}:BrokerAMQP")
    # a promise: the environment is read when Celery first needs its configuration
    app.add_defaults(lambda: celery_config(Settings.from_env()))
    return app


app = create_app()
