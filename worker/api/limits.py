"""Per-key limits, kept in Redis so every API process counts alike: a token bucket for the
request rate, and the submissions not yet final (the join frees a slot, see
:mod:`worker.api.records`; a slot whose submission never ends lapses with its record)."""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from worker.api.records import inflight_key, now_ms

# KEYS: the bucket. ARGV: rate per second, burst, now (ms). Returns 0 when the request may go,
# else the milliseconds until a token is back.
BUCKET = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""

# KEYS: the key's in-flight set. ARGV: the cap, now (ms), the submission id, until (ms).
# Returns 1 when admitted (the id counted until `until` or until the join frees it), else 0.
ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
"""


async def take_token(client: aioredis.Redis, key_id: str, rate: int, burst: int) -> float:
    """0 when this request may go; else the seconds to wait (for ``Retry-After``)."""
    wait = await client.eval(BUCKET, 1, f"runner:api:rate:{key_id}", rate, burst, now_ms())
    return int(wait) / 1000


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


async def admit(
    client: aioredis.Redis, key_id: str, cap: int, submission_id: str, for_s: int
) -> bool:
    now = now_ms()
    answer = await client.eval(
        ADMIT, 1, inflight_key(key_id), cap, now, submission_id, now + for_s * 1000
    )
    return bool(answer)


async def release(client: aioredis.Redis, key_id: str, submission_id: str) -> None:
    """A slot given back by the API itself: the submission was refused after admission."""
    await client.zrem(inflight_key(key_id), submission_id)
