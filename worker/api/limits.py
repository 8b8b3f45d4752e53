"""Per-key limits, kept in Redis so every API process counts alike: token buckets for the
request rate (one for submissions, one for reads, so pollers never use up a key's submissions),
the submissions not yet final (the join frees a slot, see :mod:`worker.api.records`; a slot
whose submission never ends lapses with its record), and the event streams open at once.

Every answer to a keyed request says where its bucket stands in the IETF draft's
``RateLimit-Policy`` and ``RateLimit`` header fields (draft-ietf-httpapi-ratelimit-headers):
the quota is the bucket's burst, its window the seconds an empty bucket takes to fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from worker.api.records import now_ms
from worker.keyspace import API_BUCKET, API_HOLD, inflight_key, rate_key, streams_key

READS_PER_SUBMIT = 10  # a key's read rate and burst, per unit of its submission rate and burst
MAX_STREAMS = 20  # event streams one key may hold open at once
STREAM_LEASE_S = 30  # an open stream renews its place this often; a dead process's lapses


@dataclass(frozen=True)
class Bucket:
    """Where a key's bucket of one kind (``submit`` or ``read``) stands after a request."""

    kind: str
    rate: int  # per second
    burst: int
    wait_s: float  # 0: the request may go
    left: float  # tokens

    def headers(self) -> dict[str, str]:
        window = math.ceil(self.burst / self.rate)
        refill = math.ceil((self.burst - self.left) / self.rate)
        return {
            "RateLimit-Policy": f'"{self.kind}";q={self.burst};w={window}',
            "RateLimit": f'"{self.kind}";r={math.floor(self.left)};t={refill}',
        }


async def take_tokens(
    client: aioredis.Redis, key_id: str, kind: str, rate: int, burst: int, cost: int = 1
) -> Bucket:
    """Take ``cost`` tokens from the key's ``kind`` bucket, or say how long until it can."""
    if kind == "read":
        rate, burst = rate * READS_PER_SUBMIT, burst * READS_PER_SUBMIT
    wait, left = await API_BUCKET(client, [rate_key(key_id, kind)], [rate, burst, now_ms(), cost])
    return Bucket(kind, rate, burst, int(wait) / 1000, int(left) / 1000)


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


async def admit(
    client: aioredis.Redis, key_id: str, cap: int, submission_id: str, for_s: int
) -> bool:
    now = now_ms()
    answer = await API_HOLD(
        client, [inflight_key(key_id)], [cap, now, submission_id, now + for_s * 1000]
    )
    return bool(answer)


async def open_stream(client: aioredis.Redis, key_id: str, stream: str) -> bool:
    """Count an event stream against its key (or renew its place); False past the cap."""
    now = now_ms()
    until = now + STREAM_LEASE_S * 1000
    answer = await API_HOLD(client, [streams_key(key_id)], [MAX_STREAMS, now, stream, until])
    return bool(answer)


async def close_stream(client: aioredis.Redis, key_id: str, stream: str) -> None:
    await client.zrem(streams_key(key_id), stream)
