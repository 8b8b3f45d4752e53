"""What the HTTP API keeps per submission, and the join's notice that one is final.

A submission sent through the API has a record (a Redis hash in the result backend, kept as
long as its result): the API key that sent it, its test count, and with a webhook its URL, the
addresses checked when it was accepted, its retry window and its delivery state. When the join
has decided the verdict it announces ``run_finished`` (:mod:`worker.pipeline.events`), which a
worker has :func:`finished` notice from its start (:func:`subscribe`): one script frees the key's
in-flight slot and, when there is a webhook, makes it due and keeps the record until the
webhook is settled (delivered, or failed when its window ends), then as long as a result is
kept: a webhook is never dropped without a readable final state, even when it outlives the
result. A submission sent any other way has no record, and the notice costs one script call
that finds none.

Every Redis key the API's submissions and webhooks use is named in :mod:`worker.keyspace`.
Workers import this module and nothing else of :mod:`worker.api` (no web stack on workers).
"""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog

from worker.contract import SubmissionResult, internal_error
from worker.errors import BrokerError
from worker.keyspace import (
    API_FINISHED,
    API_INFLIGHT,
    API_RESEND,
    HOOKS_DUE,
    HOOKS_DUE_CHANNEL,
    body_key,
    record_key,
    result_key,
)
from worker.keyspace import stored_result as keyspace_stored_result
from worker.pipeline import events

log = structlog.get_logger()

NOT_STORED_MS = 60_000  # the join has finished, Celery stores its result within this

# why api_resend.lua refused -> (HTTP status, code, message)
NOT_RESENT = {
    "not_found": (404, "not_found", "no submission {sid} (or its record expired)"),
    "no_webhook": (409, "no_webhook", "submission {sid} has no callback_url"),
    "not_final": (409, "not_final", "submission {sid} is not final: its webhook waits for it"),
    "pending": (409, "webhook_pending", "the webhook of {sid} is pending: it is being retried"),
    "expired": (410, "result_expired", "the result of {sid} is no longer kept: nothing to send"),
}


def resend_webhook(
    client: redis.Redis | aioredis.Redis, sid: str, owner: str, window_s: int, keep_s: int
) -> Any:
    """The submission's settled webhook due again (``owner`` the API key it must be of, ``*``
    any): ``ok``, else why not (a key of :data:`NOT_RESENT`); awaitable from an asyncio
    client."""
    keys = [
        record_key(sid),
        HOOKS_DUE,
        HOOKS_DUE_CHANNEL,
        body_key(sid),
        result_key(sid),
    ]
    args = [sid, now_ms(), owner, window_s * 1000, keep_s * 1000]
    return API_RESEND(client, keys, args)


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
        keys = [record_key(submission_id), HOOKS_DUE, HOOKS_DUE_CHANNEL]
        API_FINISHED(client, keys, [submission_id, now_ms(), API_INFLIGHT])
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
    status, result = keyspace_stored_result(stored)
    if status == "SUCCESS" and isinstance(result, dict):
        return result
    message = f"the fleet failed this submission ({status})"
    return internal_error(None, message).model_dump(mode="json")
