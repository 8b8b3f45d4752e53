"""The result backend rides out a Redis restart: its client waits and retries within the outage
window, the chord's script is called again while Redis refuses connections, and a claim a lost
reply hid is recognised as this call's."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis

import worker.outages
from worker.errors import RedisUnavailable
from worker.outages import WINDOW_OPTION, Outage, RidingRedis
from worker.queue.backend import _RiddenOut


class Flaky:
    """A chord-part script that is refused ``failures`` times, then answers ``answer``."""

    def __init__(self, failures: int, answer: list[Any]) -> None:
        self.failures, self.answer, self.calls = failures, answer, 0

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> list[Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")
        return self.answer


KEYS = ["j", "t", "s", "d", "g", "claim"]
ARGS = ["tid", "{}", 1, 0, 0, 0, 10, "token-1"]


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.outages.time, "sleep", lambda s: None)


def ridden(script: Flaky, client: fakeredis.FakeRedis, window_s: float = 60.0) -> _RiddenOut:
    return _RiddenOut(script, client, Outage("Redis", "redis", window_s))


def test_the_script_is_called_again_until_redis_answers() -> None:
    script = Flaky(3, [2, 0, 5, 0])
    assert ridden(script, fakeredis.FakeRedis())(keys=KEYS, args=ARGS) == [2, 0, 5, 0]
    assert script.calls == 4


def test_a_claim_made_by_a_call_whose_reply_was_lost_is_this_calls() -> None:
    client = fakeredis.FakeRedis()
    client.set("claim", "token-1")  # the lost call claimed the chord's completion
    assert ridden(Flaky(1, [5, 0, 5, 0]), client)(keys=KEYS, args=ARGS) == [5, 0, 5, 1]
    client.set("claim", "someone-else")
    assert ridden(Flaky(1, [5, 0, 5, 0]), client)(keys=KEYS, args=ARGS) == [5, 0, 5, 0]


def test_redis_away_for_longer_than_the_window_is_an_error_that_says_so() -> None:
    with pytest.raises(RedisUnavailable, match="Redis unreachable for 0 s"):
        ridden(Flaky(99, []), fakeredis.FakeRedis(), window_s=0.0)(keys=KEYS, args=ARGS)


def test_the_celery_app_uses_this_backend_for_redis_urls() -> None:
    from worker.app import create_app

    app = create_app()
    app.conf.result_backend = "redis://127.0.0.1:6379/15"
    assert type(app.backend).__name__ == "ResultBackend"


def test_the_backends_client_rides_out_an_outage_for_the_configured_window() -> None:
    from worker.app import create_app

    app = create_app()
    app.conf.result_backend = "redis://127.0.0.1:6379/15"
    app.conf.result_backend_transport_options = {WINDOW_OPTION: 7}
    assert isinstance(app.backend.client, RidingRedis)
    assert app.backend.client.outage.window_s == 7.0
    assert app.backend.client.outage is app.backend.outage
