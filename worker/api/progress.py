"""What the HTTP API tells of the submissions it accepted: a submission's state, progress and
result, a key's submissions page by page, waiting for one to be final, its event stream and
its cancellation. Everything is read from Redis as the fleet writes it (the workers' progress
hash, Celery's stored result, the API's own record), so any API process answers for any
submission."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import Request

from worker.api.keys import Caller
from worker.api.limits import STREAM_LEASE_S, close_stream, open_stream
from worker.api.records import NOT_STORED_MS, now_ms, stored_result, webhook_view
from worker.api.requests import Problem
from worker.contract.fields import quoted
from worker.keyspace import (
    API_SUMMARIES,
    hints_key,
    progress_key,
    record_key,
    result_key,
    submissions_key,
)
from worker.pipeline.scoring import CANCELLED
from worker.settings import Settings

log = structlog.get_logger()

ID = r"^[A-Za-z0-9-]{1,64}$"
EVENT_POLL_S = 0.1


class Progress:
    """A submission's progress and result as the API shows them to the key that sent it (or to
    anyone, on an open API)."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings

    async def wait(self, sid: str, caller: Caller, seconds: float) -> tuple[int, Any] | None:
        """``(200, its status)`` once the submission is final within ``seconds``, else None."""
        deadline = time.monotonic() + seconds
        pause = 0.005
        while time.monotonic() < deadline:
            if await self.redis.exists(result_key(sid)):
                return 200, await self.status(sid, caller)
            await asyncio.sleep(pause)
            pause = min(0.05, pause * 1.5)
        return None

    async def status(self, sid: str, caller: Caller) -> dict[str, Any]:
        if not re.fullmatch(ID, sid):
            raise Problem(404, "not_found", "a submission id is 1 to 64 of A-Z a-z 0-9 -")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(record_key(sid))
            pipe.get(result_key(sid))
            pipe.hgetall(progress_key(sid))
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
        if result is None and record.get("finished_ms"):  # final: not stored yet, or expired
            settled = record.get("hook_state") in ("delivered", "failed")  # it was stored
            late = now_ms() - int(record["finished_ms"]) > NOT_STORED_MS
            state = "expired" if settled or late else state
        total = record.get("total")
        hook = webhook_view(sid, record)
        return {
            "id": sid,
            "state": state,
            "total": int(total) if total else (result or {}).get("total"),
            "finished": len(tests),
            "tests": [] if result is not None else tests,  # once done, the result has them
            "result": result,
            "webhook": hook,
        }

    async def page(self, caller: Caller, limit: int, before: float | None) -> dict[str, Any]:
        """The caller's submissions, newest first: ``limit`` accepted before ``before``."""
        index = submissions_key(caller.key_id)
        top = f"({before!r}" if before is not None else "+inf"
        found = await self.redis.zrevrangebyscore(
            index, top, "-inf", start=0, num=limit, withscores=True
        )
        ids = [member.decode() for member, _ in found]
        keys = [k for sid in ids for k in (result_key(sid), progress_key(sid), record_key(sid))]
        rows = await API_SUMMARIES(self.redis, keys, []) if ids else []
        summaries = []
        for sid, (state, verdict, passed, total, created) in zip(ids, rows, strict=True):
            summaries.append(
                {
                    "id": sid,
                    "state": state.decode(),
                    "created_ms": int(created or 0),
                    "verdict": verdict.decode() or None,
                    "passed": int(passed) if passed else None,
                    "total": int(total) if total else None,
                    "status_url": f"/v1/submissions/{sid}",
                }
            )
        more = len(found) == limit
        after = f"/v1/submissions?limit={limit}&before={found[-1][1]!r}" if more else None
        return {"submissions": summaries, "next": after}

    async def cancel(self, sid: str, caller: Caller) -> dict[str, Any]:
        """Cancel a submission not yet final: tests not yet started end ``SK``, the verdict is
        ``SK`` (error ``cancelled``) once the tests running end; 409 once it is final."""
        status = await self.status(sid, caller)
        if status["state"] == "done":
            verdict = status["result"]["verdict"]
            raise Problem(409, "already_final", f"submission {sid} is final already ({verdict})")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(hints_key(sid), CANCELLED, int(time.time() * 1000))
            pipe.expire(hints_key(sid), self.settings.result_expires_s)
            await pipe.execute()
        log.info("api.cancelled", submission_id=sid, key=caller.key_id)
        return status

    async def events(
        self, request: Request, sid: str, caller: Caller, stream: str
    ) -> AsyncIterator[bytes]:
        """``test`` events as tests finish, then one ``result`` event; a comment now and then
        keeps proxies from closing a quiet stream. ``stream`` holds one of the key's places
        for open streams (:func:`worker.api.limits.open_stream`), renewed while it is open."""
        sent: set[int] = set()
        quiet = renewed = time.monotonic()
        try:
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
                if caller.key is not None and time.monotonic() - renewed > STREAM_LEASE_S / 3:
                    await open_stream(self.redis, caller.key.id, stream)
                    renewed = time.monotonic()
                await asyncio.sleep(EVENT_POLL_S)
        finally:
            if caller.key is not None:
                with suppress(aioredis.RedisError):
                    await close_stream(self.redis, caller.key.id, stream)


def _indexed(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": index, "result": test} for index, test in enumerate(tests)]


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
