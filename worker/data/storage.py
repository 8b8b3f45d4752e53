"""Test data and sources kept out of task messages: content-addressed, compressed, in Redis.

A test's stdin or expected output over ``RUNNER_INLINE_DATA_KB`` rides the queue as a
reference (``{"ref": sha256, "size": bytes}``), not as bytes: the broker's messages stay small
whatever the tests hold, so a big submission never slows the claim of everyone else's tests.
The bytes are stored once per content (the same input in many submissions is one key),
zlib-compressed, under ``runner:data:<sha256>``, and each worker keeps the ones it read last in
its memory, like compiled programs.

This is load-bearing state, not a cache: a test whose data were gone could not be judged. It
lives in the result backend's Redis (``noeviction``). Each run holds what it uses (a count per
digest, taken before the data is stored or renewed); once no run in flight holds a digest, its
data expires after :data:`LINGER_S`, so a flood's inputs leave Redis with its runs, not an
hour later. Data of a run whose join never came expires with results. What a tenant may have
stored at once is capped by admission (:mod:`worker.producer.admission`), which counts the
compressed bytes of its runs in flight.

A registered problem's data (and its checker's and interactor's sources) is *kept*: stored
with the problem's expiry, recorded in ``runner:kept`` (digest -> until when), and never
given the short expiry by a run's end, whichever runs share the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import redis

from worker.contract import ProgramSpec, TestCase
from worker.errors import BrokerError
from worker.keyspace import DATA, DATA_HOLD, DATA_LET_GO, HOLDS, KEPT, data_key, run_key
from worker.messages import Blob, DataRef, StoredProgram, TestSpec

LEVEL = 1  # fast: 8 MB in about 40 ms; text test data still shrinks 3-10x
LINGER_S = 60  # how long data no run in flight uses stays (a repeat finds it in place)


def pack(data: bytes) -> bytes:
    return zlib.compress(data, LEVEL)


def unpack(data: bytes) -> bytes:
    return zlib.decompress(data)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


V = TypeVar("V")


class LocalCache(Generic[V]):
    """What this process read last from Redis, least recently used dropped first, within
    ``max_bytes`` (``size`` of a value: the bytes it holds). Thread-safe."""

    def __init__(self, max_bytes: int, size: Callable[[V], int]) -> None:
        self._items: OrderedDict[str, V] = OrderedDict()
        self._max = max_bytes
        self._size = size
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: str, value: V) -> None:
        size = self._size(value)
        if size > self._max:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._held += size
            while self._held > self._max:
                _, dropped = self._items.popitem(last=False)
                self._held -= self._size(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._held = 0


class DataStore:
    """Put and get test data by content; a bounded in-process cache of what was read."""

    def __init__(self, client: redis.Redis, ttl_s: int, cache_bytes: int = 0) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._cache: LocalCache[bytes] = LocalCache(cache_bytes, len)

    def hold(self, run: str, refs: list[str]) -> None:
        """Count ``run`` among the users of each digest, before storing: data a run holds
        never gets the short expiry of :meth:`let_go`."""
        if not refs:
            return
        try:
            DATA_HOLD(self._redis, [HOLDS, run_key(run, "data")], [self._ttl, *refs])
        except redis.RedisError as exc:
            raise BrokerError(f"cannot record test data of run {run}: {exc}") from exc

    def let_go(self, run: str) -> None:
        """The run is over: data no other run in flight holds expires in :data:`LINGER_S`."""
        try:
            keys = [HOLDS, run_key(run, "data"), KEPT]
            DATA_LET_GO(self._redis, keys, [LINGER_S, int(time.time()), DATA])
        except redis.RedisError as exc:
            raise BrokerError(f"cannot let go of run {run}'s test data: {exc}") from exc

    def put_many(self, packed: dict[str, bytes], kept_until: int | None = None) -> None:
        """Store each packed blob (by its digest) unless already there, and renew every one:
        for results' time, or (``kept_until``, a time) for as long as a problem keeps it.
        Renewing never shortens what is already longer."""
        if not packed:
            return
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for ref, body in packed.items():
                    if kept_until is None:
                        pipe.set(data_key(ref), body, nx=True, ex=self._ttl)
                        pipe.expire(data_key(ref), self._ttl, gt=True)
                    else:
                        pipe.set(data_key(ref), body, nx=True, exat=kept_until)
                        pipe.expireat(data_key(ref), kept_until, gt=True)
                        pipe.zadd(KEPT, {ref: kept_until}, gt=True)
                if kept_until is not None:
                    pipe.zremrangebyscore(KEPT, "-inf", int(time.time()))
                    pipe.expireat(KEPT, kept_until, nx=True)  # first time: no expiry to compare
                    pipe.expireat(KEPT, kept_until, gt=True)
                pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot store test data: {exc}") from exc

    def keep(self, refs: list[str], until: int) -> None:
        """Keep stored data until ``until`` (a problem's), never shortening it."""
        if not refs:
            return
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for ref in refs:
                    pipe.expireat(data_key(ref), until, gt=True)
                pipe.zadd(KEPT, dict.fromkeys(refs, until), gt=True)
                pipe.expireat(KEPT, until, nx=True)
                pipe.expireat(KEPT, until, gt=True)
                pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot keep test data: {exc}") from exc

    def get(self, ref: str) -> bytes | None:
        cached = self._cache.get(ref)
        if cached is not None:
            return cached
        try:
            body = self._redis.get(data_key(ref))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read test data {ref[:12]}: {exc}") from exc
        if body is None:
            return None
        data = unpack(body)
        self._cache.put(ref, data)
        return data


def outline(data: bytes | None, inline_bytes: int, packed: dict[str, bytes]) -> Blob:
    """How one test field rides in a message: base64 text when small, else a reference (its
    bytes compressed into ``packed``, for :meth:`DataStore.put_many`)."""
    if data is None:
        return None
    if len(data) <= inline_bytes:
        return base64.b64encode(data).decode()
    ref = digest(data)
    if ref not in packed:
        packed[ref] = pack(data)
    return DataRef(ref=ref, size=len(data))


def inline(field: Blob, store: DataStore) -> bytes | None:
    """The bytes of one test field as :func:`outline` sent it."""
    if field is None:
        return None
    if isinstance(field, str):
        return base64.b64decode(field)
    data = store.get(field.ref)
    if data is None:
        raise BrokerError(f"test data {field.ref[:12]} expired or lost")
    return data


def stored_program(
    program: ProgramSpec, packed: dict[str, bytes], static: bool = False
) -> StoredProgram:
    """A program's files by reference (always stored, to be compiled again when needed)."""
    return StoredProgram(
        language=program.language,
        files=[(f.name, outline(f.data, -1, packed)) for f in program.files],
        entry=program.entry,
        options=list(program.options),
        static=static,
    )


def test_specs(
    tests: Iterable[TestCase], inline_bytes: int, packed: dict[str, bytes]
) -> list[TestSpec]:
    """Each test's data inline when small, else stored by reference (into ``packed``)."""
    return [
        TestSpec(
            id=t.id,
            stdin=outline(t.stdin, inline_bytes, packed),
            expected_stdout=outline(t.expected_stdout, inline_bytes, packed),
            group=t.group,
        )
        for t in tests
    ]


def program_files(program: StoredProgram, store: DataStore) -> list[tuple[str, bytes]]:
    """A stored program's files, read back."""
    files = []
    for name, blob in program.files:
        data = inline(blob, store)
        if data is None:
            raise BrokerError(f"{program.language} program file {name!r} was not stored")
        files.append((name, data))
    return files
