"""API keys: created and revoked with ``runner keys``, hashed at rest.

A key reads ``rk_<id>_<secret>``; Redis keeps its SHA-256 (never the key), its name, the
tenant its submissions are queued as, its rate limit and in-flight cap, and the secret its
webhooks are signed with (which the receiver holds too, so it is kept as given). A secret is
replaced with an overlap (``runner keys rotate-secret``): until it ends, webhooks carry a
signature by the old secret beside the new one's, so the receiver can switch whenever it
likes. A revoked key keeps its record, so a request with it is told it was revoked, not that it
never existed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass, fields

import redis.asyncio as aioredis

from worker.api.signing import new_secret
from worker.errors import ApiKeyError, BrokerError
from worker.keyspace import API_KEYS, api_key_key

TOKEN = re.compile(r"rk_([0-9a-f]{12})_[A-Za-z0-9_-]{20,64}")
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    tenant: str
    rate_per_s: int  # requests per second, sustained
    burst: int  # requests at once after a quiet spell
    max_in_flight: int  # submissions not yet final
    webhook_secret: str
    created: int  # unix seconds
    revoked: int = 0  # unix seconds, 0 while valid
    previous_secret: str = ""  # the secret the current one replaced, signing until...
    previous_secret_until: int = 0  # unix seconds

    def public(self) -> dict[str, object]:
        """What ``runner keys list`` shows: everything but the webhook secrets."""
        shown = asdict(self)
        del shown["webhook_secret"], shown["previous_secret"]
        return shown

    def signing_secrets(self, now: float) -> list[str]:
        """The secrets a webhook is signed with now: the current one, and the one it
        replaced while their overlap lasts."""
        if self.previous_secret and now < self.previous_secret_until:
            return [self.webhook_secret, self.previous_secret]
        return [self.webhook_secret]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def create(
        self, name: str, rate_per_s: int, burst: int, max_in_flight: int, tenant: str = ""
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: only its hash is kept)."""
        for what, value in (("name", name), ("tenant", tenant or name)):
            if not NAME.fullmatch(value):
                raise ApiKeyError(f"{what} {value!r}: 1 to 64 of A-Z a-z 0-9 . _ -")
        if min(rate_per_s, burst, max_in_flight) < 1:
            raise ApiKeyError("rate, burst and in-flight cap must each be at least 1")
        key = ApiKey(
            id=secrets.token_hex(6),
            name=name,
            tenant=tenant or name,
            rate_per_s=rate_per_s,
            burst=burst,
            max_in_flight=max_in_flight,
            webhook_secret=new_secret(),
            created=int(time.time()),
        )
        token = f"rk_{key.id}_{secrets.token_urlsafe(32)}"
        fields_ = {k: str(v) for k, v in asdict(key).items()} | {"hash": _digest(token)}
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(api_key_key(key.id), mapping=fields_)
                pipe.sadd(API_KEYS, key.id)
                await pipe.execute()
        except aioredis.RedisError as exc:
            raise BrokerError(f"cannot store the key: {exc}") from exc
        return key, token

    async def verify(self, token: str) -> ApiKey | str:
        """The key a token is, or why it is not one (``unknown``, ``revoked``)."""
        match = TOKEN.fullmatch(token)
        if match is None:
            return "not an API key (rk_...)"
        stored = await self._redis.hgetall(api_key_key(match.group(1)))
        if not stored or not hmac.compare_digest(stored.get(b"hash", b"").decode(), _digest(token)):
            return "unknown API key"
        key = _decoded(stored)
        if key.revoked:
            return "this API key was revoked"
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        stored = await self._redis.hgetall(api_key_key(key_id))
        return _decoded(stored) if stored else None

    async def all(self) -> list[ApiKey]:
        ids = sorted(i.decode() for i in await self._redis.smembers(API_KEYS))
        found = [await self.get(i) for i in ids]
        return [k for k in found if k is not None]

    async def rotate_secret(self, key_id: str, overlap_s: int) -> ApiKey:
        """A new webhook secret; the current one keeps signing beside it for ``overlap_s``
        (an older one still in its overlap stops: two sign at most)."""
        key = await self.get(key_id)
        if key is None:
            raise ApiKeyError(f"no API key {key_id!r} (runner keys list shows them)")
        if overlap_s < 0:
            raise ApiKeyError(f"overlap: {overlap_s} s; 0 or more seconds")
        rotated = {
            "webhook_secret": new_secret(),
            "previous_secret": key.webhook_secret,
            "previous_secret_until": str(int(time.time()) + overlap_s),
        }
        try:
            await self._redis.hset(api_key_key(key_id), mapping=rotated)
        except aioredis.RedisError as exc:
            raise BrokerError(f"cannot store the key: {exc}") from exc
        return await self.get(key_id) or key

    async def revoke(self, key_id: str) -> ApiKey:
        key = await self.get(key_id)
        if key is None:
            raise ApiKeyError(f"no API key {key_id!r} (runner keys list shows them)")
        if not key.revoked:
            await self._redis.hset(api_key_key(key_id), "revoked", str(int(time.time())))
        return await self.get(key_id) or key


def _decoded(stored: dict[bytes, bytes]) -> ApiKey:
    values: dict[str, object] = {}
    for f in fields(ApiKey):
        raw = stored.get(f.name.encode(), b"").decode()
        values[f.name] = int(raw or 0) if f.type in (int, "int") else raw
    return ApiKey(**values)  # type: ignore[arg-type]


@dataclass
class Caller:
    """Who sent a request: its API key, or None on an open API (RUNNER_API_OPEN)."""

    key: ApiKey | None

    @property
    def key_id(self) -> str:
        return self.key.id if self.key is not None else ""
