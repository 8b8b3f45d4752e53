"""Webhook delivery: a submission's final result POSTed to its ``callback_url``, signed,
retried with backoff for a bounded time, at least once.

The join makes a webhook due (:func:`worker.api.records.finished`); every API process runs a
:class:`Deliverer` that claims due ones from Redis with a lease (a process that dies mid-call
leaves the webhook to be claimed again when the lease ends, hence at least once), calls, and
records the outcome in the submission's record, which ``GET /v1/submissions/{id}`` shows.

Each call carries ``Runner-Delivery`` (the submission id: the same on every retry, for the
receiver to dedupe on), ``Runner-Timestamp`` (unix seconds) and ``Runner-Signature``:
``v1=`` and the hex HMAC-SHA256, keyed with the API key's webhook secret, of
``TIMESTAMP + "." + BODY``. A receiver recomputes it over the raw body and refuses a timestamp
far from its clock (replays).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass

import httpx
import redis.asyncio as aioredis
import structlog

from worker.api.callbacks import CallbackRefused, resolve
from worker.api.keys import KeyStore
from worker.api.records import DUE_KEY, RESULT_KEY, now_ms, record_key, stored_result

log = structlog.get_logger()

LEASE_MS = 60_000  # a claimed webhook is claimed again after this (its caller died)
CALL_TIMEOUT_S = 10.0
MAX_BACKOFF_MS = 300_000
NOT_YET_MS = 200  # the join has finished, Celery has not stored its result yet
BATCH = 16

# KEYS: DUE_KEY. ARGV: now (ms), batch size, lease end (ms). The due ids, each now leased.
CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return due
"""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


@dataclass(frozen=True)
class Policy:
    allow_private: bool
    retry_s: int  # how long after the result a webhook is still retried
    backoff_ms: int  # the first retry's delay, doubling
    open_secret: str  # signs webhooks of submissions sent without a key (an open API)


class Deliverer:
    def __init__(self, client: aioredis.Redis, keys: KeyStore, policy: Policy) -> None:
        self._redis = client
        self._keys = keys
        self._policy = policy
        self._http = httpx.AsyncClient(timeout=CALL_TIMEOUT_S, follow_redirects=False)

    async def run(self, poll_s: float = 0.2) -> None:
        """Deliver what is due until cancelled; a Redis outage is waited out."""
        while True:
            due: list[str] = []
            try:
                due = await self.claim()
                outcomes = await asyncio.gather(
                    *(self.deliver(sid) for sid in due), return_exceptions=True
                )
                for sid, outcome in zip(due, outcomes, strict=True):
                    # one bad delivery must not stop the others: its lease ends, it is retried
                    if isinstance(outcome, Exception):
                        log.error("webhook.failed", submission_id=sid, error=repr(outcome)[:300])
            except aioredis.RedisError as exc:
                log.warning("webhook.redis_unavailable", error=str(exc)[:200])
            if not due:
                await asyncio.sleep(poll_s)

    async def claim(self) -> list[str]:
        now = now_ms()
        ids = await self._redis.eval(CLAIM, 1, DUE_KEY, now, BATCH, now + LEASE_MS)
        return [i.decode() for i in ids]

    async def close(self) -> None:
        await self._http.aclose()

    async def deliver(self, sid: str) -> None:
        found = await self._redis.hgetall(record_key(sid))
        record = {k.decode(): v.decode() for k, v in found.items()}
        stored = await self._redis.get(RESULT_KEY + sid)
        if not record or "callback" not in record:
            await self._redis.zrem(DUE_KEY, sid)  # expired with its result: nothing to send
            return
        if stored is None:
            if now_ms() - int(record.get("finished_ms") or 0) < 60_000:
                await self._redis.zadd(DUE_KEY, {sid: now_ms() + NOT_YET_MS})
            else:
                await self._settle(sid, record, "failed", "the result was never stored")
            return
        body = json.dumps(
            {"submission_id": sid, "result": stored_result(stored)}, separators=(",", ":")
        ).encode()
        secret = await self._secret(record.get("key", ""))
        attempts = int(record.get("hook_attempts") or 0) + 1
        try:
            target = await resolve(record["callback"], self._policy.allow_private)
            timestamp = str(int(time.time()))
            response = await self._http.post(
                target.pinned_url(),
                content=body,
                headers={
                    "Host": target.host_header(),
                    "Content-Type": "application/json",
                    "User-Agent": "runner-webhooks/1",
                    "Runner-Delivery": sid,
                    "Runner-Timestamp": timestamp,
                    "Runner-Signature": signature(secret, timestamp, body),
                },
                extensions={"sni_hostname": target.host},
            )
            outcome = f"HTTP {response.status_code}"
            ok = 200 <= response.status_code < 300
        except CallbackRefused as exc:
            await self._settle(sid, record, "failed", str(exc), attempts)
            return
        except httpx.HTTPError as exc:
            outcome, ok = f"{type(exc).__name__}: {exc}"[:300], False
        if ok:
            await self._settle(sid, record, "delivered", outcome, attempts)
            log.info("webhook.delivered", submission_id=sid, attempts=attempts)
            return
        since = now_ms() - int(record.get("finished_ms") or now_ms())
        if since > self._policy.retry_s * 1000:
            await self._settle(sid, record, "failed", f"gave up: {outcome}", attempts)
            log.warning("webhook.abandoned", submission_id=sid, attempts=attempts, last=outcome)
            return
        delay = min(MAX_BACKOFF_MS, self._policy.backoff_ms * 2 ** (attempts - 1))
        delay = int(delay * random.uniform(0.9, 1.1))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(record_key(sid), mapping={"hook_attempts": attempts, "hook_last": outcome})
            pipe.zadd(DUE_KEY, {sid: now_ms() + delay})
            await pipe.execute()
        log.info("webhook.retry", submission_id=sid, attempts=attempts, last=outcome, in_ms=delay)

    async def _secret(self, key_id: str) -> str:
        if not key_id:
            return self._policy.open_secret
        key = await self._keys.get(key_id)
        return key.webhook_secret if key else ""

    async def _settle(
        self, sid: str, record: dict[str, str], state: str, outcome: str, attempts: int = 0
    ) -> None:
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
            pipe.zrem(DUE_KEY, sid)
            await pipe.execute()
