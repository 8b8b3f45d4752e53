"""Webhook delivery: a submission's final result POSTed to its ``callback_url`` as a Standard
Webhooks event (standardwebhooks.com), signed, retried with backoff for a window counted from
the result, at least once; settled ``delivered`` or ``failed``, never dropped unsaid.

The join makes a webhook due (:func:`worker.api.records.finished`, which also wakes every API
process through a Redis channel); every API process runs a :class:`Deliverer` that claims due
ones from Redis with a lease (a process that dies mid-call leaves the webhook to be claimed
again when the lease ends, hence at least once) and delivers each in a task of its own, so a
receiver that stalls holds its own delivery and nothing else: each call has one deadline for
all of it (connecting, sending, the answer's headers), and of the answer only the status line
and headers are read (httpcore bounds them to 100 KiB); its body never is.

Each call carries ``webhook-id`` (``msg_`` and the submission id: the same on every attempt and
resend, for the receiver to dedupe on), ``webhook-timestamp`` (unix seconds, the attempt's) and
``webhook-signature`` (:mod:`worker.api.signing`). The body, built once and kept until the
webhook is settled (the result may expire first), is the event::

    {"type": "submission.finished", "timestamp": "2026-01-02T03:04:05.678Z",
     "data": {"submission_id": "...", "result": {...}}}
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import redis.asyncio as aioredis
import structlog

from worker.api.callbacks import CallbackRefused, Target, check
from worker.api.keys import KeyStore
from worker.api.records import (
    NOT_RESENT,
    NOT_STORED_MS,
    event_id,
    now_ms,
    resend_webhook,
    stored_result,
)
from worker.api.requests import Problem
from worker.api.signing import signature
from worker.contract.fields import quoted
from worker.keyspace import (
    API_CLAIM_DUE,
    HOOKS_DUE,
    HOOKS_DUE_CHANNEL,
    body_key,
    record_key,
    result_key,
)
from worker.settings import Settings

log = structlog.get_logger()

EVENT = "submission.finished"
MAX_BACKOFF_MS = 3_600_000  # retries of a receiver down for a day: about 35, not thousands
MAX_DELIVERIES = 256  # calls one API process has under way at once
LEASE_SLACK_S = 30  # a lease outlasts the call's deadline by this (the Redis calls around it)
NOT_YET_WAIT_S = 5.0  # how long a delivery waits for Celery to store the result it was told of


def event_body(submission_id: str, finished_ms: int, result: dict[str, Any]) -> bytes:
    """The event, as sent (minified: what is signed is what is sent)."""
    when = datetime.fromtimestamp(finished_ms / 1000, UTC).isoformat(timespec="milliseconds")
    event = {
        "type": EVENT,
        "timestamp": when.replace("+00:00", "Z"),
        "data": {"submission_id": submission_id, "result": result},
    }
    return json.dumps(event, separators=(",", ":")).encode()


async def resend(client: aioredis.Redis, settings: Settings, sid: str, key_id: str) -> None:
    """``POST /v1/submissions/{id}/webhook/resend``: a settled webhook due again now, with a
    window of its own (the same event and ``webhook-id``); else the refusal, as a
    :class:`Problem`. ``key_id`` the key it must be of, ``*`` for any (an open API)."""
    windows = settings.api_webhook_retry_s, settings.result_expires_s
    why = await resend_webhook(client, sid, key_id, *windows)
    if why != b"ok":
        status, code, message = NOT_RESENT[why.decode()]
        raise Problem(status, code, message.format(sid=quoted(sid)))


@dataclass(frozen=True)
class Policy:
    retry_s: int  # a webhook's window, from its result (recorded when accepted)
    backoff_ms: int  # the first retry's delay, doubling
    timeout_s: int  # one call's deadline, all of it
    keep_s: int  # how long a settled webhook's state stays readable (as a result would)
    open_secrets: tuple[str, ...]  # sign webhooks of submissions sent without a key
    allow_private: bool  # only for records accepted before addresses were recorded


@dataclass(frozen=True)
class Outcome:
    said: str  # what the status shows as `last`
    ok: bool = False
    final: bool = False  # failed for good: no retry helps (410 Gone, a refused address)
    retry_after_ms: int = 0


class Deliverer:
    def __init__(self, client: aioredis.Redis, keys: KeyStore, policy: Policy) -> None:
        self._redis = client
        self._keys = keys
        self._policy = policy
        # No connection is kept alive for another call: a pooled one is keyed by address, and
        # the next webhook to that address may have another host name (Host, TLS name)
        self._http = httpx.AsyncClient(
            timeout=policy.timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
            trust_env=False,  # no proxy of the environment between us and the checked address
        )
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    @property
    def lease_ms(self) -> int:
        return (self._policy.timeout_s + LEASE_SLACK_S) * 1000

    async def run(self, poll_s: float = 1.0) -> None:
        """Deliver what is due until cancelled, each delivery in a task of its own; woken at
        once by a webhook made due, else when the next one is due (at most ``poll_s``). A
        Redis outage is waited out."""
        listening = asyncio.create_task(self._listen())
        try:
            while True:
                self._wake.clear()  # before claiming: a notice from now on wakes the next round
                pause = poll_s
                try:
                    free = MAX_DELIVERIES - len(self._running)
                    if free > 0:  # else a delivery that ends wakes the loop
                        for sid in await self.claim(free):
                            self._start(sid)
                        pause = await self._until_next(poll_s)
                except aioredis.RedisError as exc:
                    log.warning("webhook.redis_unavailable", error=str(exc)[:200])
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
        finally:
            listening.cancel()
            with suppress(asyncio.CancelledError):
                await listening

    async def claim(self, most: int) -> list[str]:
        now = now_ms()
        ids = await API_CLAIM_DUE(self._redis, [HOOKS_DUE], [now, most, now + self.lease_ms])
        return [i.decode() for i in ids]

    async def _until_next(self, most: float) -> float:
        first = await self._redis.zrange(HOOKS_DUE, 0, 0, withscores=True)
        if not first:
            return most
        return min(most, max(0.0, (float(first[0][1]) - now_ms()) / 1000))

    async def _listen(self) -> None:
        """Wake the loop whenever a webhook is made due anywhere (``HOOKS_DUE_CHANNEL``)."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(HOOKS_DUE_CHANNEL)
                self._wake.set()  # (re)subscribed: what was published meanwhile is due now
                async for _ in pubsub.listen():
                    self._wake.set()
            except aioredis.RedisError:
                await asyncio.sleep(1)
            finally:
                with suppress(aioredis.RedisError):
                    await pubsub.aclose()

    def _start(self, sid: str) -> None:
        if sid in self._running:
            return  # its lease ended while we still hold it: the call is bounded, let it end
        task = asyncio.create_task(self._guarded(sid))
        self._running[sid] = task
        task.add_done_callback(lambda _: self._ended(sid))

    def _ended(self, sid: str) -> None:
        self._running.pop(sid, None)
        self._wake.set()  # a slot is free

    async def _guarded(self, sid: str) -> None:
        # one bad delivery must not stop the others: its lease ends, it is tried again
        try:
            async with asyncio.timeout(self.lease_ms / 1000 - LEASE_SLACK_S / 2):
                await self.deliver(sid)
        except Exception as exc:
            log.error("webhook.failed", submission_id=sid, error=repr(exc)[:300])

    async def close(self) -> None:
        """Stop: deliveries under way are cancelled and due again at once, for another API
        process to take without waiting for their leases to end."""
        running = list(self._running.items())
        for _, task in running:
            task.cancel()
        for _, task in running:
            with suppress(asyncio.CancelledError):
                await task
        if running:
            with suppress(aioredis.RedisError):
                await self._redis.zadd(HOOKS_DUE, {sid: now_ms() for sid, _ in running}, xx=True)
        await self._http.aclose()

    async def deliver(self, sid: str) -> None:
        found = await self._redis.hgetall(record_key(sid))
        record = {k.decode(): v.decode() for k, v in found.items()}
        if record.get("hook_state") != "pending" or "callback" not in record:
            await self._redis.zrem(HOOKS_DUE, sid)  # settled meanwhile, or nothing to send
            return
        finished = int(record.get("finished_ms") or 0)
        until = int(record.get("hook_until_ms") or finished + self._policy.retry_s * 1000)
        body = await self._event(sid, finished, until)
        if body is None:
            if now_ms() - finished < NOT_STORED_MS:
                await self._redis.zadd(HOOKS_DUE, {sid: now_ms() + 1000})
            else:
                why = "no result to send: never stored, or expired before an API process ran"
                await self._settle(sid, record, "failed", why)
            return
        attempts = int(record.get("hook_attempts") or 0) + 1
        outcome = await self._call(sid, record, body)
        if outcome.ok:
            await self._settle(sid, record, "delivered", outcome.said, attempts)
            log.info("webhook.delivered", submission_id=sid, attempts=attempts)
            return
        now = now_ms()
        if outcome.final or now >= until:
            said = outcome.said if outcome.final else f"gave up at the window's end: {outcome.said}"
            await self._settle(sid, record, "failed", said, attempts)
            log.warning("webhook.abandoned", submission_id=sid, attempts=attempts, last=said)
            return
        delay = min(MAX_BACKOFF_MS, self._policy.backoff_ms * 2 ** (attempts - 1))
        delay = max(
            int(delay * random.uniform(0.9, 1.1)), min(outcome.retry_after_ms, MAX_BACKOFF_MS)
        )
        due = min(now + delay, until)  # the last attempt at the window's end, not before it
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                record_key(sid), mapping={"hook_attempts": attempts, "hook_last": outcome.said}
            )
            pipe.zadd(HOOKS_DUE, {sid: due})
            await pipe.execute()
        log.info(
            "webhook.retry",
            submission_id=sid,
            attempts=attempts,
            last=outcome.said,
            in_ms=due - now,
        )

    async def _event(self, sid: str, finished: int, until: int) -> bytes | None:
        """The event as first built, else built now from the stored result and kept past the
        window's end (waiting a moment for Celery to store it: the join's notice comes just
        before); None when there is no result."""
        pause = 0.002
        deadline = time.monotonic() + NOT_YET_WAIT_S
        while True:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(body_key(sid))
                pipe.get(result_key(sid))
                kept, stored = await pipe.execute()
            if kept is not None:
                return kept  # type: ignore[no-any-return]
            if stored is not None:
                body = event_body(sid, finished, stored_result(stored))
                keep_ms = max(0, until - now_ms()) + self._policy.keep_s * 1000
                await self._redis.set(body_key(sid), body, px=keep_ms)
                return body
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(pause)
            pause = min(0.1, pause * 2)

    async def _call(self, sid: str, record: dict[str, str], body: bytes) -> Outcome:
        """One attempt: the addresses checked at acceptance in turn until one connects, all
        within one deadline."""
        url = record["callback"]
        target = Target.from_record(url, record.get("hook_to", ""))
        if not target.addresses:  # accepted before the addresses were recorded
            try:
                target = await check(url, self._policy.allow_private)
            except CallbackRefused as exc:
                return Outcome(str(exc), final=True)
        secrets = await self._secrets(record.get("key", ""))
        if not secrets:
            return Outcome("no signing secret: the key is gone", final=True)
        timestamp = str(int(time.time()))
        msg_id = event_id(sid)
        headers = {
            "Host": target.host_header(),
            "Content-Type": "application/json",
            "User-Agent": "runner-webhooks/2",
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature(secrets, msg_id, timestamp, body),
        }
        deadline = self._policy.timeout_s
        refused: Exception | None = None
        try:
            async with asyncio.timeout(deadline):
                for address in target.addresses:
                    try:
                        return await self._post(target, address, headers, body)
                    except httpx.ConnectError as exc:
                        refused = exc  # the next address, if any
        except TimeoutError:
            return Outcome(f"no answer within {deadline} s")
        except httpx.HTTPError as exc:
            return Outcome(f"{type(exc).__name__}: {exc}"[:200])
        return Outcome(f"cannot connect: {refused}"[:200])

    async def _post(
        self, target: Target, address: str, headers: dict[str, str], body: bytes
    ) -> Outcome:
        request = self._http.build_request(
            "POST",
            target.pinned_url(address),
            content=body,
            headers=headers,
            extensions={"sni_hostname": target.host},
        )
        # the status line and headers only: leaving the block closes the connection unread
        response = await self._http.send(request, stream=True)
        try:
            status = response.status_code
            retry_after = response.headers.get("retry-after", "")
        finally:
            await response.aclose()
        said = f"HTTP {status}"
        if 200 <= status < 300:
            return Outcome(said, ok=True)
        if status == 410:  # the receiver wants no more of these (Standard Webhooks)
            return Outcome(f"{said}: the receiver is gone", final=True)
        if 300 <= status < 400:
            said += " (redirects are not followed)"
        wait_ms = int(retry_after) * 1000 if retry_after.isdigit() else 0
        return Outcome(said, retry_after_ms=wait_ms)

    async def _secrets(self, key_id: str) -> list[str]:
        if not key_id:
            return list(self._policy.open_secrets)
        key = await self._keys.get(key_id)
        return key.signing_secrets(time.time()) if key else []

    async def _settle(
        self, sid: str, record: dict[str, str], state: str, outcome: str, attempts: int = 0
    ) -> None:
        """Final: shown as long as a result is kept, from now; the event kept as long for a
        resend when it failed (a delivered one is built again from the result if asked)."""
        keep = self._policy.keep_s
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                record_key(sid),
                mapping={
                    "hook_state": state,
                    "hook_last": outcome,
                    "hook_attempts": attempts or int(record.get("hook_attempts") or 0),
                    "hook_done_ms": now_ms(),
                },
            )
            pipe.expire(record_key(sid), keep)
            if state == "delivered":
                pipe.delete(body_key(sid))
            else:
                pipe.expire(body_key(sid), keep)
            pipe.zrem(HOOKS_DUE, sid)
            await pipe.execute()
