"""The webhook delivery loop outlives what goes wrong in one round."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from structlog.testing import capture_logs

from worker.api.webhooks import Deliverer, Policy

POLICY = Policy(allow_private=False, retry_s=60, backoff_ms=100, open_secret="s")


class Flaky:
    """Redis whose first claim fails (a restart), then hands out one webhook, then none."""

    def __init__(self) -> None:
        self.claims = 0

    async def eval(self, *_: Any) -> list[bytes]:
        self.claims += 1
        if self.claims == 1:
            raise aioredis.ConnectionError("Redis is loading")
        return [b"broken"] if self.claims == 2 else []


class Breaking(Deliverer):
    async def deliver(self, sid: str) -> None:
        raise KeyError(sid)  # a bug in one delivery


def test_a_redis_outage_and_a_failing_delivery_do_not_stop_the_loop() -> None:
    client = Flaky()

    async def main() -> None:
        deliverer = Breaking(client, None, POLICY)  # type: ignore[arg-type]
        running = asyncio.create_task(deliverer.run(poll_s=0.01))
        while client.claims < 4:
            await asyncio.sleep(0.01)
        running.cancel()
        await deliverer.close()

    with capture_logs() as logs:
        asyncio.run(asyncio.wait_for(main(), timeout=10))
    events = [e["event"] for e in logs]
    assert "webhook.redis_unavailable" in events
    failed = [e for e in logs if e["event"] == "webhook.failed"]
    assert failed and failed[0]["submission_id"] == "broken"
    assert client.claims >= 4  # still claiming after both
