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

The tenant holding the most tests in flight, while another tenant has some, may also have at
most ``RUNNER_TENANT_MAX_RUNNING`` tests *running* across the fleet (:func:`take_slot`): a test
past it goes back to the queue's lowest priority for a moment, so a tenant whose tests hold
their slots long (infinite loops until their wall limit) cannot take every slot; keep it below
the fleet's slots and another tenant always finds one free.

Admitted is not yet fair: the queue is first in, first out. A submission that takes its tenant
past ``RUNNER_TENANT_FAIR_TESTS`` tests in flight, while it holds more than any other tenant
with work in flight, is sent at the lowest priority (:data:`DEMOTED`), and workers claim every
waiting message of the default priority first; so a tenant with less in flight is not queued
behind a flood (:func:`priority_for`).

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
from typing import Any

import redis
import structlog

from worker.errors import BrokerError, SubmissionRejected
from worker.settings import Settings

log = structlog.get_logger()
TENANT = "runner:tenant:"  # + name: a hash of counters, tests and bytes in flight
RUNS = "runner:admitted"  # run -> "tenant tests bytes"
DEADLINES = "runner:admitted:deadline"  # run -> when it stops counting (its join never came)
TOTAL = "runner:admitted:tests"  # tests in flight, all tenants
TENANTS = "runner:admitted:tenants"  # tenant -> its tests in flight
DEFAULT_TENANT = "default"
MEMORY_CHECK_EVERY_S = 1.0
DEMOTED = 9  # kombu's Redis transport: the last of its priority levels (0, 3, 6, 9)

# The most tests in flight any tenant but ``tenant`` holds (runner:admitted:tenants, see
# TENANTS): both fairness rules hold back only the tenant holding the most.
_OTHERS = """
local function most_of_others(tenant)
    local most = 0
    local top = redis.call('ZREVRANGE', 'runner:admitted:tenants', 0, 1, 'WITHSCORES')
    for i = 1, #top, 2 do
        if top[i] ~= tenant and tonumber(top[i + 1]) > most then most = tonumber(top[i + 1]) end
    end
    return most
end
"""

# Shared by both scripts: forget one run (lapsed or ended), taking its figures off the counters.
_FORGET = """
local function forget(run)
    local record = redis.call('HGET', KEYS[1], run)
    if record then
        local tenant, tests, bytes = string.match(record, '^(%S+) (%d+) (%d+)$')
        redis.call('HINCRBY', 'runner:tenant:' .. tenant, 'tests', -tonumber(tests))
        redis.call('ZINCRBY', 'runner:admitted:tenants', -tonumber(tests), tenant)
        redis.call('HINCRBY', 'runner:tenant:' .. tenant, 'bytes', -tonumber(bytes))
        redis.call('DECRBY', KEYS[3], tests)
        redis.call('HDEL', KEYS[1], run)
    end
    redis.call('ZREM', KEYS[2], run)
end
"""

# KEYS: RUNS, DEADLINES, TOTAL, the tenant's hash. ARGV: run, tenant, tests, bytes, now,
# deadline, max tests in flight, the tenant's max tests, its max bytes, the keys' TTL.
# Returns {"ok", what the tenant held already, the most any other tenant holds} or {what is
# over, what the tenant (or the fleet) held already}. runner:admitted:tenants holds each
# tenant's tests in flight, for fairness.
ADMIT = (
    _FORGET
    + _OTHERS
    + """
local now = tonumber(ARGV[5])
for _, run in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
    forget(run)
end
local tests, bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[7]) > 0 and total + tests > tonumber(ARGV[7]) then
    return {'fleet', tostring(total)}
end
local held = redis.call('HMGET', KEYS[4], 'tests', 'bytes')
local held_tests, held_bytes = tonumber(held[1] or '0'), tonumber(held[2] or '0')
if tonumber(ARGV[8]) > 0 and held_tests + tests > tonumber(ARGV[8]) then
    return {'tests', tostring(held_tests)}
end
if tonumber(ARGV[9]) > 0 and held_bytes + bytes > tonumber(ARGV[9]) then
    return {'bytes', tostring(held_bytes)}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('INCRBY', KEYS[3], tests)
redis.call('HINCRBY', KEYS[4], 'tests', tests)
redis.call('HINCRBY', KEYS[4], 'bytes', bytes)
-- fairness demotes only the tenant holding the most
local others = most_of_others(ARGV[2])
redis.call('ZINCRBY', 'runner:admitted:tenants', tests, ARGV[2])
redis.call('EXPIRE', 'runner:admitted:tenants', ARGV[10])
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[10]) end
return {'ok', tostring(held_tests), tostring(others)}
"""
)

# KEYS: RUNS, DEADLINES, TOTAL. ARGV: run.
RELEASE = _FORGET + "forget(ARGV[1])\nreturn 1\n"


# KEYS[1]: the tenant's running set (test -> when its claim lapses), KEYS[2]: each tenant's
# tests in flight. ARGV: test, now, lapse, cap, tenant. Returns 1 when the test may run (and
# records it), 0 when the tenant is at its cap while another tenant has work in flight and
# holds less: only the tenant holding the most is held back, never one alone.
TAKE_SLOT = (
    _OTHERS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
        and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    local mine = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[5]) or '0')
    local other = most_of_others(ARGV[5])
    if other > 0 and mine >= other then
        return 0
    end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) - tonumber(ARGV[2])))
return 1
"""
)


def running_key(tenant: str) -> str:
    return f"{TENANT}{tenant}:running"


def take_slot(client: redis.Redis, tenant: str, test: str, cap: int, lapse_s: int) -> bool:
    """Whether a test of ``tenant`` may run now: fewer than ``cap`` of its tests run across the
    fleet (0: no cap), or it is not the tenant holding the most tests in flight while another
    has some. A test taken is recorded until :func:`give_slot`, or ``lapse_s`` (a worker
    killed mid-test gives nothing back)."""
    if not cap:
        return True
    now = time.time()
    try:
        taken = client.eval(
            TAKE_SLOT, 2, running_key(tenant), TENANTS, test, now, now + lapse_s, cap, tenant
        )
    except redis.RedisError as exc:
        raise BrokerError(f"cannot count {tenant!r}'s running tests: {exc}") from exc
    return bool(taken)


def give_slot(client: redis.Redis, tenant: str, test: str) -> None:
    try:
        client.zrem(running_key(tenant), test)
    except redis.RedisError as exc:  # it lapses by itself
        log.warning("admission.slot_not_given_back", error=str(exc))


def tenant_of(name: str | None) -> str:
    return name or DEFAULT_TENANT


def priority_for(ticket: Ticket, tests: int, fair_tests: int) -> int | None:
    """The priority a run's tasks are sent with: :data:`DEMOTED` when it takes its tenant past
    its fair share (``fair_tests``, 0: none) while another tenant has work in flight and holds
    less; else ``None`` (the default). Only the tenant holding the most is ever demoted: one
    that has more in flight because another's tests hold the slots is not; and a tenant alone
    is not, since demoting it would only slow it."""
    held = ticket.held_before + tests
    if fair_tests and held > fair_tests and 0 < ticket.others < held:
        return DEMOTED
    return None


@dataclass(frozen=True)
class Ticket:
    """What admission recorded for one run; the run's join gives it back (:func:`release`)."""

    tenant: str
    run: str
    held_before: int = 0  # the tenant's tests in flight when this run was admitted
    others: int = 0  # the most tests in flight of any other tenant then


class Admission:
    """The checks above, for one process (its memory check is cached for a second)."""

    def __init__(
        self, settings: Settings, broker: redis.Redis | None, backend: redis.Redis
    ) -> None:
        self.settings = settings
        self._broker = broker
        self._backend = backend
        self._script: Any = None
        self._lock = threading.Lock()
        self._memory_checked = 0.0
        self._memory_full: str | None = None

    def admit(self, tenant: str, run: str, tests: int, data_bytes: int) -> Ticket:
        """Record the run for its tenant, or raise :class:`SubmissionRejected`."""
        s = self.settings
        try:
            full = self._memory_full_now()
            if full:
                raise SubmissionRejected("fleet_busy", f"{full}; retry later")
            if self._script is None:
                self._script = self._backend.register_script(ADMIT)
            now = int(time.time())
            answer = self._script(
                keys=[RUNS, DEADLINES, TOTAL, TENANT + tenant],
                args=[
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
            raise SubmissionRejected(
                "tenant_busy",
                f"tenant {tenant!r} holds {held // 1024} KB of test data in flight; "
                f"{data_bytes // 1024} KB more would pass its limit of "
                f"{s.tenant_max_data_mb} MB; retry when some have finished",
            )
        return Ticket(tenant, run, held, int(answer[2]))

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
        client.eval(RELEASE, 3, RUNS, DEADLINES, TOTAL, ticket.run)
    except redis.RedisError as exc:
        raise BrokerError(f"cannot release run {ticket.run}: {exc}") from exc
