"""Problems as data: registered once (tests, limits, checker, interactor, groups), judged by id.

A backend that judges thousands of submissions of one problem sends its tests once, to the
task ``runner.problem`` (:meth:`worker.client.Client.register_problem`); it gets back the
problem's id, a hash of everything that judges it (so the same problem registered twice is
one), and then submits ``{"problem": id, "language": ..., "source": ...}``. Registering runs on
a worker: its checker and interactor are compiled there (content-addressed, cached like any
program), so one that does not compile refuses the problem (``RJ``) before any submission
meets it.

A problem lives in the result backend's Redis, ``runner:problem:<id>``, for
``RUNNER_PROBLEM_EXPIRES_S`` after it was registered or last judged; its test data and its
programs' sources are stored once, content-addressed, and kept as long (:mod:`worker.data.storage`),
and every host reads them from there (and keeps what it read last in memory).
"""

from __future__ import annotations

import hashlib
import time

import redis

from worker.contract import Judging
from worker.data.storage import DataStore
from worker.errors import BrokerError
from worker.keyspace import problem_key
from worker.kinds import kind_of, programs
from worker.messages import DataRef, ProblemRecord


def problem_id(judging: Judging) -> str:
    """The id of a problem: a hash of its tests, limits, checker, interactor and groups."""
    digest = hashlib.sha256()

    def part(value: object) -> None:
        raw = value if isinstance(value, bytes) else repr(value).encode()
        digest.update(len(raw).to_bytes(8, "big") + raw)

    for test in judging.tests:
        for value in (test.id, test.stdin, test.expected_stdout, test.group):
            part(value)
    limits = judging.limits
    for name in sorted(type(limits).model_fields):
        part(getattr(limits, name))
    for program in (judging.checker, judging.interactor):
        for said in [repr(None)] if program is None else kind_of(program).identity(program):
            part(said)
    for group in judging.groups:
        for field in (group.name, group.points, group.policy, *group.depends_on, *group.tests):
            part(field)
    return "p" + digest.hexdigest()[:40]


def refs_of(record: ProblemRecord) -> list[str]:
    """Every stored digest a problem needs."""
    blobs = [blob for t in record.tests for blob in (t.stdin, t.expected_stdout)]
    for program in programs(record.judging).values():
        blobs += [blob for _, blob in program.files]
    return sorted({blob.ref for blob in blobs if isinstance(blob, DataRef)})


class ProblemStore:
    def __init__(self, client: redis.Redis, data: DataStore, ttl_s: int) -> None:
        self._redis = client
        self._data = data
        self.ttl_s = ttl_s

    def put(self, pid: str, record: ProblemRecord, packed: dict[str, bytes]) -> None:
        """Store a problem and its data, kept ``ttl_s`` from now."""
        until = int(time.time()) + self.ttl_s
        self._data.put_many(packed, kept_until=until)
        self._data.keep(refs_of(record), until)  # what was stored before, kept as long
        try:
            self._redis.set(problem_key(pid), record.model_dump_json(), ex=self.ttl_s)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot store problem {pid}: {exc}") from exc

    def get(self, pid: str) -> ProblemRecord | None:
        """The problem, renewed (with its data) once half its time has passed; None if there
        is none (never registered, or expired)."""
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(problem_key(pid))
                pipe.ttl(problem_key(pid))
                raw, left = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read problem {pid}: {exc}") from exc
        if raw is None:
            return None
        record = ProblemRecord.model_validate_json(raw)
        if 0 <= left < self.ttl_s // 2:
            until = int(time.time()) + self.ttl_s
            self._data.keep(refs_of(record), until)
            try:
                self._redis.expire(problem_key(pid), self.ttl_s)
            except redis.RedisError as exc:
                raise BrokerError(f"cannot renew problem {pid}: {exc}") from exc
        return record
