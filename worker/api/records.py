"""What the HTTP API keeps per submission, and the join's notice that one is final.

A submission sent through the API has a record (a Redis hash in the result backend, kept as
long as its result): the API key that sent it, its test count, and with a webhook its URL, the
addresses checked when it was accepted, its retry window and its delivery state. When the join
has decided the verdict it announces ``run_finished`` (:mod:`worker.events`), which a worker
has :func:`finished` notice from its start (:func:`subscribe`): one script frees the key's
in-flight slot and, when there is a webhook, makes it due and keeps the record until the
webhook is settled (delivered, or failed when its window ends), then as long as a result is
kept: a webhook is never dropped without a readable final state, even when it outlives the
result. A submission sent any other way has no record, and the notice costs one script call
that finds none.

Every Redis key the API's submissions and webhooks use is named here. Workers import this
module and nothing else of :mod:`worker.api` (no web stack on workers).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
import structlog

from worker import events
from worker.contract import SubmissionResult, internal_error
from worker.errors import BrokerError

log = structlog.get_logger()

RESULT_KEY = "celery-task-meta-"  # where Celery's Redis backend keeps a task's result
DUE_KEY = "runner:api:hooks"  # sorted set: submission id -> when its webhook is due (ms)
DUE_CHANNEL = "runner:api:hooks:due"  # published: a webhook became due now (wakes deliverers)
_RECORD = "runner:api:sub:"
_INFLIGHT = "runner:api:inflight:"
_BODY = "runner:api:hook:"  # a webhook's event as first sent, while it may be sent again
NOT_STORED_MS = 60_000  # the join has finished, Celery stores its result within this

# KEYS: the record, DUE_KEY, DUE_CHANNEL. ARGV: the submission id, now (ms), the in-flight
# key prefix. A webhook's window starts now; its record loses its expiry until it is settled.
FINISHED = """
local owner = redis.call('HGET', KEYS[1], 'key')
if not owner then return 0 end
redis.call('HSET', KEYS[1], 'finished_ms', ARGV[2])
if owner ~= '' then redis.call('ZREM', ARGV[3] .. owner, ARGV[1]) end
if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
    local window = redis.call('HGET', KEYS[1], 'hook_window_ms')
    if window then redis.call('HSET', KEYS[1], 'hook_until_ms', ARGV[2] + window) end
    redis.call('HSET', KEYS[1], 'hook_state', 'pending')
    redis.call('PERSIST', KEYS[1])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
    redis.call('PUBLISH', KEYS[3], ARGV[1])
end
return 1
"""

# KEYS: the record, DUE_KEY, DUE_CHANNEL, the webhook's event, the result. ARGV: the
# submission id, now (ms), the key it must belong to ('*': any), the window when the record
# has none (ms), how long a settled state is kept (ms). A settled webhook due again, with a
# window of its own from now; else why not.
RESEND = """
local r = redis.call('HMGET', KEYS[1], 'key', 'callback', 'hook_state', 'hook_window_ms')
if not r[1] or (ARGV[3] ~= '*' and r[1] ~= ARGV[3]) then return 'not_found' end
if not r[2] then return 'no_webhook' end
if r[3] == 'waiting' then return 'not_final' end
if r[3] == 'pending' then return 'pending' end
if redis.call('EXISTS', KEYS[4]) == 0 and redis.call('EXISTS', KEYS[5]) == 0 then
    return 'expired'
end
local window = r[4] or ARGV[4]
redis.call('HSET', KEYS[1], 'hook_state', 'pending', 'hook_attempts', 0)
redis.call('HSET', KEYS[1], 'hook_until_ms', ARGV[2] + window)
redis.call('HDEL', KEYS[1], 'hook_done_ms')
redis.call('PERSIST', KEYS[1])
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('PEXPIRE', KEYS[4], window + ARGV[5]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return 'ok'
"""
# why RESEND refused -> (HTTP status, code, message)
NOT_RESENT = {
    "not_found": (404, "not_found", "no submission {sid} (or its record expired)"),
    "no_webhook": (409, "no_webhook", "submission {sid} has no callback_url"),
    "not_final": (409, "not_final", "submission {sid} is not final: its webhook waits for it"),
    "pending": (409, "webhook_pending", "the webhook of {sid} is pending: it is being retried"),
    "expired": (410, "result_expired", "the result of {sid} is no longer kept: nothing to send"),
}


def record_key(submission_id: str) -> str:
    return _RECORD + submission_id


def inflight_key(key_id: str) -> str:
    """The key's submissions not yet final (sorted set: id -> when it stops counting, ms)."""
    return _INFLIGHT + key_id


def body_key(submission_id: str) -> str:
    """The webhook's event as first built (a string), kept while it may be sent again: the
    result it carries may expire before the webhook is settled."""
    return _BODY + submission_id


def resend_args(submission_id: str, owner: str, window_s: int, keep_s: int) -> list[Any]:
    """RESEND's key count, KEYS and ARGV: ``owner`` the API key it must be of (``*``: any)."""
    keys = [
        record_key(submission_id),
        DUE_KEY,
        DUE_CHANNEL,
        body_key(submission_id),
        RESULT_KEY + submission_id,
    ]
    return [len(keys), *keys, submission_id, now_ms(), owner, window_s * 1000, keep_s * 1000]


def event_id(submission_id: str) -> str:
    """The webhook's ``webhook-id``: the same on every attempt and resend (receivers dedupe
    on it), with no ``.`` (the signed content joins fields with dots)."""
    return "msg_" + submission_id


def webhook_fields(url: str, addresses: str, window_s: int) -> dict[str, str | int]:
    """A new record's webhook: where it goes (the addresses checked when it was accepted,
    space separated: the only ones it is ever sent to) and for how long after the result it
    is retried; the decision of the API process that accepted it, whatever another's settings."""
    return {
        "callback": url,
        "hook_to": addresses,
        "hook_window_ms": window_s * 1000,
        "hook_state": "waiting",
        "hook_attempts": 0,
    }


def webhook_view(submission_id: str, record: dict[str, str]) -> dict[str, Any] | None:
    """The status's ``webhook``: null without one."""
    if "callback" not in record:
        return None
    return {
        "url": record["callback"],
        "id": event_id(submission_id),
        "state": record.get("hook_state", "waiting"),
        "attempts": int(record.get("hook_attempts") or 0),
        "last": record.get("hook_last", ""),
    }


def now_ms() -> int:
    return int(time.time() * 1000)


def finished(client: redis.Redis, submission_id: str) -> None:
    """The submission is final: free its key's slot, make its webhook due. Never raises: the
    verdict is decided already, and both lapse on their own (the slot when the record's time
    is up, the webhook never, which its status then shows as waiting)."""
    try:
        client.eval(
            FINISHED,
            3,
            record_key(submission_id),
            DUE_KEY,
            DUE_CHANNEL,
            submission_id,
            now_ms(),
            _INFLIGHT,
        )
    except (redis.RedisError, BrokerError) as exc:  # BrokerError: away past the outage window
        log.warning("api.notice_failed", error=str(exc)[:200])


def subscribe(client: redis.Redis) -> None:
    """Have every run the join finishes in this process noticed on ``client`` (the result
    backend's Redis, where the records are)."""

    def notice(submission_id: str, _: SubmissionResult) -> None:
        finished(client, submission_id)

    events.run_finished.subscribe(notice)


def stored_result(stored: bytes) -> dict[str, Any]:
    """The submission result in a stored Celery result; a join that failed (a bug of ours:
    joins report, they do not raise) reads as the contract's ``IE``."""
    meta = json.loads(stored)
    if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
        return meta["result"]  # type: ignore[no-any-return]
    message = f"the fleet failed this submission ({meta.get('status')})"
    return internal_error(None, message).model_dump(mode="json")
