"""What the routes do, apart from HTTP: who calls (API keys, rate limits), sending a
submission (through :meth:`worker.client.Client.submit`, the one path), a submission's status
and its event stream, readiness. Routes: :mod:`worker.api.routes`."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from worker.api.callbacks import CallbackRefused, resolve
from worker.api.keys import ApiKey, KeyStore
from worker.api.limits import admit, release, take_token
from worker.api.records import RESULT_KEY, record_key, stored_result
from worker.api.requests import Problem, wait_s
from worker.client import Client
from worker.contract import rejected
from worker.contract.fields import quoted
from worker.errors import BrokerError, SubmissionRejected
from worker.fairqueue import SLOTS_KEY
from worker.settings import Settings
from worker.workflow import run_key

log = structlog.get_logger()

ID = r"^[A-Za-z0-9-]{1,64}$"
KEY_CACHE_S = 2.0  # a revoked key stops working within this
BUSY = {"fleet_busy": (503, 5), "tenant_busy": (429, 2)}  # RJ code -> status, Retry-After
EVENT_POLL_S = 0.1


@dataclass
class Caller:
    key: ApiKey | None  # None: an open API


class Service:
    """What the routes share: settings, Redis clients, the producer, the key store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = aioredis.Redis.from_url(settings.result_backend)
        self.broker = aioredis.Redis.from_url(settings.broker_url)
        self.client = Client(settings)
        self.keys = KeyStore(self.redis)
        self._seen: dict[str, tuple[float, ApiKey | str]] = {}

    async def caller(self, request: Request) -> Caller:
        if self.settings.api_open:
            return Caller(None)
        token = request.headers.get("x-api-key") or ""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = credentials.strip()
        if not token:
            raise Problem(401, "no_key", "an API key is required (Authorization: Bearer rk_...)")
        now = time.monotonic()
        seen = self._seen.get(token)
        if seen is None or seen[0] < now:
            if len(self._seen) > 10_000:
                self._seen.clear()
            seen = (now + KEY_CACHE_S, await self.keys.verify(token))
            self._seen[token] = seen
        key = seen[1]
        if isinstance(key, str):
            raise Problem(401, "bad_key", key)
        wait = await take_token(self.redis, key.id, key.rate_per_s, key.burst)
        if wait:
            raise Problem(429, "rate_limited", f"more than {key.rate_per_s} requests/s", wait)
        return Caller(key)

    async def submit(self, request: Request, caller: Caller, raw: Any) -> tuple[int, Any]:
        wait = wait_s(request, self.settings.api_max_wait_s)  # a bad one before anything is sent
        sid = uuid.uuid4().hex
        callback = raw.pop("callback_url", None) if isinstance(raw, dict) else None
        echo = raw.get("id") if isinstance(raw, dict) else None
        try:
            if callback is not None:
                await self._check_callback(callback, caller)
            if caller.key is not None and isinstance(raw, dict):
                given = raw.setdefault("tenant", caller.key.tenant)
                if given != caller.key.tenant:
                    raise SubmissionRejected(
                        "tenant_not_allowed",
                        f"tenant: this API key submits as {caller.key.tenant!r} only",
                    )
        except SubmissionRejected as exc:
            return 422, rejected(echo, exc).model_dump(mode="json")
        key_id = caller.key.id if caller.key else ""
        if caller.key is not None:
            cap = caller.key.max_in_flight
            if not await admit(self.redis, key_id, cap, sid, self.settings.result_expires_s):
                raise Problem(429, "too_many_in_flight", f"{cap} submissions not final yet", 1)
        record: dict[str, str | int] = {"key": key_id}
        if callback is not None:
            record |= {"callback": callback, "hook_state": "waiting", "hook_attempts": 0}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(record_key(sid), mapping=record)
            pipe.expire(record_key(sid), self.settings.result_expires_s)
            await pipe.execute()
        try:
            handle = await run_in_threadpool(self.client.submit, raw, sid)
        except BrokerError as exc:
            await self._forget(key_id, sid)
            message = f"the fleet cannot take it now: {exc}"
            raise Problem(503, "fleet_unreachable", message, 5) from exc
        refusal = handle.refusal
        if refusal is not None:
            await self._forget(key_id, sid)
            code = refusal.error.code if refusal.error else ""
            if code in BUSY:
                status, after = BUSY[code]
                assert refusal.error is not None
                raise Problem(status, code, refusal.error.message, after)
            return 422, refusal.model_dump(mode="json")
        if handle.total:  # unknown here for a submission against a registered problem
            await self.redis.hset(record_key(sid), "total", handle.total)
        log.info("api.accepted", submission_id=sid, key=key_id, tests=handle.total)
        if wait:
            deadline = time.monotonic() + wait
            pause = 0.005
            while time.monotonic() < deadline:
                if await self.redis.exists(RESULT_KEY + sid):
                    return 200, await self.status(sid, caller)
                await asyncio.sleep(pause)
                pause = min(0.05, pause * 1.5)
        path = f"/v1/submissions/{sid}"
        links = {"status_url": path, "events_url": f"{path}/events"}
        return 202, {"id": sid, "state": "queued", **links}

    async def _check_callback(self, url: Any, caller: Caller) -> None:
        if not isinstance(url, str):
            raise SubmissionRejected("wrong_type", "callback_url: a URL string")
        if caller.key is None and not self.settings.api_webhook_secret:
            raise SubmissionRejected(
                "callback_not_allowed",
                "callback_url: this open API has no webhook secret to sign with "
                "(RUNNER_API_WEBHOOK_SECRET)",
            )
        try:
            await resolve(url, bool(self.settings.api_allow_private_callbacks))
        except CallbackRefused as exc:
            raise SubmissionRejected("callback_not_allowed", str(exc)) from None

    async def _forget(self, key_id: str, sid: str) -> None:
        await self.redis.delete(record_key(sid))
        if key_id:
            await release(self.redis, key_id, sid)

    async def status(self, sid: str, caller: Caller) -> dict[str, Any]:
        if not re.fullmatch(ID, sid):
            raise Problem(404, "not_found", "a submission id is 1 to 64 of A-Z a-z 0-9 -")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(record_key(sid))
            pipe.get(RESULT_KEY + sid)
            pipe.hgetall(run_key(sid, "tests"))
            raw_record, stored, progress = await pipe.execute()
        record = {k.decode(): v.decode() for k, v in raw_record.items()}
        if caller.key is not None and record.get("key") != caller.key.id:
            raise Problem(404, "not_found", f"no submission {quoted(sid)} of this key")
        if not record and stored is None and not progress:
            raise Problem(404, "not_found", f"no submission {quoted(sid)} (or its result expired)")
        result = stored_result(stored) if stored is not None else None
        tests = [
            {"index": int(index), "result": json.loads(body)}
            for index, body in sorted(progress.items(), key=lambda item: int(item[0]))
        ]
        if result is not None:
            tests = _indexed(result.get("tests", []))
        state = "done" if result is not None else "running" if tests else "queued"
        total = record.get("total")
        hook = None
        if "callback" in record:
            hook = {
                "url": record["callback"],
                "state": record.get("hook_state", "waiting"),
                "attempts": int(record.get("hook_attempts") or 0),
                "last": record.get("hook_last", ""),
            }
        return {
            "id": sid,
            "state": state,
            "total": int(total) if total else (result or {}).get("total"),
            "finished": len(tests),
            "tests": [] if result is not None else tests,  # once done, the result has them
            "result": result,
            "webhook": hook,
        }

    async def events(self, request: Request, sid: str, caller: Caller) -> AsyncIterator[bytes]:
        """``test`` events as tests finish, then one ``result`` event; a comment now and then
        keeps proxies from closing a quiet stream."""
        sent: set[int] = set()
        quiet = time.monotonic()
        while not await request.is_disconnected():
            status = await self.status(sid, caller)
            result = status["result"]
            finished = status["tests"] if result is None else _indexed(result["tests"])
            for test in finished:
                if test["index"] not in sent:
                    sent.add(test["index"])
                    yield _event("test", test)
                    quiet = time.monotonic()
            if result is not None:
                yield _event("result", result)
                return
            if time.monotonic() - quiet > 15:
                yield b": still running\n\n"
                quiet = time.monotonic()
            await asyncio.sleep(EVENT_POLL_S)

    async def ready(self) -> tuple[bool, str]:
        try:
            await self.redis.ping()
            slots = await self.broker.get(SLOTS_KEY)
        except aioredis.RedisError as exc:
            return False, f"Redis unreachable: {exc}"
        if not slots or int(slots) <= 0:
            return False, "no worker is alive (none has reported in the last 30 s)"
        return True, f"{int(slots)} test slots in the fleet"

    async def close(self) -> None:
        await self.redis.aclose()
        await self.broker.aclose()


def _indexed(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": index, "result": test} for index, test in enumerate(tests)]


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
