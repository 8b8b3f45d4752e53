"""Compiled programs, content-addressed, shared between hosts through Redis: a cache.

A submission compiles once; every test task, on whatever host, gets the program by its key:
first from this process's memory, else from the cache Redis (``RUNNER_CACHE_URL``). The key
(:func:`worker.programs.program_key`) hashes the language, the exact compiler image (its
content tag), the files, the entry and the options, so a repeat submission of the same program
reuses both the program and a compile error; checkers and interactors are stored the same way.
Programs over the size cap are refused (the submission gets ``CE``).

Nothing load-bearing is here: a test whose program is gone compiles it again from the run's
source (kept with its test data, :mod:`worker.storage`), so losing an entry costs a compile,
never a verdict. That lets the store bound itself: files are zlib-compressed, and every entry
is indexed by last use (``runner:artifacts:lru``, sizes in ``runner:artifacts:size``); storing
one evicts the least recently used until the whole fits ``RUNNER_CACHE_BUDGET_MB``, in one Lua
script. An instance of its own with ``allkeys-lru`` is the second line; entries expire too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from pydantic import BaseModel

from worker.contract import CompileResult, Verdict
from worker.errors import BrokerError
from worker.programs import File
from worker.storage import LocalCache, pack, unpack

log = structlog.get_logger()
PREFIX = "runner:artifact:"
IDENTITY = "runner:identity:"  # image key -> content tag, published by workers at start
LRU = "runner:artifacts:lru"  # entry key -> time of last use (microseconds)
SIZES = "runner:artifacts:size"  # entry key -> stored bytes
TOTAL = "runner:artifacts:bytes"

# KEYS: the entry, LRU, SIZES, TOTAL. ARGV: its stored size, now, TTL, budget. Renews the
# entry and records its use (and size, once), then evicts the least recently used (any whose
# TTL has run out first) until the whole fits the budget; the entry itself never goes.
KEEP = """
local now, ttl, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('EXPIRE', KEYS[1], ttl)
if redis.call('HSETNX', KEYS[3], KEYS[1], ARGV[1]) == 1 then
    redis.call('INCRBY', KEYS[4], ARGV[1])
end
-- scores are microseconds, strictly increasing: uses in one microsecond keep their order
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local score = now
if #newest > 0 and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
redis.call('ZADD', KEYS[2], score, KEYS[1])
local total = tonumber(redis.call('GET', KEYS[4]) or '0')
local evicted = 0
while true do
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if #oldest == 0 or oldest[1] == KEYS[1] then break end
    if total <= budget and tonumber(oldest[2]) > now - ttl * 1000000 then break end
    redis.call('ZREM', KEYS[2], oldest[1])
    total = total - tonumber(redis.call('HGET', KEYS[3], oldest[1]) or '0')
    redis.call('HDEL', KEYS[3], oldest[1])
    redis.call('DEL', oldest[1])
    evicted = evicted + 1
end
redis.call('SET', KEYS[4], total)
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
return evicted
"""


@dataclass(frozen=True)
class Stored:
    """What a compile step left: the program's files, or (``verdict`` CE) why there are none;
    ``compile`` is the compiler's output, shown in results."""

    files: tuple[File, ...]
    verdict: Verdict | None = None
    message: str = ""
    compile: CompileResult | None = None

    def size(self) -> int:
        return sum(len(f.data) for f in self.files)


class ArtifactStore:
    def __init__(
        self,
        client: redis.Redis,
        ttl_s: int,
        max_bytes: int,
        cache_bytes: int,
        budget_bytes: int = 512 * 2**20,
    ) -> None:
        self._redis = client
        self._ttl = ttl_s
        self.max_bytes = max_bytes
        self._budget = budget_bytes
        self._keep: Any = None
        self._cache: LocalCache[Stored] = LocalCache(cache_bytes, Stored.size)

    def get(self, key: str) -> Stored | None:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            fields = self._redis.hgetall(PREFIX + key)
            if fields:
                self._used(PREFIX + key, 0)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read compiled program {key[:12]}: {exc}") from exc
        if not fields:
            return None
        outcome = _Outcome.model_validate_json(fields.pop(b"outcome"))
        files = tuple(
            File(name.decode()[5:], unpack(data), outcome.modes[name.decode()[5:]])
            for name, data in fields.items()
            if name.startswith(b"file:")
        )
        stored = Stored(files, outcome.verdict, outcome.message, outcome.compile)
        self._cache.put(key, stored)
        return stored

    def identity(self, image: str) -> str | None:
        """The content tag of ``image`` as the workers published it (None before any did)."""
        try:
            tag = self._redis.get(IDENTITY + image)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read the identity of {image}: {exc}") from exc
        return None if tag is None else tag.decode()

    def publish_identity(self, image: str, tag: str) -> None:
        """Let producers compute program keys (see :meth:`compiled`)."""
        try:
            self._redis.set(IDENTITY + image, tag)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot publish the identity of {image}: {exc}") from exc

    def put(self, key: str, stored: Stored) -> None:
        outcome = _Outcome(
            verdict=stored.verdict,
            message=stored.message,
            compile=stored.compile,
            modes={f.name: f.mode for f in stored.files},
        )
        mapping: dict[str, bytes] = {"outcome": outcome.model_dump_json().encode()}
        mapping.update({f"file:{f.name}": pack(f.data) for f in stored.files})
        try:
            with self._redis.pipeline() as pipe:
                pipe.hset(PREFIX + key, mapping=mapping)
                pipe.expire(PREFIX + key, self._ttl)
                pipe.execute()
            evicted = self._used(PREFIX + key, sum(len(v) for v in mapping.values()))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot store compiled program {key[:12]}: {exc}") from exc
        if evicted:
            log.info("artifacts.evicted", count=evicted)
        self._cache.put(key, stored)

    def _used(self, entry: str, size: int) -> int:
        """Mark an entry used now (and renew it); returns how many others were evicted."""
        if self._keep is None:
            self._keep = self._redis.register_script(KEEP)
        evicted = self._keep(
            keys=[entry, LRU, SIZES, TOTAL],
            args=[size, int(time.time() * 1e6), self._ttl, self._budget],
        )
        return int(evicted)

    def compiled(self, key: str) -> Stored | None:
        """An entry compiled successfully before, described without its files (the compile
        output, marked cached), renewed for the tests about to run; else None. Lets a
        producer skip the compile task (one task and one hop less per submission)."""
        try:
            raw = self._redis.hget(PREFIX + key, "outcome")
            if raw is not None:
                self._used(PREFIX + key, 0)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot look up compiled programs: {exc}") from exc
        if raw is None:
            return None
        outcome = _Outcome.model_validate_json(raw)
        if outcome.verdict is not None:
            return None
        output = outcome.compile.model_copy(update={"cached": True}) if outcome.compile else None
        return Stored((), compile=output)


class _Outcome(BaseModel):
    """How an entry describes itself in Redis, beside its files."""

    verdict: Verdict | None = None
    message: str = ""
    compile: CompileResult | None = None
    modes: dict[str, int] = {}
