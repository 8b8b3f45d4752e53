"""Celery's Redis result backend, made to ride out a Redis restart: results, the chord's join.

Every call of the backend's client (storing and reading results, the chord's bookkeeping, its
join) waits and tries again while Redis is away, for at most ``RUNNER_OUTAGE_WINDOW_S``
(:mod:`worker.outages`; the window rides in ``result_backend_transport_options`` as
:data:`~worker.outages.WINDOW_OPTION`). Without it, a test that finished while Redis restarted
raised ``ConnectionError`` "outside its body" in the script every chord header task runs as it
ends (``on_chord_part_return``): Celery marked it failed, and the whole submission ended in a
``ChordError`` instead of its verdict.

Calling that script again is safe: Celery's script records a header task's result once (it
keys the record by task id and header index), so a call that reached Redis before the
connection broke is not counted twice. The one thing a lost reply can hide is that this very
call claimed the chord's completion (the claim key holds the call's token): when a repeated
call is told "not claimed", the claim key is read, and holding our token means it was ours.
So the script is sent here, on a client that does not retry by itself, to know whether it was
sent more than once.

Importing this module points Celery's ``redis://`` and ``rediss://`` result backends at this
class.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import redis
from celery.app.backends import BACKEND_ALIASES
from celery.backends.redis import CHORD_PART_RETURN_LUA, RedisBackend

from worker.errors import RedisUnavailable
from worker.outages import (
    DEFAULT_WINDOW_S,
    WINDOW_OPTION,
    Outage,
    RidingRedis,
    redis_retryable,
    ride_out,
    riding,
)

# where Celery's chord-part script takes the claim key and the claim token, in the celery release
# of worker.queue.transport.WRITTEN_FOR, which setup.cfg pins (not imported: importing the transport
# registers it as kombu's redis://)
CLAIM_KEY, CLAIM_TOKEN, CLAIMED = 5, 7, 3


class _RiddenOut:
    """The chord-part ``script`` (registered on a client that does not ride out by itself),
    sent again while Redis is away; ``client`` reads the claim."""

    def __init__(self, script: Any, client: Any, outage: Outage) -> None:
        self._script = script
        self._client = client
        self._outage = outage

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> Any:
        sent = 0

        def send() -> Any:
            nonlocal sent
            sent += 1
            return self._script(keys=keys, args=args)

        answer = ride_out(send, self._outage, redis_retryable, RedisUnavailable)
        if sent > 1 and not answer[CLAIMED]:
            token = self._client.get(keys[CLAIM_KEY])
            if token is not None and token.decode() == str(args[CLAIM_TOKEN]):
                answer = [*answer[:CLAIMED], 1, *answer[CLAIMED + 1 :]]
        return answer


class ResultBackend(RedisBackend):  # type: ignore[misc]
    @cached_property
    def outage(self) -> Outage:
        """Redis as this process's backend sees it (one outage logged once)."""
        window = self._transport_options.get(WINDOW_OPTION) or DEFAULT_WINDOW_S
        params = self.connparams
        server = f"{params.get('host') or params.get('path')}:{params.get('port', '')}"
        return Outage("Redis", "redis", float(window), redis=f"{server}/{params.get('db', 0)}")

    def _get_client(self) -> Callable[..., RidingRedis]:
        outage = self.outage
        return lambda **params: riding(RidingRedis(**params), outage)

    @cached_property
    def _chord_part_return_script(self) -> Any:
        plain = redis.Redis(connection_pool=self.client.connection_pool)
        return _RiddenOut(plain.register_script(CHORD_PART_RETURN_LUA), self.client, self.outage)


BACKEND_ALIASES["redis"] = BACKEND_ALIASES["rediss"] = f"{__name__}:ResultBackend"
