"""The result backend's chord bookkeeping rides out a Redis restart: the script is called again
while Redis refuses connections, and a claim a lost reply hid is recognised as this call's."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis

import worker.backend
from worker.backend import _RiddenOut


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
    monkeypatch.setattr(worker.backend.time, "sleep", lambda s: None)


def test_the_script_is_called_again_until_redis_answers() -> None:
    script = Flaky(3, [2, 0, 5, 0])
    assert _RiddenOut(script, fakeredis.FakeRedis())(keys=KEYS, args=ARGS) == [2, 0, 5, 0]
    assert script.calls == 4


def test_a_claim_made_by_a_call_whose_reply_was_lost_is_this_calls() -> None:
    client = fakeredis.FakeRedis()
    client.set("claim", "token-1")  # the lost call claimed the chord's completion
    assert _RiddenOut(Flaky(1, [5, 0, 5, 0]), client)(keys=KEYS, args=ARGS) == [5, 0, 5, 1]
    client.set("claim", "someone-else")
    assert _RiddenOut(Flaky(1, [5, 0, 5, 0]), client)(keys=KEYS, args=ARGS) == [5, 0, 5, 0]


def test_redis_away_for_longer_than_the_ride_out_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker.backend, "RIDE_OUT_S", -1.0)
    with pytest.raises(redis.ConnectionError):
        _RiddenOut(Flaky(99, []), fakeredis.FakeRedis())(keys=KEYS, args=ARGS)


def test_the_celery_app_uses_this_backend_for_redis_urls() -> None:
    from worker.app import create_app

    app = create_app()
    app.conf.result_backend = "redis://127.0.0.1:6379/15"
    assert type(app.backend).__name__ == "ResultBackend"
