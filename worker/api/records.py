"""What the HTTP API keeps per submission, and the join's notice that one is final.

A submission sent through the API has a record (a Redis hash in the result backend, kept as
long as its result): the API key that sent it, its test count, its webhook URL and delivery
state. When the join has decided the verdict it calls :func:`finished`: one script frees the
key's in-flight slot and, when there is a webhook, makes it due. A submission sent any other
way has no record, and the notice costs one script call that finds none.

Workers import this module and nothing else of :mod:`worker.api` (no web stack on workers).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
import structlog

from worker.contract import internal_error
from worker.errors import BrokerError

log = structlog.get_logger()

RESULT_KEY = "celery-task-meta-"  # where Celery's Redis backend keeps a task's result
DUE_KEY = "runner:api:hooks"  # sorted set: submission id -> when its webhook is due (ms)
_RECORD = "runner:api:sub:"
_INFLIGHT = "runner:api:inflight:"

# KEYS: the record, DUE_KEY. ARGV: the submission id, now (ms), the in-flight key prefix.
FINISHED = """
local owner = redis.call('HGET', KEYS[1], 'key')
if not owner then return 0 end
redis.call('HSET', KEYS[1], 'finished_ms', ARGV[2])
if owner ~= '' then redis.call('ZREM', ARGV[3] .. owner, ARGV[1]) end
if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
    redis.call('HSET', KEYS[1], 'hook_state', 'pending')
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return 1
"""


def record_key(submission_id: str) -> str:
    return _RECORD + submission_id


def inflight_key(key_id: str) -> str:
    """The key's submissions not yet final (sorted set: id -> when it stops counting, ms)."""
    return _INFLIGHT + key_id


def now_ms() -> int:
    return int(time.time() * 1000)


def finished(client: redis.Redis, submission_id: str) -> None:
    """The submission is final: free its key's slot, make its webhook due. Never raises: the
    verdict is decided already, and both lapse on their own (the slot when the record's time
    is up, the webhook never, which its status then shows as pending)."""
    try:
        client.eval(
            FINISHED, 2, record_key(submission_id), DUE_KEY, submission_id, now_ms(), _INFLIGHT
        )
    except (redis.RedisError, BrokerError) as exc:  # BrokerError: away past the outage window
        log.warning("api.notice_failed", error=str(exc)[:200])


def stored_result(stored: bytes) -> dict[str, Any]:
    """The submission result in a stored Celery result; a join that failed (a bug of ours:
    joins report, they do not raise) reads as the contract's ``IE``."""
    meta = json.loads(stored)
    if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
        return meta["result"]  # type: ignore[no-any-return]
    message = f"the fleet failed this submission ({meta.get('status')})"
    return internal_error(None, message).model_dump(mode="json")
