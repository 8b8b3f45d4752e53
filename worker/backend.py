"""Celery's Redis result backend, made to ride out a Redis restart in a chord's bookkeeping.

``result_backend_always_retry`` retries storing and reading results, but not the script every
chord header task runs as it ends (``on_chord_part_return``): a test that finishes while Redis
restarts raised ``ConnectionError`` "outside its body", Celery marked it failed, and the whole
submission ended in a ``ChordError`` instead of its verdict. Here that script is called again
until Redis is back (:data:`RIDE_OUT_S` at most, like the other retries).

Calling it again is safe: Celery's script records a header task's result once (it keys the
record by task id and header index), so a call that reached Redis before the connection broke
is not counted twice. The one thing a lost reply can hide is that this very call claimed the
chord's completion (the claim key holds the call's token): when a repeated call is told
"not claimed", the claim key is read, and holding our token means it was ours.

Importing this module points Celery's ``redis://`` result backends at this class.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

import redis
import structlog
from celery.app.backends import BACKEND_ALIASES
from celery.backends.redis import CHORD_PART_RETURN_LUA, RedisBackend

log = structlog.get_logger()
RIDE_OUT_S = 60.0
# where Celery's chord-part script takes the claim key and the claim token (celery 5.7)
CLAIM_KEY, CLAIM_TOKEN, CLAIMED = 5, 7, 3


class _RiddenOut:
    def __init__(self, script: Any, client: Any) -> None:
        self._script = script
        self._client = client

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> Any:
        deadline = time.monotonic() + RIDE_OUT_S
        attempt = 0
        while True:
            try:
                answer = self._script(keys=keys, args=args, client=client)
                break
            except redis.ConnectionError as exc:
                if time.monotonic() > deadline:
                    raise
                if not attempt:
                    log.warning("backend.chord_part_retried", error=str(exc)[:200])
                time.sleep(min(2.0, 0.05 * 2**attempt))
                attempt += 1
        if attempt and not answer[CLAIMED]:
            token = (client or self._client).get(keys[CLAIM_KEY])
            if token is not None and token.decode() == str(args[CLAIM_TOKEN]):
                answer = [*answer[:CLAIMED], 1, *answer[CLAIMED + 1 :]]
        return answer


class ResultBackend(RedisBackend):  # type: ignore[misc]
    @cached_property
    def _chord_part_return_script(self) -> Any:
        return _RiddenOut(self.client.register_script(CHORD_PART_RETURN_LUA), self.client)


BACKEND_ALIASES["redis"] = f"{__name__}:ResultBackend"
