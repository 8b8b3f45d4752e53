"""Admission: the fleet refuses new work before its shared state fills, and no tenant holds
more than its share of it.

Every submission passes here after it is validated and before anything of it is stored or
queued (in :meth:`worker.client.Client.submit` and in the task ``runner.submit``). It is
refused, as an ``RJ`` result with a precise code, never accepted and then lost, when

- ``fleet_busy``: the broker's or result backend's Redis uses ``RUNNER_REDIS_HIGH_WATER_PCT``
  of its ``maxmemory`` or more (Redis then still has room for the work already accepted to
  finish: results, chord state, acks), or the tests in flight (admitted, not yet joined:
  waiting in the queue, or behind their compile step, or running) plus this submission's
  would exceed ``RUNNER_MAX_QUEUED_TESTS``;
- ``tenant_busy``: the submission's tenant (its ``tenant`` field, else ``default``) would have
  more than ``RUNNER_TENANT_MAX_TESTS`` tests in flight, or more than
  ``RUNNER_TENANT_MAX_DATA_MB`` of stored test data (compressed).

Between admitted submissions, fairness is the broker's part: each compile and test task names
its tenant, and workers take the waiting task of the tenant running the fewest first, within a
share of the fleet per tenant (:mod:`worker.queue.fairqueue`).

Runs in flight are recorded in ``runner:admitted`` (run -> tenant, tests, bytes), with
counters for the whole fleet and per tenant (``runner:tenant:<name>``); the join of each run
takes its figures off (:func:`release`), and a run past its deadline (one whose join never
came: ``RUNNER_RESULT_EXPIRES_S`` after admission) stops counting. Checking and recording are
one Lua script, so two producers cannot both take the last place.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
import structlog

from worker.errors import BrokerError, SubmissionRejected
from worker.keyspace import (
    ADMISSION_ADMIT,
    ADMISSION_RELEASE,
    ADMITTED,
    ADMITTED_DEADLINE,
    ADMITTED_TESTS,
    TENANT,
    tenant_key,
)
from worker.settings import Settings

log = structlog.get_logger()
DEFAULT_TENANT = "default"
MEMORY_CHECK_EVERY_S = 1.0


def tenant_of(name: str | None) -> str:
    return name or DEFAULT_TENANT


@dataclass(frozen=True)
class Ticket:
    """What admission recorded for one run; the run's join gives it back (:func:`release`)."""

    tenant: str
    run: str


class Admission:
    """The checks above, for one process (its memory check is cached for a second)."""

    def __init__(
        self, settings: Settings, broker: redis.Redis | None, backend: redis.Redis
    ) -> None:
        self.settings = settings
        self._broker = broker
        self._backend = backend
        self._lock = threading.Lock()
        self._memory_checked = 0.0
        self._memory_full: str | None = None

    def peek(self, tenant: str, tests: int) -> None:
        """Raise what :meth:`admit` would raise for ``tests`` more tests and any stored data at
        all (every run stores its source), recording nothing."""
        self._check(tenant, "", tests, 1, peek=True)

    def admit(self, tenant: str, run: str, tests: int, data_bytes: int) -> Ticket:
        """Record the run for its tenant, or raise :class:`SubmissionRejected`."""
        self._check(tenant, run, tests, data_bytes, peek=False)
        return Ticket(tenant, run)

    def _check(self, tenant: str, run: str, tests: int, data_bytes: int, peek: bool) -> None:
        s = self.settings
        try:
            full = self._memory_full_now()
            if full:
                raise SubmissionRejected("fleet_busy", f"{full}; retry later")
            now = int(time.time())
            answer = ADMISSION_ADMIT(
                self._backend,
                [ADMITTED, ADMITTED_DEADLINE, ADMITTED_TESTS, tenant_key(tenant)],
                [
                    run,
                    tenant,
                    tests,
                    data_bytes,
                    now,
                    now + s.result_expires_s,
                    s.max_queued_tests,
                    s.tenant_max_tests,
                    s.tenant_max_data_mb * 2**20,
                    s.result_expires_s,
                    "peek" if peek else "record",
                    TENANT,
                ],
            )
        except redis.RedisError as exc:
            raise BrokerError(f"cannot admit the submission: {exc}") from exc
        what = answer[0].decode()
        held = int(answer[1]) if len(answer) > 1 else 0
        if what == "fleet":
            raise SubmissionRejected(
                "fleet_busy",
                f"{held} tests are in flight; {tests} more would pass the fleet's bound of "
                f"{s.max_queued_tests}; retry later",
            )
        if what == "tests":
            raise SubmissionRejected(
                "tenant_busy",
                f"tenant {tenant!r} has {held} tests in flight; {tests} more would pass its "
                f"limit of {s.tenant_max_tests}; retry when some have finished",
            )
        if what == "bytes":
            more = "more" if peek else f"{data_bytes // 1024} KB more"
            raise SubmissionRejected(
                "tenant_busy",
                f"tenant {tenant!r} holds {held // 1024} KB of test data in flight; "
                f"{more} would pass its limit of {s.tenant_max_data_mb} MB; retry when some "
                "have finished",
            )

    def _memory_full_now(self) -> str | None:
        """Why new work must wait (a Redis over its high-water mark), or None; looked up at
        most once a second, since every submission asks."""
        with self._lock:
            if time.monotonic() - self._memory_checked < MEMORY_CHECK_EVERY_S:
                return self._memory_full
        full = None
        clients = (("broker", self._broker), ("result backend", self._backend))
        for role, client in clients:
            if client is None:
                continue
            try:
                info = client.info("memory")
            except redis.RedisError:
                if client is self._backend:
                    raise  # admission cannot record the run either
                # kombu reaches the broker its own way (failover, sockets): no figure, no refusal
                log.warning("admission.broker_unchecked", reason="INFO failed")
                continue
            limit = int(info.get("maxmemory") or 0)
            used = int(info.get("used_memory") or 0)
            if limit and used * 100 >= limit * self.settings.redis_high_water_pct:
                full = (
                    f"the {role}'s Redis uses {used // 2**20} MB of its {limit // 2**20} MB "
                    f"(new work stops at {self.settings.redis_high_water_pct} %)"
                )
                break
        with self._lock:
            self._memory_checked = time.monotonic()
            self._memory_full = full
        return full


def release(client: redis.Redis, ticket: Ticket) -> None:
    """The run is over: its tests and data no longer count (a second call does nothing)."""
    try:
        keys = [ADMITTED, ADMITTED_DEADLINE, ADMITTED_TESTS]
        ADMISSION_RELEASE(client, keys, [ticket.run, TENANT])
    except redis.RedisError as exc:
        raise BrokerError(f"cannot release run {ticket.run}: {exc}") from exc
