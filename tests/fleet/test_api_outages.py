"""``runner api`` while its Redis is away, on Redis servers of the tests' own (never the shared
one): a documented 503 with ``Retry-After`` at once, nothing held, and the key, its tenant and
the fleet counted as before once Redis is back."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fleet.api import Api, api_server
from tests.fleet.conftest import RUNNER
from tests.fleet.test_reliability import OwnRedis
from worker.keyspace import ADMITTED as RUNS
from worker.keyspace import ADMITTED_TESTS as ADMITTED
from worker.keyspace import TENANT, inflight_key

pytestmark = [pytest.mark.redis]

ONE_TEST = {
    "language": "python",
    "source": "print(int(input()) + 1)",
    "tests": [{"stdin": "41", "expected_stdout": "42"}],
}
# a request waits at most this long for Redis (the API's REDIS_WAIT_S, then kombu's retries of
# one publish, which follow the same window), with a wide margin for a loaded machine: the
# point is that it does not ride out the fleet's 60 s outage window
ANSWERED_WITHIN_S = 30


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[OwnRedis, OwnRedis]]:
    """Two Redis servers: the broker's and the result backend's."""
    for name in ("broker", "backend"):
        (tmp_path / name).mkdir()
    broker, backend = OwnRedis(tmp_path / "broker"), OwnRedis(tmp_path / "backend")
    for server in (broker, backend):
        server.start()
    yield broker, backend
    broker.close()
    backend.close()


def keyed(env: dict[str, str], name: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(RUNNER), "keys", "create", name, "--in-flight", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def held(backend: redis.Redis, key_id: str) -> dict[str, Any]:
    """What the key, its tenant and the fleet hold in the result backend."""
    return {
        "key": backend.zcard(inflight_key(key_id)),
        "tenant": int(backend.hget(TENANT + "outage", "tests") or 0),
        "fleet": int(backend.get(ADMITTED) or 0),
        "runs": backend.hlen(RUNS),
    }


def refused_at_once(api: Api) -> Any:
    started = time.monotonic()
    answer = api.call("POST", "/v1/submissions", ONE_TEST, timeout=ANSWERED_WITHIN_S + 30)
    assert time.monotonic() - started < ANSWERED_WITHIN_S, "the request rode out the outage"
    assert (answer.status, answer.body["error"]["code"]) == (503, "fleet_unreachable"), answer
    assert int(answer.headers["retry-after"]) >= 1
    assert "127.0.0.1" not in answer.body["error"]["message"]  # no internal address
    return answer


def test_a_broker_that_is_down_gets_503_and_holds_nothing(
    servers: tuple[OwnRedis, OwnRedis], tmp_path: Path
) -> None:
    broker, backend = servers
    env = {"RUNNER_BROKER_URL": broker.url(0), "RUNNER_RESULT_BACKEND": backend.url(1)}
    key = keyed(env, "outage")
    with api_server(tmp_path, **env) as api:
        api.token = key["token"]
        assert api.call("POST", "/v1/submissions", ONE_TEST).status == 202  # no worker: in flight
        broker.stop()
        for _ in range(3):  # a client that retries as told must not lock itself out
            refused_at_once(api)
        assert held(backend.client(1), key["id"]) == {"key": 1, "tenant": 1, "fleet": 1, "runs": 1}
        broker.start()
        deadline = time.monotonic() + 30
        while (again := api.call("POST", "/v1/submissions", ONE_TEST)).status == 503:
            assert time.monotonic() < deadline, again
            time.sleep(0.5)
        assert again.status == 202, again  # the key's second slot, never taken by the outage
        assert held(backend.client(1), key["id"]) == {"key": 2, "tenant": 2, "fleet": 2, "runs": 2}


def test_redis_down_whole_gets_503_at_once_and_the_key_works_once_it_is_back(
    servers: tuple[OwnRedis, OwnRedis], tmp_path: Path
) -> None:
    """One Redis for broker and results, as in the compose stack: stopped, every submission
    is a prompt 503, reads too; back, the key has all its slots."""
    _, server = servers
    env = {"RUNNER_BROKER_URL": server.url(0), "RUNNER_RESULT_BACKEND": server.url(1)}
    key = keyed(env, "outage")
    with api_server(tmp_path, **env) as api:
        api.token = key["token"]
        server.stop()
        for _ in range(3):
            refused_at_once(api)
        read = api.call("GET", "/v1/submissions/abc")
        assert (read.status, read.body["error"]["code"]) == (503, "fleet_unreachable")
        server.start()
        deadline = time.monotonic() + 30
        answers = []
        while len(answers) < 2:
            answer = api.call("POST", "/v1/submissions", ONE_TEST)
            if answer.status != 503:
                answers.append(answer.status)
            assert time.monotonic() < deadline, answer
            time.sleep(0.2)
        assert answers == [202, 202]  # an in-flight cap of 2: nothing of the outage held
        assert held(server.client(1), key["id"]) == {"key": 2, "tenant": 2, "fleet": 2, "runs": 2}
