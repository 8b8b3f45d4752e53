"""Webhooks as Standard Webhooks verifiers read them (the `standardwebhooks` package, the
specification's own Python verifier), secrets replaced with an overlap, and the delivery loop:
each delivery a task of its own, the loop outliving what goes wrong in one round."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis
from standardwebhooks import Webhook, WebhookVerificationError
from structlog.testing import capture_logs

from worker.api.keys import ApiKey
from worker.api.records import event_id
from worker.api.signing import new_secret, signature
from worker.api.webhooks import Deliverer, Policy, event_body
from worker.errors import SettingsError
from worker.keyspace import HOOKS_DUE as DUE_KEY
from worker.settings import Settings
from worker.webhook_secrets import secret_problem

POLICY = Policy(
    retry_s=60, backoff_ms=100, timeout_s=5, keep_s=60, open_secrets=(), allow_private=False
)
RESULT = {"contract": 1, "verdict": "AC", "passed": 1, "total": 1, "tests": []}


def sent(secrets: list[str], sid: str = "5f0c6a4e9a394d3b8d0e2b8f0f6f3c11") -> tuple[bytes, dict]:
    body = event_body(sid, 1_764_633_600_123, RESULT)
    import time

    timestamp = str(int(time.time()))
    headers = {
        "webhook-id": event_id(sid),
        "webhook-timestamp": timestamp,
        "webhook-signature": signature(secrets, event_id(sid), timestamp, body),
    }
    return body, headers


def test_the_standard_webhooks_verifier_takes_our_webhooks_unchanged() -> None:
    secret = new_secret()
    body, headers = sent([secret])
    event = Webhook(secret).verify(body, headers)
    assert event == {
        "type": "submission.finished",
        "timestamp": "2025-12-02T00:00:00.123Z",
        "data": {"submission_id": "5f0c6a4e9a394d3b8d0e2b8f0f6f3c11", "result": RESULT},
    }
    assert headers["webhook-id"] == "msg_5f0c6a4e9a394d3b8d0e2b8f0f6f3c11"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"AC", b"WA"), headers)


def test_during_a_rotation_either_secret_verifies_and_no_other() -> None:
    old, new = new_secret(), new_secret()
    body, headers = sent([new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["type"] == "submission.finished"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_a_keys_old_secret_signs_only_while_its_overlap_lasts() -> None:
    key = ApiKey(
        id="0" * 12,
        name="shop",
        tenant="shop",
        rate_per_s=1,
        burst=1,
        max_in_flight=1,
        webhook_secret="whsec_new",
        created=0,
        previous_secret="whsec_old",
        previous_secret_until=1_000,
    )
    assert key.signing_secrets(999.0) == ["whsec_new", "whsec_old"]
    assert key.signing_secrets(1_000.0) == ["whsec_new"]
    assert "previous_secret" not in key.public() and "webhook_secret" not in key.public()


def test_secrets_are_whsec_and_standard_base64_of_24_to_64_bytes() -> None:
    made = new_secret()
    assert made.startswith("whsec_") and len(base64.b64decode(made[6:])) == 32
    assert secret_problem(made) == ""
    assert "does not start with whsec_" in secret_problem("s3cret")
    assert "standard base64" in secret_problem("whsec_" + "-_" * 20)
    assert "holds 8 bytes" in secret_problem("whsec_" + base64.b64encode(b"12345678").decode())


def test_a_bad_open_api_secret_stops_the_start_with_the_settings_name() -> None:
    good = new_secret()
    assert Settings.from_env({"RUNNER_API_WEBHOOK_SECRET": f"{good} {new_secret()}"})
    with pytest.raises(SettingsError, match="RUNNER_API_WEBHOOK_SECRET: its secret 2 does not"):
        Settings.from_env({"RUNNER_API_WEBHOOK_SECRET": f"{good} plain-text"})


# --- the delivery loop ----------------------------------------------------------------------


class Outage(fakeredis.FakeAsyncRedis):
    """Redis whose first claim fails (a restart)."""

    claims = 0

    async def evalsha(self, *args: Any) -> Any:
        type(self).claims += 1
        if type(self).claims == 1:
            raise aioredis.ConnectionError("Redis is loading")
        return await super().evalsha(*args)


class Scripted(Deliverer):
    """Deliveries that do what the test says: hang, raise, or note they ran."""

    def __init__(self, client: aioredis.Redis) -> None:
        super().__init__(client, None, POLICY)  # type: ignore[arg-type]
        self.done: list[str] = []

    async def deliver(self, sid: str) -> None:
        if sid.startswith("hang"):
            await asyncio.sleep(3600)
        if sid == "broken":
            raise KeyError(sid)  # a bug in one delivery
        await self._redis.zrem(DUE_KEY, sid)
        self.done.append(sid)


def test_a_delivery_that_hangs_or_breaks_holds_nothing_else_and_redis_outages_pass() -> None:
    async def main() -> Scripted:
        client = Outage(server=fakeredis.FakeServer())
        await client.zadd(DUE_KEY, {"hang-1": 0, "broken": 1, "hang-2": 2})
        await client.zadd(DUE_KEY, {f"honest-{n}": 3 + n for n in range(20)})
        deliverer = Scripted(client)
        running = asyncio.create_task(deliverer.run(poll_s=0.05))
        while len(deliverer.done) < 20:
            await asyncio.sleep(0.01)
        # due later, while two hang: delivered as soon as it is due
        await client.zadd(DUE_KEY, {"late": 0})
        while "late" not in deliverer.done:
            await asyncio.sleep(0.01)
        running.cancel()
        await deliverer.close()  # the two still hanging: due again at once, for another
        assert set(await client.zrange(DUE_KEY, 0, -1)) >= {b"hang-1", b"hang-2"}
        return deliverer

    with capture_logs() as logs:
        deliverer = asyncio.run(asyncio.wait_for(main(), timeout=20))
    assert sorted(deliverer.done) == sorted([f"honest-{n}" for n in range(20)] + ["late"])
    events = [e["event"] for e in logs]
    assert "webhook.redis_unavailable" in events
    failed = [e for e in logs if e["event"] == "webhook.failed"]
    assert failed and failed[0]["submission_id"] == "broken"


def test_the_event_is_minified_json_of_the_result() -> None:
    body = event_body("abc", 0, RESULT)
    assert b" " not in body
    assert json.loads(body)["timestamp"] == "1970-01-01T00:00:00.000Z"
