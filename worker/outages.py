"""Riding out an outage of Redis or of the Docker engine: wait and retry, within a window.

A Redis restart (clean, or a crash recovered from its append-only file) and a Docker engine
restart are part of a fleet's life, so a worker does not fail the tests it holds when one goes
away: every Redis call of its own (results, the chord's join, progress, admission and the
fair queue's scripts, test data and compiled programs, acknowledgements, sending tasks) and
every sandbox lease waits and tries again, for at most ``RUNNER_OUTAGE_WINDOW_S``
(:class:`Outage`), and the heartbeats that lapsed meanwhile are not taken for dead workers
(:mod:`worker.queue.transport`). Only an outage longer than that ends a test ``IE``, with a message
that says so ("Redis unreachable for 60 s (...)", "Docker engine unreachable for 60 s (...)").

An :class:`Outage` follows one dependency as this process sees it: it is down from the first
failed call until a call succeeds, and the window is counted from that first failure, so every
call caught in one outage gives up at the same moment, and a call made once the outage has
outlasted the window gives up at once instead of waiting a window of its own. Each outage is
logged once, however many threads wait on it: ``redis.retrying`` / ``docker.retrying`` when it
starts, ``*.recovered`` (with ``down_s``) when it ends, ``*.gave_up`` when it outlasts the
window.

Calls are retried whole, so what is retried must be safe to run twice (a reply lost with the
connection does not say whether Redis ran the command): every script and pipeline of the
fleet is (admission and test-data holds count a run once, the chord's join records a test's
result once, results are first-wins).

:class:`RidingRedis` is a redis-py client whose commands, scripts and pipelines do this;
:func:`redis_client` makes one from a URL.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
import redis.client
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.errors import RedisUnavailable, RunnerError

log = structlog.get_logger()

T = TypeVar("T")
DEFAULT_WINDOW_S = 60.0
# a Celery transport option (broker and result backend): the window, RUNNER_OUTAGE_WINDOW_S
WINDOW_OPTION = "runner_outage_window_s"
FIRST_PAUSE_S = 0.05  # between tries: doubling from this...
LONGEST_PAUSE_S = 1.0  # ...to this, so a dependency back is noticed within a second


class Outage:
    """One dependency (``what``, e.g. "Redis") as this process sees it: up, or down since the
    first of a run of failed calls. ``event`` prefixes the log events (``redis``, ``docker``);
    ``fields`` go into each of them (which server, say)."""

    def __init__(
        self, what: str, event: str, window_s: float = DEFAULT_WINDOW_S, **fields: object
    ) -> None:
        self.what = what
        self.event = event
        self.window_s = float(window_s)
        self.fields = fields
        self.down_since: float | None = None  # time.monotonic() of the first failure
        self.recovered_at: float | None = None
        self.last_error = ""
        self._gave_up = False
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> float:
        """Record a failed call; how long the dependency has been down."""
        now = time.monotonic()
        with self._lock:
            self.last_error = " ".join(str(exc).split())[:200] or type(exc).__name__
            started = self.down_since is None
            if started:
                self.down_since = now
                self._gave_up = False
            down = now - (self.down_since or now)
        if started:
            log.warning(
                f"{self.event}.retrying",
                error=self.last_error,
                window_s=self.window_s,
                **self.fields,
            )
        return down

    def succeeded(self) -> None:
        """Record a call that worked: an outage in progress is over."""
        if self.down_since is None:  # the common case, without the lock
            return
        now = time.monotonic()
        with self._lock:
            if self.down_since is None:
                return
            down = now - self.down_since
            self.down_since = None
            self.recovered_at = now
        log.info(f"{self.event}.recovered", down_s=round(down, 1), **self.fields)

    def down_for(self) -> float | None:
        """Seconds the dependency has been down, or None while it is up."""
        since = self.down_since
        return None if since is None else time.monotonic() - since

    def expired(self) -> bool:
        """Whether the outage in progress has outlasted the window."""
        down = self.down_for()
        return down is not None and down >= self.window_s

    def message(self) -> str:
        return f"{self.what} unreachable for {self.window_s:g} s ({self.last_error})"

    def give_up(self) -> None:
        """Log, once per outage, that it outlasted the window (the caller then raises)."""
        with self._lock:
            if self._gave_up:
                return
            self._gave_up = True
            down = time.monotonic() - (self.down_since or time.monotonic())
        log.error(
            f"{self.event}.gave_up",
            down_s=round(down, 1),
            error=self.last_error,
            window_s=self.window_s,
            **self.fields,
        )


def pause(attempt: int, outage: Outage) -> None:
    """Sleep before try ``attempt + 1``: doubling, at most a second, never past the window."""
    down = outage.down_for() or 0.0
    time.sleep(max(0.0, min(FIRST_PAUSE_S * 2**attempt, LONGEST_PAUSE_S, outage.window_s - down)))


def ride_out(
    call: Callable[[], T],
    outage: Outage,
    retry_if: Callable[[BaseException], bool],
    unavailable: Callable[[str], Exception],
) -> T:
    """``call()``, tried again while it fails with an error ``retry_if`` accepts, until it
    works or ``outage`` has lasted its window; then ``unavailable(message)`` is raised from
    the last error."""
    attempt = 0
    while True:
        try:
            result = call()
        except Exception as exc:
            if not retry_if(exc):
                raise
            if outage.failed(exc) >= outage.window_s:
                outage.give_up()
                raise unavailable(outage.message()) from exc
            pause(attempt, outage)
            attempt += 1
            continue
        outage.succeeded()
        return result


def redis_retryable(exc: BaseException) -> bool:
    """Redis away (refused, reset, timed out, still loading its data), not a refusal of ours:
    wrong credentials and a server certificate that fails its check are not waited out."""
    if isinstance(exc, (redis.AuthenticationError, redis.exceptions.AuthorizationError)):
        return False
    if isinstance(exc.__context__ or exc.__cause__, ssl.SSLCertVerificationError):
        return False  # redis-py raises ConnectionError while handling it
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))


def _redis_unavailable(message: str) -> RunnerError:
    return RedisUnavailable(message)


class RideOut:
    """Mixin for a redis-py client class: its commands (scripts included) and pipelines ride
    out an outage of their server (:data:`outage`, set on each client). Put it first:
    ``class C(RideOut, redis.Redis)``."""

    outage: Outage

    def execute_command(self, *args: Any, **options: Any) -> Any:
        run = super().execute_command  # type: ignore[misc]
        return ride_out(
            lambda: run(*args, **options), self.outage, redis_retryable, _redis_unavailable
        )

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> RidingPipeline:
        pipe = RidingPipeline(
            self.connection_pool,  # type: ignore[attr-defined]
            self.response_callbacks,  # type: ignore[attr-defined]
            transaction,
            shard_hint,
        )
        pipe.outage = self.outage
        return pipe


class RidingPipeline(redis.client.Pipeline):  # type: ignore[misc]
    """A pipeline sent again, whole, while its server is away (it is a transaction, or every
    command in it is safe to run twice)."""

    outage: Outage
    command_stack: list[Any]
    scripts: set[Any]

    def execute(self, raise_on_error: bool = True) -> Any:
        # redis-py empties the pipeline after every try, failed or not: each try gets a copy
        stack, scripts = list(self.command_stack), set(self.scripts)

        def send() -> Any:
            self.command_stack, self.scripts = list(stack), set(scripts)
            return super(RidingPipeline, self).execute(raise_on_error)

        return ride_out(send, self.outage, redis_retryable, _redis_unavailable)


class RidingRedis(RideOut, redis.Redis):  # type: ignore[misc]
    """A redis-py client that rides out an outage of its server (see the module docstring)."""


def riding(client: T, outage: Outage) -> T:
    """``client`` (a :class:`RideOut` client) following ``outage``."""
    client.outage = outage  # type: ignore[attr-defined]
    return client


def server_of(url: str) -> str:
    """``host:port/db`` of a Redis URL, for logs (never its credentials)."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].split("?", 1)[0]


def redis_client(
    url: str, window_s: float = DEFAULT_WINDOW_S, options: Mapping[str, Any] | None = None
) -> RidingRedis:
    """A client for ``url`` that rides out an outage of up to ``window_s`` seconds. redis-py's
    own retry only reconnects once at once (a connection Redis closed while idle): waiting is
    done here, where it is bounded and logged. ``options``: how it logs in and checks TLS
    (:func:`worker.redis_access.redis_options`)."""
    client: RidingRedis = RidingRedis.from_url(
        url,
        **(options or {}),
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=10,
    )
    return riding(client, Outage("Redis", "redis", window_s, redis=server_of(url)))
