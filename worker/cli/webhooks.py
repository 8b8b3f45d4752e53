"""``runner webhooks resend ID``: a final submission's webhook sent again, as
``POST /v1/submissions/{id}/webhook/resend`` does for its key, by the operator for any key."""

from __future__ import annotations

import argparse

import redis

from worker.api.records import (
    NOT_RESENT,
    event_id,
    resend_webhook,
)
from worker.cli import ACCEPTED, UsageError
from worker.cli.judging import reachable
from worker.contract.fields import quoted
from worker.keyspace import record_key
from worker.redis_access import redis_options
from worker.settings import Settings


def webhooks(args: argparse.Namespace, settings: Settings) -> int:
    reachable(settings)
    client = redis.Redis.from_url(
        settings.result_backend, **redis_options(settings, settings.result_backend)
    )
    sid = args.id
    windows = settings.api_webhook_retry_s, settings.result_expires_s
    why = resend_webhook(client, sid, "*", *windows)
    if why != b"ok":
        _, code, message = NOT_RESENT[why.decode()]
        raise UsageError(f"{code}: {message.format(sid=quoted(sid))}")
    url = (client.hget(record_key(sid), "callback") or b"").decode()
    print(f"webhook {event_id(sid)} due again, to {url} (runner api sends it)")
    return ACCEPTED
