"""What the routes do, apart from HTTP: who calls (API keys, rate limits), sending a
submission (through :meth:`worker.client.Client.submit`, the one path), once per
``Idempotency-Key``, alone or in a batch, the language registry, readiness; what is told of a
submission once sent is :mod:`worker.api.progress`'s. Routes: :mod:`worker.api.routes` and
:mod:`worker.api.submissions`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from worker.api.callbacks import CallbackRefused, check
from worker.api.keys import ApiKey, Caller, KeyStore
from worker.api.limits import (
    Bucket,
    admit,
    take_tokens,
)
from worker.api.progress import Progress
from worker.api.records import (
    webhook_fields,
)
from worker.api.requests import Problem
from worker.client import Client
from worker.contract import Limits, rejected
from worker.contract.fields import quoted
from worker.data import availability
from worker.errors import BrokerError, SubmissionRejected
from worker.keyspace import (
    SLOTS,
    idempotency_key,
    inflight_key,
    languages_key,
    record_key,
    submissions_key,
)
from worker.languages import LANGUAGES
from worker.redis_access import redis_options
from worker.settings import Settings
from worker.verdicts import LANGUAGE_UNAVAILABLE

log = structlog.get_logger()

KEY_CACHE_S = 2.0  # a revoked key stops working within this
# RJ code -> status, Retry-After: the fleet's state, not the submission's fault
BUSY = {"fleet_busy": (503, 5), "tenant_busy": (429, 2), LANGUAGE_UNAVAILABLE: (503, 30)}
# A request waits this long for Redis, then answers 503 with Retry-After: the fleet's outage
# window (RUNNER_OUTAGE_WINDOW_S) is for workers, whose tests must not fail for a restart; a
# client over HTTP is better told at once, and sends again (with the same Idempotency-Key).
REDIS_WAIT_S = 1
UNREACHABLE_S = 5  # Retry-After of a 503 fleet_unreachable
MAX_BATCH = 20  # submissions in one POST /v1/submissions/batch
PAGE = (20, 100)  # a page of GET /v1/submissions: by default, at most
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, as Stripe's
ANSWERING_S = 60  # an Idempotency-Key's first request is taken for dead after this


def unreachable() -> Problem:
    """The fleet's Redis (or broker) is away. The message names no address: anyone with a
    key reads it; the API's log has the error."""
    return Problem(
        503,
        "fleet_unreachable",
        "the fleet cannot be reached now; nothing was kept: send it again later",
        UNREACHABLE_S,
    )


class Service:
    """What the routes share: settings, Redis clients, the producer, the key store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = aioredis.Redis.from_url(
            settings.result_backend, **redis_options(settings, settings.result_backend)
        )
        self.broker = aioredis.Redis.from_url(
            settings.broker_url, **redis_options(settings, settings.broker_url)
        )
        self.client = Client(dataclasses.replace(settings, outage_window_s=REDIS_WAIT_S))
        self.keys = KeyStore(self.redis)
        self.progress = Progress(self.redis, settings)
        self._seen: dict[str, tuple[float, ApiKey | str]] = {}

    # --- who calls -----------------------------------------------------------------------

    async def caller(self, request: Request, kind: str = "read", cost: int = 1) -> Caller:
        """The request's key (401 without a valid one), its ``kind`` bucket charged ``cost``
        tokens (429 when empty; ``cost`` 0: charged later, by :meth:`charge`)."""
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
        caller = Caller(key)
        if cost:
            await self.charge(request, caller, kind, cost)
        return caller

    async def charge(self, request: Request, caller: Caller, kind: str, cost: int) -> None:
        """Take ``cost`` tokens of the caller's ``kind`` bucket (``submit`` or ``read``)."""
        if caller.key is None:
            return
        key = caller.key
        bucket: Bucket = await take_tokens(
            self.redis, key.id, kind, key.rate_per_s, key.burst, cost
        )
        request.state.bucket = bucket  # for the RateLimit header fields of the answer
        if bucket.wait_s:
            what = "submissions" if kind == "submit" else "reads"
            raise Problem(
                429,
                "rate_limited",
                f"more than {bucket.rate} {what}/s (a burst of at most {bucket.burst})",
                bucket.wait_s,
            )

    # --- sending -------------------------------------------------------------------------

    async def once(
        self,
        request: Request,
        caller: Caller,
        body: bytes,
        answer: Callable[[], Awaitable[tuple[int, Any]]],
    ) -> tuple[int, Any, bool]:
        """``answer()``, or with an ``Idempotency-Key`` the answer its first request got:
        (status, body, replayed). Kept are final answers only (accepted, or refused by the
        contract); a busy or unreachable fleet's are not, so the retry is tried afresh."""
        token = request.headers.get("idempotency-key")
        if token is None:
            status, body_ = await answer()
            return status, body_, False
        if not IDEMPOTENCY_KEY.fullmatch(token):
            raise Problem(
                400,
                "bad_idempotency_key",
                "Idempotency-Key: 1 to 255 printable ASCII characters (a UUID, say)",
            )
        where = idempotency_key(caller.key_id, hashlib.sha256(token.encode()).hexdigest())
        sent = hashlib.sha256(request.url.path.encode() + b"\n" + body).hexdigest()
        if await self.redis.set(where, json.dumps({"sent": sent}), nx=True, ex=ANSWERING_S):
            try:
                status, body_ = await answer()
            except BaseException:
                with suppress(aioredis.RedisError):
                    await self.redis.delete(where)
                raise
            if status in (200, 202, 422):
                kept = {"sent": sent, "status": status, "answer": body_}
                await self.redis.set(where, json.dumps(kept), ex=self.settings.result_expires_s)
            else:
                await self.redis.delete(where)
            return status, body_, False
        first = json.loads(await self.redis.get(where) or '{"sent": null}')
        if first["sent"] != sent:
            raise Problem(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {quoted(token)} was sent with another body (or to another "
                f"route) in the last {self.settings.result_expires_s} s; use a new key",
            )
        if "status" not in first:
            raise Problem(
                409,
                "idempotency_key_in_use",
                f"a request with Idempotency-Key {quoted(token)} is still being answered",
                1,
            )
        return first["status"], first["answer"], True

    async def submit(self, caller: Caller, raw: Any) -> tuple[int, Any]:
        """Send one submission: ``(202, where to follow it)`` or ``(422, the RJ result)``;
        other refusals raise :class:`Problem`. Nothing of a refused one is kept."""
        sid = uuid.uuid4().hex
        callback = raw.pop("callback_url", None) if isinstance(raw, dict) else None
        hook: dict[str, str | int] = {}  # its webhook's record fields
        echo = raw.get("id") if isinstance(raw, dict) else None
        try:
            if callback is not None:
                hook = await self._check_callback(callback, caller)
            if caller.key is not None and isinstance(raw, dict):
                given = raw.setdefault("tenant", caller.key.tenant)
                if given != caller.key.tenant:
                    raise SubmissionRejected(
                        "tenant_not_allowed",
                        f"tenant: this API key submits as {caller.key.tenant!r} only",
                    )
        except SubmissionRejected as exc:
            return 422, rejected(echo, exc).model_dump(mode="json")
        key_id = caller.key_id
        expires = self.settings.result_expires_s
        if caller.key is not None:
            cap = caller.key.max_in_flight
            if not await admit(self.redis, key_id, cap, sid, expires):
                raise Problem(429, "too_many_in_flight", f"{cap} submissions not final yet", 1)
        created_us = time.time_ns() // 1000
        record: dict[str, str | int] = {"key": key_id, "created_ms": created_us // 1000}
        record |= hook
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(record_key(sid), mapping=record)
                pipe.expire(record_key(sid), expires)
                pipe.zadd(submissions_key(key_id), {sid: created_us})
                pipe.zremrangebyscore(submissions_key(key_id), "-inf", created_us - expires * 10**6)
                pipe.expire(submissions_key(key_id), expires)
                await pipe.execute()
            handle = await run_in_threadpool(self.client.submit, raw, sid)
        except (aioredis.RedisError, BrokerError) as exc:
            log.error("api.not_sent", submission_id=sid, error=str(exc)[:200])
            await self._forget(key_id, sid)
            raise unreachable() from exc
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
        path = f"/v1/submissions/{sid}"
        return 202, {
            "id": sid,
            "state": "queued",
            "status_url": path,
            "events_url": f"{path}/events",
        }

    async def batch(self, caller: Caller, submissions: list[Any]) -> list[dict[str, Any]]:
        """Each submission sent as :meth:`submit` would, in order; each answered apart."""
        answers: list[dict[str, Any]] = []
        for raw in submissions:
            try:
                status, body = await self.submit(caller, raw)
            except Problem as refused:
                answers.append({"status": refused.status, "error": refused.body()["error"]})
                continue
            except (aioredis.RedisError, BrokerError) as exc:
                log.error("api.not_sent", error=str(exc)[:200])
                answers.append({"status": 503, "error": unreachable().body()["error"]})
                continue
            if status == 202:
                answers.append({"status": status, **body})
            else:
                answers.append({"status": status, "error": body["error"], "result": body})
        return answers

    async def _check_callback(self, url: Any, caller: Caller) -> dict[str, str | int]:
        """The webhook's record fields: its address policy decided here, once."""
        if not isinstance(url, str):
            raise SubmissionRejected("wrong_type", "callback_url: a URL string")
        if caller.key is None and not self.settings.api_webhook_secret:
            raise SubmissionRejected(
                "callback_not_allowed",
                "callback_url: this open API has no webhook secret to sign with "
                "(RUNNER_API_WEBHOOK_SECRET)",
            )
        try:
            target = await check(url, bool(self.settings.api_allow_private_callbacks))
        except CallbackRefused as exc:
            raise SubmissionRejected("callback_not_allowed", str(exc)) from None
        return webhook_fields(url, target.recorded(), self.settings.api_webhook_retry_s)

    async def _forget(self, key_id: str, sid: str) -> None:
        """A submission that will not run: its record gone, its key's slot given back; with
        Redis away, once it is back (:class:`worker.producer.intake.Owed`)."""
        backend = self.client.intake.backend

        def undo() -> None:
            with backend.pipeline(transaction=False) as pipe:
                pipe.delete(record_key(sid))
                pipe.zrem(submissions_key(key_id), sid)
                if key_id:
                    pipe.zrem(inflight_key(key_id), sid)
                pipe.execute()

        owed = self.client.intake.owed
        expires = self.settings.result_expires_s
        await run_in_threadpool(owed.settle, f"API key slot of {sid}", undo, expires)

    async def languages(self) -> list[dict[str, Any]]:
        """The language registry, with what this fleet's operator allows and whether its
        workers can judge each language now (their self-tests, :mod:`worker.data.availability`)."""
        said = await self.redis.hgetall(languages_key(self.settings.queue))
        announced = availability.fresh_of(said)
        s = self.settings
        maxima = s.maxima()
        limits = {
            name: {"default": field.default, "max": getattr(maxima.limits, name)}
            for name, field in Limits.model_fields.items()
        }
        described = []
        for lang in LANGUAGES.values():
            why = availability.why_unavailable(announced, lang.name)
            options = None
            if lang.compile is not None and (lang.compile.standards or lang.compile.options):
                options = {
                    "standards": list(lang.compile.standards),
                    "patterns": list(lang.compile.options),
                    "operator": sorted(o for n, o in maxima.extra_options if n == lang.name),
                    "max_options": lang.compile.max_options,
                    "max_option_chars": lang.compile.max_option_chars,
                }
            described.append(
                {
                    "name": lang.name,
                    "aliases": list(lang.aliases),
                    "display": lang.display,
                    "version": lang.version,
                    "source_file": lang.source_file,
                    "sources": list(lang.sources),
                    "compiled": lang.compiled,
                    "syntax_checked": lang.syntax_checked,
                    "compiler_options": options,
                    "limits": limits,
                    "max_tests": maxima.tests,
                    "max_source_kb": maxima.source_kb,
                    "max_stdin_kb": maxima.stdin_kb,
                    "max_files": maxima.files,
                    "healthy": why is None if announced else None,
                    "unavailable": why,
                }
            )
        return described

    async def ready(self) -> tuple[bool, str]:
        try:
            await self.redis.ping()
            slots = await self.broker.get(SLOTS)
        except aioredis.RedisError as exc:  # the reason names no address: anyone may read it
            log.warning("api.not_ready", error=str(exc)[:200])
            return False, "Redis is unreachable"
        if not slots or int(slots) <= 0:
            return False, "no worker is alive (none has reported in the last 30 s)"
        return True, f"{int(slots)} test slots in the fleet"

    async def close(self) -> None:
        await self.redis.aclose()
        await self.broker.aclose()
