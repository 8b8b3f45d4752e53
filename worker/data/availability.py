"""Which languages the fleet can judge now: what each worker's self-tests said
(:mod:`worker.judging.selftest`), announced in Redis and read by every producer.

Each worker announces, at its start and every :data:`ANNOUNCE_EVERY_S` after, the languages it
runs and, for each, ``""`` (its self-test passed) or why it failed, under its node name in the
hash of the queue it consumes (:func:`key`, in the result backend), stamped with the time; it
withdraws the announcement when it stops. Per queue: what counts for a submission is what the
workers that will take it can judge. An announcement older than :data:`FRESH_S` is a worker
gone (killed, or cut off) and counts for nothing.

A producer (:class:`worker.producer.intake.Intake`: the Python client, ``runner.submit``, the HTTP
API) refuses a language that fresh announcements say no worker can run: ``RJ language_unavailable``,
never a submission left to be judged wrong. When no worker has announced anything lately (a
fleet still starting, or one whose workers predate announcements) it knows nothing, and
accepts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from worker.errors import BrokerError
from worker.keyspace import languages_key

ANNOUNCE_EVERY_S = 15
FRESH_S = 60  # four announcements missed: the worker is gone
FORGET_S = 3_600  # an announcement this old is removed by the next worker that announces
READ_EVERY_S = 2.0  # a producer reads the announcements at most this often


def announce(client: redis.Redis, queue: str, node: str, languages: Mapping[str, str]) -> None:
    """Say which languages ``node`` (consuming ``queue``) runs, and why any of them cannot be
    judged (``""``: it can); forget announcements of workers long gone."""
    now = int(time.time() * 1000)
    body = json.dumps({"at": now, "languages": dict(languages)})
    try:
        said = client.hgetall(languages_key(queue))
        old = [name for name, raw in said.items() if _stamp(raw) < now - FORGET_S * 1000]
        with client.pipeline() as pipe:
            pipe.hset(languages_key(queue), node, body)
            if old:
                pipe.hdel(languages_key(queue), *old)
            # the hash outlives its last worker by as long as an announcement is remembered:
            # no key of the fleet is kept for good
            pipe.expire(languages_key(queue), FORGET_S)
            pipe.execute()
    except redis.RedisError as exc:
        raise BrokerError(f"cannot announce the languages of {node}: {exc}") from exc


def withdraw(client: redis.Redis, queue: str, node: str) -> None:
    """``node`` stops: its languages no longer count."""
    try:
        client.hdel(languages_key(queue), node)
    except redis.RedisError as exc:
        raise BrokerError(f"cannot withdraw the languages of {node}: {exc}") from exc


@dataclass(frozen=True)
class Announced:
    """What one worker said, fresh."""

    node: str
    languages: dict[str, str]


def fresh(client: redis.Redis, queue: str) -> list[Announced]:
    """The announcements of ``queue``'s workers in the last :data:`FRESH_S`, by node name."""
    try:
        raw = client.hgetall(languages_key(queue))
    except redis.RedisError as exc:
        raise BrokerError(f"cannot read which languages the fleet runs: {exc}") from exc
    return fresh_of(raw)


def fresh_of(raw: Mapping[bytes, bytes], now_ms: int | None = None) -> list[Announced]:
    """The announcements of the last :data:`FRESH_S` among ``raw`` (a queue's hash as read),
    by node name."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    found = []
    for node, body in sorted(raw.items()):
        said = _parsed(body)
        if said is not None and said[0] >= now_ms - FRESH_S * 1000:
            found.append(Announced(node.decode(), said[1]))
    return found


def why_unavailable(announced: list[Announced], language: str) -> str | None:
    """Why fresh ``announced`` say no worker can judge ``language``; None when one can, or
    when nobody announced anything (nothing is known: the fleet may be starting)."""
    if not announced:
        return None
    failed = [(a.node, a.languages[language]) for a in announced if language in a.languages]
    if not failed:
        return f"no worker of the fleet runs {language} (RUNNER_LANGUAGES)"
    if any(not reason for _, reason in failed):
        return None
    node, reason = failed[0]
    more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
    return f"{language} failed its self-test on every worker that runs it ({node}{more}: {reason})"


class Availability:
    """A producer's view of the announcements of the workers of the queue it sends to, read at
    most every :data:`READ_EVERY_S`."""

    def __init__(self, client: redis.Redis, queue: str) -> None:
        self._client = client
        self._queue = queue
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._announced: list[Announced] = []

    def why_unavailable(self, language: str) -> str | None:
        """See :func:`why_unavailable`; raises :class:`~worker.errors.BrokerError` when the
        announcements cannot be read."""
        with self._lock:
            if time.monotonic() - self._read_at >= READ_EVERY_S:
                self._announced = fresh(self._client, self._queue)
                self._read_at = time.monotonic()
            announced = self._announced
        return why_unavailable(announced, language)


def _parsed(raw: bytes) -> tuple[int, dict[str, str]] | None:
    try:
        body = json.loads(raw)
        return int(body["at"]), {str(k): str(v) for k, v in body["languages"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not ours to read: counts as no announcement


def _stamp(raw: bytes) -> int:
    said = _parsed(raw)
    return said[0] if said is not None else 0
