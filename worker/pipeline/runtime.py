"""What one worker process holds while it runs: settings, sandbox pools, judge, artifact
store and a Redis client for coordination.

The worker builds it when Celery starts (``worker_init``: stale sandboxes removed, pools
prewarmed, every language self-tested in them (:mod:`worker.judging.selftest`) and what that said
announced to the fleet (:mod:`worker.data.availability`), all before the first task) and tears it
down on shutdown (every sandbox removed, the announcement withdrawn). Tests install one
around a :class:`~worker.sandbox.fake.FakePool`.

The pools live in this process and its threads share them, so the worker runs Celery's thread
pool (the app's default) or ``solo``. Any other pool refuses to start (:func:`check_pool`):
prefork children would each inherit a copy of the same pools, attached to the same sandbox
supervisors, and lease one sandbox to two tests at once; green threads (eventlet, gevent) would
stall on the blocking sandbox calls. A worker that could not run a test (no Docker engine, a
missing image, no sandbox of an image would start, no language passed its self-test) refuses
as well, rather than take tests only to fail them. A refusal is one line on stderr and exit
status 1 (:class:`StartRefused`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import click
import docker.errors
import redis
import structlog
from celery.concurrency import ALIASES, get_implementation
from celery.concurrency.solo import TaskPool as SoloPool
from celery.concurrency.thread import TaskPool as ThreadPool
from celery.signals import setup_logging, worker_init, worker_ready, worker_shutdown
from celery.worker.control import inspect_command

from worker import metrics
from worker.app import concurrency_of
from worker.data import availability
from worker.data.artifacts import ArtifactStore
from worker.errors import RunnerError, SandboxError
from worker.judging.judge import Judge
from worker.judging.selftest import Health
from worker.logs import configure_logging
from worker.pipeline import readiness
from worker.producer.intake import Intake
from worker.queue.transport import CONSUMER_OPTION, Reclaimer, internals_mismatch
from worker.sandbox import open_pools
from worker.sandbox.pools import SandboxPools
from worker.sandbox.runner import Runner
from worker.sandbox.slice import HostSlice
from worker.settings import Settings

log = structlog.get_logger()


@dataclass
class Runtime:
    settings: Settings
    runner: Runner
    judge: Judge
    host: str
    intake: Intake
    health: Health  # the languages this worker runs, and what their self-tests said

    @property
    def store(self) -> ArtifactStore:
        """Compiled programs (the intake's cache)."""
        return self.intake.artifacts

    @property
    def redis(self) -> redis.Redis:
        """The result backend's Redis: run state, admission, test data."""
        return self.intake.backend


_current: Runtime | None = None
_reclaimer_stop = threading.Event()
_announcer_stop = threading.Event()


def build(
    settings: Settings,
    runner: Runner,
    host: str | None = None,
    intake: Intake | None = None,
    health: Health | None = None,
) -> Runtime:
    """A runtime; without ``health``, every language it runs is taken as healthy (no
    self-test)."""
    intake = intake or Intake.open(settings)
    health = health or Health.assumed(settings.chosen_languages())
    return Runtime(settings, runner, Judge(runner), host or socket.gethostname(), intake, health)


def install(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RunnerError("the worker runtime is not started (start workers with `runner worker`)")
    return _current


class StartRefused(SystemExit):
    """Stops a worker's start: one line on stderr, exit status 1.

    A SystemExit, since Celery's signal dispatch catches any Exception a ``worker_init``
    receiver raises and only logs it: the worker would then start without a runtime."""

    def __init__(self, reason: str) -> None:
        super().__init__("runner: the worker cannot start: " + " ".join(reason.split()))


SAFE_POOLS = "start it with the thread pool (the default: no -P, or -P threads) or -P solo"


def check_pool(pool_cls: Any, asked_for: str | None = None) -> str:
    """``threads`` or ``solo`` for the pool a worker is about to run (a name, a ``module:Class``
    path or a class, as Celery holds it); raises :class:`StartRefused` for any other pool.
    ``asked_for`` is the pool named on the command line, when Celery replaced it."""
    if asked_for == "prefork":
        pool_cls = asked_for
    if isinstance(pool_cls, str):
        path = ALIASES.get(pool_cls) or pool_cls
        module = path.replace(":", ".").rsplit(".", 1)[0]
        if module in ("celery.concurrency.prefork", "celery.concurrency.asynpool"):
            pool_cls = "prefork"
        elif module in ("celery.concurrency.eventlet", "celery.concurrency.gevent"):
            pool_cls = module.rsplit(".", 1)[1]
        else:
            try:  # a custom pool: what it derives from decides
                pool_cls = get_implementation(pool_cls)
            except Exception:
                raise StartRefused(f"pool {path!r} cannot be loaded; {SAFE_POOLS}") from None
    if isinstance(pool_cls, type):
        if issubclass(pool_cls, ThreadPool):
            return "threads"
        if issubclass(pool_cls, SoloPool):
            return "solo"
        modules = {c.__module__ for c in pool_cls.__mro__}
        for name in ("prefork", "eventlet", "gevent"):
            if f"celery.concurrency.{name}" in modules:
                pool_cls = name
    if pool_cls == "prefork":
        raise StartRefused(
            "the prefork pool would run tests in several processes sharing one set of "
            f"sandboxes; {SAFE_POOLS}"
        )
    if pool_cls in ("eventlet", "gevent"):
        raise StartRefused(
            f"the {pool_cls} pool runs tests in green threads, which the blocking sandbox calls "
            f"would stall; {SAFE_POOLS}"
        )
    name = getattr(pool_cls, "__qualname__", pool_cls)
    raise StartRefused(f"pool {name!r} keeps no sandbox to one test at a time; {SAFE_POOLS}")


def pool_asked_for(argv: list[str] | None = None) -> str | None:
    """The pool named on the worker's command line or in ``CELERY_WORKER_POOL``, when Celery
    replaced it: its CLI turns an explicit ``-P prefork`` into the app's ``worker_pool``, as it
    cannot tell it from the option's default. Click still knows where the value came from."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or "pool" not in ctx.params:
        return None  # not started by Celery's command line: the pool class is what it runs
    source = ctx.get_parameter_source("pool")
    if source is click.core.ParameterSource.ENVIRONMENT:
        for param in ctx.command.params:
            if param.name == "pool":
                value = param.resolve_envvar_value(ctx)
                return value if isinstance(value, str) else None
    if source is click.core.ParameterSource.COMMANDLINE:
        return option_value(sys.argv if argv is None else argv, "-P", "--pool")
    return None


def option_value(argv: list[str], short: str, long: str) -> str | None:
    """The last value of an option in ``argv``: ``-P x``, ``-Px``, ``--pool x``, ``--pool=x``."""
    found = None
    for i, arg in enumerate(argv):
        if arg in (short, long) and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(long + "="):
            found = arg[len(long) + 1 :]
        elif arg.startswith(short) and not arg.startswith("--") and len(arg) > len(short):
            found = arg[len(short) :]
    return found


def check_internals() -> list[str]:
    """Logs ``broker.internals_mismatch`` when celery or kombu is installed in another release
    than the one worker/queue/transport.py and worker/queue/backend.py override the internals of
    (:func:`~worker.queue.transport.internals_mismatch`); the worker starts anyway."""
    messages = internals_mismatch()
    if messages:
        log.warning("broker.internals_mismatch", messages=messages)
    return messages


@setup_logging.connect
def _logging(**_: Any) -> None:
    """Celery's loggers through ours (one format); connected, Celery configures none itself."""
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)


@worker_init.connect
def _start(sender: Any = None, **_: Any) -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    # Celery's own line per finished task repeats the whole result; our test.done event says
    # the same in a few fields, so that logger only speaks up for problems
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    check_internals()
    from worker.app import app

    pool = check_pool(getattr(sender, "pool_cls", None) or app.conf.worker_pool, pool_asked_for())
    concurrency = getattr(sender, "concurrency", None)
    if not isinstance(concurrency, int) or concurrency < 1:
        # `-c auto`, which Celery resolves only after this signal: the app's own default, for
        # the threads and the sandboxes alike
        concurrency = concurrency_of(settings)
        if sender is not None:
            sender.concurrency = concurrency
    size = settings.pool_size or (1 if pool == "solo" else concurrency)  # solo: one at a time
    node = getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}"
    owner = settings.owner or node
    timer = readiness.ReadyTimer(human=settings.log_format == "console")
    confine(settings)
    try:
        readiness.pull_missing(settings, timer)  # a new host: what it lacks, from the registry
        pools = open_pools(settings, size=size, owner=owner)
    except Exception as exc:
        raise StartRefused(str(exc)) from exc
    try:
        check_images(pools)
        pools.alive_nodes = alive_nodes
        log.info("worker.prewarm", owner=owner, pools=pool, sandboxes_per_image=size)
        pools.start()
        check_prewarmed(pools)
        runtime = build(settings, pools, host=node, health=Health({}))
        runtime.health.run(
            runtime.judge, settings.ceilings().memory_mb, settings.chosen_languages()
        )
        check_healthy(runtime.health)
        timer.prewarmed()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            pools.close()  # whatever prewarm made
        if isinstance(exc, Exception):
            raise StartRefused(str(exc)) from exc
        raise
    try:
        for image in pools.specs:
            runtime.store.publish_identity(image, pools.identity(image))
    except RunnerError as exc:  # producers then just always send the compile step
        log.warning("worker.identity_not_published", error=str(exc))
    if settings.metrics_port:
        try:
            metrics.serve(settings.metrics_port, pools.state, node)
        except OSError as exc:
            with contextlib.suppress(Exception):
                pools.close()
            raise StartRefused(
                f"RUNNER_METRICS_PORT={settings.metrics_port}: cannot serve metrics ({exc})"
            ) from exc
    # the one part of the HTTP API a worker runs: its notice when a run is final (a key's
    # in-flight slot back, a webhook due), which the core announces without knowing the API
    from worker.api import records

    records.subscribe(runtime.redis)
    install(runtime)
    _start_reclaimer(node, 1 if pool == "solo" else concurrency, settings.queue)
    _start_announcer(runtime)
    readiness.await_connected(timer)
    log.info(
        "worker.ready",
        owner=owner,
        isolation=settings.isolation,
        pools=pools.state(),
        languages=runtime.health.healthy(),
    )


def confine(settings: Settings) -> None:
    """With RUNNER_HOST_SLICE, this process (every thread, whatever it starts) into its slice,
    made with RUNNER_HOST_CPUS's quota if need be, before a sandbox is made (they get it as
    their cgroup parent: :func:`worker.sandbox.open_pools`)."""
    if not settings.host_slice:
        return
    host = HostSlice(settings.host_slice, settings.host_cpus)
    try:
        host.create()
        host.enter()
    except OSError as exc:
        raise StartRefused(
            f"RUNNER_HOST_SLICE={host.name!r}: cannot confine this worker to it ({exc})"
        ) from exc
    log.info("worker.confined", slice=host.cgroup_parent, cpus=host.cpus or "no quota")


def check_images(pools: SandboxPools) -> None:
    """Every sandbox image is there: without one, every test of its languages would fail."""
    for key, spec in pools.specs.items():
        try:
            pools.identity(key)
        except SandboxError as exc:
            if isinstance(exc.__cause__, docker.errors.ImageNotFound):
                raise StartRefused(
                    f"sandbox image {spec.image} is missing; build it with scripts/build-images "
                    "or set RUNNER_REGISTRY to pull it"
                ) from exc
            raise


def check_prewarmed(pools: SandboxPools) -> None:
    """At least one sandbox of each image started (one that does not is in the log as
    sandbox.create_failed): an image none of whose sandboxes start would fail all its tests."""
    for state in pools.state():
        if not state["idle"] and not state["busy"]:
            raise StartRefused(
                f"no sandbox of {state['image']} would start: "
                f"{state.get('last_error') or 'see sandbox.create_failed'}"
            )


def check_healthy(health: Health) -> None:
    """At least one language passed its self-test: a worker that can judge none would only
    take tests to fail them."""
    if not health.healthy():
        failed = "; ".join(f"{name}: {reason}" for name, reason in health.reasons().items())
        raise StartRefused(f"no language passed its self-test ({failed})")


def _start_announcer(runtime: Runtime) -> None:
    """Announce what the self-tests said now, then every ANNOUNCE_EVERY_S, each time after the
    self-tests that failed have run again."""

    def announce() -> None:
        node, queue = runtime.host, runtime.settings.queue
        availability.announce(runtime.redis, queue, node, runtime.health.reasons())

    def loop() -> None:
        while not _announcer_stop.wait(availability.ANNOUNCE_EVERY_S):
            try:  # this thread must outlive any one bad round (Redis away, an engine restart)
                runtime.health.retest(runtime.judge, runtime.settings.ceilings().memory_mb)
                announce()
            except Exception as exc:
                log.warning("languages.announce_failed", error=str(exc)[:200])

    _announcer_stop.clear()
    try:
        announce()
    except RunnerError as exc:  # producers then know nothing of this worker yet, and accept
        log.warning("languages.announce_failed", error=str(exc)[:200])
    threading.Thread(target=loop, name="announcer", daemon=True).start()


def _start_reclaimer(node: str, slots: int, queue: str) -> None:
    """Name this process's broker consumer before it connects, beat for it once (so its first
    claims are never taken for a dead consumer's, and the fleet counts its ``slots``), then
    keep beating and reclaiming."""
    from worker.app import app

    consumer = f"{node}/{uuid.uuid4().hex[:8]}"
    options = dict(app.conf.broker_transport_options or {})
    app.conf.broker_transport_options = {**options, CONSUMER_OPTION: consumer}
    reclaimer = Reclaimer(app.connection_for_write, consumer, slots, (queue,))
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


@worker_ready.connect
def _ready(**_: Any) -> None:
    readiness.connected()  # the consumer is connected: time to ready, split, is logged


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    _reclaimer_stop.set()
    _announcer_stop.set()
    runtime = _current
    install(None)
    if runtime is not None:
        try:
            availability.withdraw(runtime.redis, runtime.settings.queue, runtime.host)
        except RunnerError as exc:  # it goes stale by itself
            log.warning("languages.withdraw_failed", error=str(exc)[:200])
        runtime.runner.close()
        log.info("worker.stopped", host=runtime.host)


@inspect_command()
def pool_state(state: Any) -> list[dict[str, object]]:
    """``runner status``: this worker's sandbox pools and their counters."""
    return current().runner.state() if _current is not None else []


@inspect_command()
def language_health(state: Any) -> dict[str, str]:
    """``runner status`` and ``runner ping``: the languages this worker runs, each with ``""``
    (its self-test passed) or why it failed."""
    return current().health.reasons() if _current is not None else {}
