"""Admission: the fleet refuses new work before its shared state fills, and no tenant holds
more than its share of it.

Every submission passes here after it is validated and before anything of it is stored or
queued (in :meth:`worker.client.Client.submit` and in the task ``runner.submit``). It is
refused, as an ``RJ`` result with a precise code, never accepted and then lost, when

- ``fleet_busy``: the broker's or result backend's Redis uses ``RUNNER_REDIS_HIGH_WATER_PCT``
  of its ``maxmemory`` or more (Redis then still has room for the work already accepted to
  finish: results, chord state, acks), or the tests waiting in the queue plus this
  submission's would exceed ``RUNNER_MAX_QUEUED_TESTS``;
- ``tenant_busy``: the submission's tenant (its ``tenant`` field, else ``default``) would have
  more than ``RUNNER_TENANT_MAX_TESTS`` tests in flight, or more than
  ``RUNNER_TENANT_MAX_DATA_MB`` of stored test data (compressed).

A tenant's runs in flight are a hash ``runner:tenant:<name>`` (run id -> "tests bytes
deadline"); the join of each run removes its entry, and an entry past its deadline (a run whose
join never came) stops counting. Checking and recording are one Lua script, so two producers
cannot both take a tenant's last place.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from worker.errors import BrokerError, SubmissionRejected
from worker.settings import Settings

TENANT = "runner:tenant:"
DEFAULT_TENANT = "default"
MEMORY_CHECK_EVERY_S = 1.0

# KEYS[1]: the tenant's hash. ARGV: run, tests, bytes, now, deadline, max tests, max bytes,
# the hash's TTL. Returns {"ok"} or {what is over, what the tenant holds already}.
ADMIT = """
local tests, bytes = 0, 0
local now = tonumber(ARGV[4])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local t, b, d = string.match(entries[i + 1], '(%d+) (%d+) (%d+)')
    if tonumber(d) < now then
        redis.call('HDEL', KEYS[1], entries[i])
    else
        tests = tests + tonumber(t)
        bytes = bytes + tonumber(b)
    end
end
local max_tests, max_bytes = tonumber(ARGV[6]), tonumber(ARGV[7])
if max_tests > 0 and tests + tonumber(ARGV[2]) > max_tests then
    return {'tests', tostring(tests)}
end
if max_bytes > 0 and bytes + tonumber(ARGV[3]) > max_bytes then
    return {'bytes', tostring(bytes)}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[8])
return {'ok'}
"""


def tenant_of(name: str | None) -> str:
    return name or DEFAULT_TENANT


@dataclass(frozen=True)
class Ticket:
    """What admission recorded for one run; the run's join gives it back (:func:`release`)."""

    tenant: str
    run: str


class Admission:
    """The checks above, for one process (its memory check is cached for a second)."""

    def __init__(self, settings: Settings, broker: redis.Redis, backend: redis.Redis) -> None:
        self.settings = settings
        self._broker = broker
        self._backend = backend
        self._script: Any = None
        self._lock = threading.Lock()
        self._memory_checked = 0.0
        self._memory_full: str | None = None

    def admit(self, tenant: str, run: str, tests: int, data_bytes: int) -> Ticket:
        """Record the run for its tenant, or raise :class:`SubmissionRejected`."""
        try:
            full = self._memory_full_now()
            if full:
                raise SubmissionRejected("fleet_busy", f"{full}; retry later")
            self._check_queue(tests)
            if self._script is None:
                self._script = self._backend.register_script(ADMIT)
            s = self.settings
            now = int(time.time())
            answer = self._script(
                keys=[TENANT + tenant],
                args=[
                    run,
                    tests,
                    data_bytes,
                    now,
                    now + s.result_expires_s,
                    s.tenant_max_tests,
                    s.tenant_max_data_mb * 1024 * 1024,
                    s.result_expires_s,
                ],
            )
        except redis.RedisError as exc:
            raise BrokerError(f"cannot admit the submission: {exc}") from exc
        what = answer[0].decode()
        if what == "tests":
            held = int(answer[1])
            raise SubmissionRejected(
                "tenant_busy",
                f"tenant {tenant!r} has {held} tests in flight; {tests} more would pass its "
                f"limit of {self.settings.tenant_max_tests}; retry when some have finished",
            )
        if what == "bytes":
            held = int(answer[1])
            raise SubmissionRejected(
                "tenant_busy",
                f"tenant {tenant!r} holds {held // 1024} KB of test data in flight; "
                f"{data_bytes // 1024} KB more would pass its limit of "
                f"{self.settings.tenant_max_data_mb} MB; retry when some have finished",
            )
        return Ticket(tenant, run)

    def _check_queue(self, tests: int) -> None:
        bound = self.settings.max_queued_tests
        if not bound:
            return
        queued = int(self._broker.llen(self.settings.queue))
        if queued + tests > bound:
            raise SubmissionRejected(
                "fleet_busy",
                f"{queued} tests are waiting in the queue; {tests} more would pass its bound "
                f"of {bound}; retry later",
            )

    def _memory_full_now(self) -> str | None:
        """Why new work must wait (a Redis over its high-water mark), or None; looked up at
        most once a second, since every submission asks."""
        with self._lock:
            if time.monotonic() - self._memory_checked < MEMORY_CHECK_EVERY_S:
                return self._memory_full
        full = None
        for role, client in (("broker", self._broker), ("result backend", self._backend)):
            info = client.info("memory")
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
    """The run is over: its tests and data no longer count against its tenant."""
    try:
        client.hdel(TENANT + ticket.tenant, ticket.run)
    except redis.RedisError as exc:
        raise BrokerError(f"cannot release run {ticket.run}: {exc}") from exc
