"""What one worker process holds while it runs: settings, sandbox pools, judge, artifact
store and a Redis client for coordination.

The worker builds it when Celery starts (``worker_init``: stale sandboxes removed, pools
prewarmed before the first task) and tears it down on shutdown (every sandbox removed).
Tests install one around a :class:`~worker.sandbox.fake.FakePool`.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from celery.signals import worker_init, worker_shutdown
from celery.worker.control import inspect_command
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.app import concurrency_of
from worker.artifacts import ArtifactStore
from worker.errors import RunnerError
from worker.judge import Judge
from worker.logs import configure_logging
from worker.sandbox import open_pools
from worker.sandbox.runner import Runner
from worker.settings import Settings
from worker.transport import CONSUMER_OPTION, Reclaimer

log = structlog.get_logger()


@dataclass
class Runtime:
    settings: Settings
    runner: Runner
    judge: Judge
    store: ArtifactStore
    redis: redis.Redis
    host: str


_current: Runtime | None = None
_reclaimer_stop = threading.Event()


def redis_client(url: str) -> redis.Redis:
    """A client that rides out a Redis restart: retries with backoff for about 15 seconds."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=10),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=10,
    )


def build(settings: Settings, runner: Runner, host: str | None = None) -> Runtime:
    client = redis_client(settings.result_backend)
    store = ArtifactStore(
        client,
        ttl_s=settings.result_expires_s,
        max_bytes=settings.max_artifact_kb * 1024,
        cache_bytes=settings.artifact_cache_mb * 1024 * 1024,
    )
    return Runtime(settings, runner, Judge(runner), store, client, host or socket.gethostname())


def install(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RunnerError("the worker runtime is not started (start workers with `runner worker`)")
    return _current


@worker_init.connect
def _start(sender: Any = None, **_: Any) -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    # Celery's own line per finished task repeats the whole result; our test.done event says
    # the same in a few fields, so that logger only speaks up for problems
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    size = settings.pool_size or getattr(sender, "concurrency", None) or concurrency_of(settings)
    node = getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}"
    owner = settings.owner or node
    pools = open_pools(settings, size=size, owner=owner)
    pools.alive_nodes = alive_nodes
    log.info("worker.prewarm", owner=owner, sandboxes_per_image=size)
    pools.start()
    runtime = build(settings, pools, host=node)
    try:
        for image in pools.specs:
            runtime.store.publish_identity(image, pools.identity(image))
    except RunnerError as exc:  # producers then just always send the compile step
        log.warning("worker.identity_not_published", error=str(exc))
    install(runtime)
    _start_reclaimer(node)
    log.info("worker.ready", owner=owner, pools=pools.state())


def _start_reclaimer(node: str) -> None:
    """Name this process's broker consumer before it connects, beat for it once (so its first
    claims are never taken for a dead consumer's), then keep beating and reclaiming."""
    from worker.app import app

    consumer = f"{node}/{uuid.uuid4().hex[:8]}"
    options = dict(app.conf.broker_transport_options or {})
    app.conf.broker_transport_options = {**options, CONSUMER_OPTION: consumer}
    reclaimer = Reclaimer(app.connection_for_write, consumer)
    try:
        reclaimer.sweep()
    except Exception as exc:
        log.warning("broker.reclaim_failed", error=str(exc)[:200])
    _reclaimer_stop.clear()
    threading.Thread(
        target=reclaimer.run, args=(_reclaimer_stop,), name="reclaimer", daemon=True
    ).start()


def alive_nodes(timeout: float = 2.0) -> set[str]:
    """Names of the Celery nodes that answer a ping on this broker."""
    from worker.app import app

    return {name for reply in app.control.ping(timeout=timeout) or [] for name in reply}


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    _reclaimer_stop.set()
    runtime = _current
    install(None)
    if runtime is not None:
        runtime.runner.close()
        log.info("worker.stopped", host=runtime.host)


@inspect_command()
def pool_state(state: Any) -> list[dict[str, object]]:
    """``runner status``: this worker's sandbox pools and their counters."""
    return current().runner.state() if _current is not None else []
