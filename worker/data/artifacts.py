"""Compiled programs, content-addressed, shared between hosts through Redis: a cache.

A submission compiles once; every test task, on whatever host, gets the program by its key:
first from this process's memory, else from the cache Redis (``RUNNER_CACHE_URL``). The key
(:func:`worker.programs.program_key`) hashes the language, the exact compiler image (its
content tag), the files, the entry and the options, so a repeat submission of the same program
reuses both the program and a compile error; checkers and interactors are stored the same way.
Programs over the size cap are refused (the submission gets ``CE``).

Nothing load-bearing is here: a test whose program is gone compiles it again from the run's
source (kept with its test data, :mod:`worker.data.storage`), so losing an entry costs a compile,
never a verdict. That lets the store bound itself: files are zlib-compressed, and every entry
is indexed by last use (``runner:artifacts:lru``, sizes in ``runner:artifacts:size``); storing
one evicts the least recently used until the whole fits ``RUNNER_CACHE_BUDGET_MB``, in one Lua
script. An instance of its own with ``allkeys-lru`` is the second line; entries expire too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
import structlog
from pydantic import BaseModel

from worker.contract import CompileResult, Verdict
from worker.data.storage import LocalCache, pack, unpack
from worker.errors import BrokerError
from worker.keyspace import (
    ARTIFACT_KEEP,
    ARTIFACTS_BYTES,
    ARTIFACTS_LRU,
    ARTIFACTS_SIZE,
    artifact_key,
    identity_key,
)
from worker.programs import File

log = structlog.get_logger()


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
        self._cache: LocalCache[Stored] = LocalCache(cache_bytes, Stored.size)

    def get(self, key: str) -> Stored | None:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            fields = self._redis.hgetall(artifact_key(key))
            if fields:
                self._used(artifact_key(key), 0)
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
            tag = self._redis.get(identity_key(image))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read the identity of {image}: {exc}") from exc
        return None if tag is None else tag.decode()

    def publish_identity(self, image: str, tag: str) -> None:
        """Let producers compute program keys (see :meth:`compiled`)."""
        try:
            self._redis.set(identity_key(image), tag)
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
                pipe.hset(artifact_key(key), mapping=mapping)
                pipe.expire(artifact_key(key), self._ttl)
                pipe.execute()
            evicted = self._used(artifact_key(key), sum(len(v) for v in mapping.values()))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot store compiled program {key[:12]}: {exc}") from exc
        if evicted:
            log.info("artifacts.evicted", count=evicted)
        self._cache.put(key, stored)

    def _used(self, entry: str, size: int) -> int:
        """Mark an entry used now (and renew it); returns how many others were evicted."""
        evicted = ARTIFACT_KEEP(
            self._redis,
            [entry, ARTIFACTS_LRU, ARTIFACTS_SIZE, ARTIFACTS_BYTES],
            [size, int(time.time() * 1e6), self._ttl, self._budget],
        )
        return int(evicted)

    def compiled(self, key: str) -> Stored | None:
        """An entry compiled successfully before, described without its files (the compile
        output, marked cached), renewed for the tests about to run; else None. Lets a
        producer skip the compile task (one task and one hop less per submission)."""
        try:
            raw = self._redis.hget(artifact_key(key), "outcome")
            if raw is not None:
                self._used(artifact_key(key), 0)
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
