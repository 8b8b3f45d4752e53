"""Compiled programs, content-addressed, shared between hosts through Redis.

A submission compiles once; every test task, on whatever host, gets the program by its key:
first from this process's memory, else from Redis. The key hashes the language, the exact
compiler image (its content tag) and the source, so a repeat submission of the same source
reuses both the program and a compile error. Entries expire with results; programs over the
size cap are refused (the submission gets ``CE``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from worker.errors import BrokerError
from worker.sandbox.protocol import File

log = structlog.get_logger()
PREFIX = "runner:artifact:"
IDENTITY = "runner:identity:"  # image key -> content tag, published by workers at start


def artifact_key(language: str, compiler: str, source: bytes) -> str:
    digest = hashlib.sha256()
    for part in (language.encode(), compiler.encode(), source):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    """What a compile step left for the tests: the program files, or why there are none."""

    files: tuple[File, ...]
    outcome: dict[str, Any]  # verdict (None, CE or IE), message, compile result


class ArtifactStore:
    def __init__(self, client: redis.Redis, ttl_s: int, max_bytes: int, cache_bytes: int) -> None:
        self._redis = client
        self._ttl = ttl_s
        self.max_bytes = max_bytes
        self._cache: OrderedDict[str, Stored] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Stored | None:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            fields = self._redis.hgetall(PREFIX + key)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read compiled program {key[:12]}: {exc}") from exc
        if not fields:
            return None
        outcome = json.loads(fields.pop(b"outcome"))
        files = tuple(
            File(name.decode()[5:], data, int(outcome["modes"][name.decode()[5:]]))
            for name, data in fields.items()
            if name.startswith(b"file:")
        )
        stored = Stored(files, outcome)
        self._remember(key, stored)
        return stored

    def publish_identity(self, image: str, tag: str) -> None:
        """Let producers compute artifact keys (see :func:`cached_compile`)."""
        try:
            self._redis.set(IDENTITY + image, tag)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot publish the identity of {image}: {exc}") from exc

    def put(self, key: str, stored: Stored) -> None:
        outcome = {**stored.outcome, "modes": {f.name: f.mode for f in stored.files}}
        mapping: dict[str, bytes] = {"outcome": json.dumps(outcome).encode()}
        mapping.update({f"file:{f.name}": f.data for f in stored.files})
        try:
            with self._redis.pipeline() as pipe:
                pipe.hset(PREFIX + key, mapping=mapping)
                pipe.expire(PREFIX + key, self._ttl)
                pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot store compiled program {key[:12]}: {exc}") from exc
        self._remember(key, Stored(stored.files, outcome))

    def _remember(self, key: str, stored: Stored) -> None:
        size = sum(len(f.data) for f in stored.files)
        if size > self._cache_bytes:
            return
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = stored
            self._cached += size
            while self._cached > self._cache_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= sum(len(f.data) for f in dropped.files)


def compiled_message(key: str | None, outcome: dict[str, Any], cached: bool) -> dict[str, Any]:
    """What the compile step hands every test task and the join (small, JSON)."""
    message = {"key": key, **{k: v for k, v in outcome.items() if k != "modes"}}
    if message.get("compile"):
        message["compile"] = {**message["compile"], "cached": cached}
    return message


def cached_compile(
    client: redis.Redis, language: str, image: str, source: bytes, ttl_s: int
) -> dict[str, Any] | None:
    """The compile step's message for a source compiled successfully before, or None.

    Lets a producer skip the compile task (one task and one hop less per submission). The
    image identity comes from the workers; a mismatch or a miss just means no shortcut."""
    try:
        tag = client.get(IDENTITY + image)
        if tag is None:
            return None
        key = artifact_key(language, tag.decode(), source)
        with client.pipeline() as pipe:
            pipe.hget(PREFIX + key, "outcome")
            pipe.expire(PREFIX + key, ttl_s)  # keep it alive for the tests about to run
            raw, _ = pipe.execute()
    except redis.RedisError as exc:
        raise BrokerError(f"cannot look up compiled programs: {exc}") from exc
    if raw is None:
        return None
    outcome = json.loads(raw)
    return compiled_message(key, outcome, cached=True) if outcome.get("verdict") is None else None
