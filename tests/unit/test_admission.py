"""Admission, test data outside the queue and the bounded program cache, against fakeredis
and a fake pool: what is refused, with which code, and what is kept."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import kombu.exceptions
import pytest

import worker.data.storage
import worker.producer.intake
from tests.unit.fleet import open_intake, parsed, run_all, start_runtime, sub
from worker.client import Client
from worker.data.artifacts import Stored
from worker.data.storage import LINGER_S, digest
from worker.errors import BrokerError, RedisUnavailable, SubmissionRejected
from worker.keyspace import ADMITTED as RUNS
from worker.keyspace import ADMITTED_DEADLINE as DEADLINES
from worker.keyspace import ADMITTED_TESTS, DATA, TENANT
from worker.keyspace import ARTIFACT as PREFIX
from worker.keyspace import ARTIFACTS_BYTES as TOTAL
from worker.keyspace import ARTIFACTS_LRU as LRU
from worker.pipeline import runtime
from worker.pipeline.tasks import run_test, submit
from worker.producer.admission import Ticket
from worker.producer.intake import Intake, Owed
from worker.programs import File
from worker.queue.fairqueue import TENANT_HEADER
from worker.settings import Settings


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def refused(intake: Intake, raw: dict[str, Any], run: str) -> SubmissionRejected:
    with pytest.raises(SubmissionRejected) as caught:
        intake.accept(parsed(raw), run)
    return caught.value


def test_a_tenant_past_its_tests_in_flight_is_refused_and_others_are_not(
    server: fakeredis.FakeServer,
) -> None:
    intake = open_intake(server, tenant_max_tests="5")
    intake.accept(parsed(sub(4, tenant="flood")), "r1")
    exc = refused(intake, sub(2, tenant="flood"), "r2")
    assert exc.code == "tenant_busy"
    assert "4 tests in flight" in exc.message and "limit of 5" in exc.message
    intake.accept(parsed(sub(5, tenant="honest")), "r3")  # another tenant: its own cap
    intake.accept(parsed(sub(5)), "r4")  # no tenant: the tenant "default"


def test_a_run_that_ends_gives_its_place_back(server: fakeredis.FakeServer) -> None:
    intake = open_intake(server, tenant_max_tests="3")
    intake.accept(parsed(sub(3, tenant="a")), "r1")
    assert refused(intake, sub(1, tenant="a"), "r2").code == "tenant_busy"
    intake.give_back(Ticket("a", "r1"))
    intake.accept(parsed(sub(3, tenant="a")), "r2")


def test_a_run_whose_join_never_came_stops_counting_at_its_deadline(
    server: fakeredis.FakeServer,
) -> None:
    intake = open_intake(server, tenant_max_tests="3", max_queued_tests="3")
    client = fakeredis.FakeRedis(server=server)
    intake.accept(parsed(sub(3, tenant="a")), "lost")
    assert refused(intake, sub(1, tenant="b"), "r1").code == "fleet_busy"
    client.zadd(DEADLINES, {"lost": 1})  # its deadline long past
    intake.accept(parsed(sub(3, tenant="a")), "r2")
    assert client.hkeys(RUNS) == [b"r2"]
    assert client.hget(TENANT + "a", "tests") == b"3"


def test_a_tenant_past_its_stored_data_is_refused(server: fakeredis.FakeServer) -> None:
    """Counted compressed: hex of random bytes shrinks to about half."""
    intake = open_intake(server, tenant_max_data_mb="1", inline_data_kb="1")
    noise = random.Random(7).randbytes(450_000).hex()  # 900 KB; 526 KB compressed
    intake.accept(parsed(sub(1, stdin=noise, tenant="a")), "r1")
    exc = refused(intake, sub(1, stdin=noise[::-1], tenant="a"), "r2")
    assert exc.code == "tenant_busy" and "test data" in exc.message


def test_a_submission_refused_anyway_is_refused_before_its_test_data_is_packed(
    server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant at its cap floods with megabytes of input: each refusal comes before the
    input is hashed and compressed (what would cost the producer's CPU), and records nothing."""
    intake = open_intake(server, tenant_max_tests="2", inline_data_kb="1")
    intake.accept(parsed(sub(2, tenant="a")), "r1")
    packed: list[int] = []
    real = worker.data.storage.pack
    monkeypatch.setattr(worker.data.storage, "pack", lambda data: packed.append(1) or real(data))
    exc = refused(intake, sub(1, stdin="x" * 100_000, tenant="a"), "r2")
    assert exc.code == "tenant_busy" and "2 tests in flight" in exc.message
    assert packed == []
    assert fakeredis.FakeRedis(server=server).hkeys(RUNS) == [b"r1"]
    intake.accept(parsed(sub(1, stdin="x" * 100_000, tenant="b")), "r3")
    assert packed  # another tenant's is packed as ever


def test_a_fleet_past_its_bound_of_tests_in_flight_refuses_with_fleet_busy(
    server: fakeredis.FakeServer,
) -> None:
    intake = open_intake(server, max_queued_tests="10")
    intake.accept(parsed(sub(9, tenant="a")), "r1")
    exc = refused(intake, sub(2, tenant="b"), "r2")
    assert exc.code == "fleet_busy" and "9 tests are in flight" in exc.message
    intake.accept(parsed(sub(1, tenant="b")), "r3")  # exactly at the bound
    intake.give_back(Ticket("a", "r1"))
    intake.accept(parsed(sub(9, tenant="b")), "r4")


def test_a_redis_near_its_maxmemory_refuses_with_fleet_busy(
    server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = open_intake(server, redis_high_water_pct="80")
    monkeypatch.setattr(
        fakeredis.FakeRedis,
        "info",
        lambda self, section=None: {"maxmemory": 1000, "used_memory": 850},
    )
    exc = refused(intake, sub(1), "r1")
    assert exc.code == "fleet_busy" and "uses 0 MB of its 0 MB" in exc.message


def test_a_refused_submission_leaves_nothing_behind(server: fakeredis.FakeServer) -> None:
    intake = open_intake(server, max_queued_tests="1", inline_data_kb="0")
    client = fakeredis.FakeRedis(server=server)
    refused(intake, sub(2, stdin="x" * 100), "r1")
    assert client.keys("*") == []


def test_big_test_data_rides_the_queue_as_a_reference_stored_once(
    server: fakeredis.FakeServer,
) -> None:
    intake = open_intake(server, inline_data_kb="4")
    big = "7 " * 50_000  # 100 KB
    for run in ("r1", "r2"):
        work = intake.accept(parsed(sub(3, stdin=big)), run)
        for task in work.tasks[1].tasks:
            assert len(json.dumps(task.args)) < 2_000  # the message, not the data
    client = fakeredis.FakeRedis(server=server)
    refs = client.keys(DATA + "*")
    assert len(refs) == 2  # the input (also the expected output) and the source, once each
    assert all(0 < client.ttl(ref) <= intake.settings.result_expires_s for ref in refs)
    assert sum(client.strlen(ref) for ref in refs) < 2_000  # compressed


# --- tasks, eagerly ---------------------------------------------------------------------------


@pytest.fixture
def fake_runtime(server: fakeredis.FakeServer) -> Iterator[runtime.Runtime]:
    yield start_runtime(server, inline_data_kb="1", tenant_max_tests="4")
    runtime.install(None)


def test_runner_submit_refuses_a_busy_tenant_with_rj(fake_runtime: runtime.Runtime) -> None:
    fake_runtime.intake.accept(parsed(sub(4, tenant="a")), "held")
    out = submit.apply(args=(sub(1, tenant="a", id="s1"),)).get()
    assert (out["verdict"], out["error"]["code"], out["submission_id"]) == (
        "RJ",
        "tenant_busy",
        "s1",
    )


def test_tests_with_stored_data_are_judged_and_the_join_frees_the_tenant(
    fake_runtime: runtime.Runtime,
) -> None:
    big = "5 " * 2_000
    work = fake_runtime.intake.accept(parsed(sub(4, stdin=big, tenant="a")), "run1")
    assert run_all(work)["verdict"] == "AC"
    assert fake_runtime.redis.hget(TENANT + "a", "tests") == b"0"
    assert fake_runtime.redis.hkeys(RUNS) == []
    fake_runtime.intake.accept(parsed(sub(4, tenant="a")), "run2")  # its place is back


def test_test_data_gone_is_an_ie_result_not_a_wrong_verdict(
    fake_runtime: runtime.Runtime,
) -> None:
    work = fake_runtime.intake.accept(parsed(sub(1, stdin="9 " * 2_000)), "run1")
    source = DATA + digest(b"print(input())")
    for key in fake_runtime.redis.keys(DATA + "*"):
        if key.decode() != source:  # the input, not the source
            fake_runtime.redis.delete(key)
    fake_runtime.intake.data._cache.clear()
    assert run_all(work)["tests"][0]["verdict"] == "IE"


def test_an_evicted_program_is_compiled_again_not_a_verdict(
    fake_runtime: runtime.Runtime,
) -> None:
    work = fake_runtime.intake.accept(parsed(sub(2)), "run1")
    compiled = work.tasks[0].apply().get()
    fake_runtime.redis.delete(PREFIX + compiled["program"])  # evicted from the cache
    fake_runtime.store._cache.clear()  # and from this worker's memory
    calls = len(fake_runtime.runner.calls)  # type: ignore[attr-defined]
    result = run_test.apply(args=(compiled, *work.tasks[1].tasks[0].args)).get()
    assert result["result"]["verdict"] == "AC"
    assert len(fake_runtime.runner.calls) == calls + 2  # type: ignore[attr-defined]
    assert fake_runtime.redis.exists(PREFIX + compiled["program"])  # stored again


def test_the_program_cache_keeps_to_its_budget_least_recently_used_first(
    server: fakeredis.FakeServer,
) -> None:
    intake = open_intake(server, cache_budget_mb="1", artifact_cache_mb="0")
    store = intake.artifacts
    client = fakeredis.FakeRedis(server=server)
    noise = random.Random(7).randbytes(300_000)  # does not shrink

    def kept() -> set[str]:
        return {key.decode().removeprefix(PREFIX) for key in client.keys(PREFIX + "*")}

    for n in range(6):
        store.put(f"k{n}", Stored((File("a.out", noise[n:] + noise[:n], 0o755),)))
        assert int(client.get(TOTAL)) <= 2**20
        if n == 2:
            assert kept() == {"k0", "k1", "k2"}
            assert store.get("k0") is not None  # used again: k1 is now the oldest
        if n == 3:
            assert kept() == {"k0", "k2", "k3"}
    assert kept() == {"k3", "k4", "k5"}
    assert {m.decode().removeprefix(PREFIX) for m in client.zrange(LRU, 0, -1)} == kept()


def test_every_compile_and_test_task_names_its_tenant_and_the_join_none(
    server: fakeredis.FakeServer,
) -> None:
    """The broker queues a tenant's tasks by this header (worker.queue.fairqueue); the join, which
    ends a run, is never held back by its tenant's share; no task carries a priority."""
    intake = open_intake(server)
    work = intake.accept(parsed(sub(3, tenant="acme")), "r0")
    compile_step, chord = work.tasks
    steps = [compile_step, *chord.tasks]
    assert [t.options["headers"] for t in steps] == [{TENANT_HEADER: "acme"}] * 4
    assert "headers" not in chord.body.options
    assert all("priority" not in t.options for t in [*steps, chord.body])
    anonymous = intake.accept(parsed(sub(1)), "r1")
    assert anonymous.tasks[0].options["headers"] == {TENANT_HEADER: "default"}


def test_test_data_leaves_soon_after_the_last_run_that_holds_it(
    fake_runtime: runtime.Runtime,
) -> None:
    """Two runs share an input (stored once); the first run's end leaves it alone, the
    second's gives it the short expiry: a flood's inputs leave Redis with its runs."""
    big = random.Random(3).randbytes(3_000).hex()  # does not shrink below 100 bytes
    first = fake_runtime.intake.accept(parsed(sub(1, stdin=big, tenant="a")), "run1")
    second = fake_runtime.intake.accept(parsed(sub(1, stdin=big, tenant="b")), "run2")
    client = fake_runtime.redis
    [data] = [k for k in client.keys(DATA + "*") if client.strlen(k) > 100]
    assert run_all(first)["verdict"] == "AC"
    assert client.ttl(data) > LINGER_S  # run2 still holds it
    assert run_all(second)["verdict"] == "AC"
    assert 0 < client.ttl(data) <= LINGER_S
    assert client.keys("runner:run:*") == []


# the broker away: kombu says so with its own OperationalError
BROKER_AWAY = kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379")


class _Unsendable:
    """A canvas that cannot be sent, raising ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def apply_async(self, **_: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        BROKER_AWAY,
        # anything else (a bug of ours while sending) keeps the place no longer
        ValueError("Error 111 of another kind"),
    ],
    ids=["broker_away", "any_other_error"],
)
def test_a_submission_the_broker_cannot_take_gives_its_admission_back(
    server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    client = Client(Settings.from_env({}))
    client.intake = intake = open_intake(server)
    admit = intake.accept
    monkeypatch.setattr(
        intake, "accept", lambda sub_, run: (admit(sub_, run), _Unsendable(error))[1]
    )
    with pytest.raises(BrokerError, match="cannot send submission: Error 111") as raised:
        client.submit(sub(4, tenant="shop"))
    assert raised.value.__cause__ is error
    backend = intake.backend
    assert backend.hgetall(RUNS) == {}
    assert int(backend.get(ADMITTED_TESTS) or 0) == 0
    assert int(backend.hget(TENANT + "shop", "tests") or 0) == 0


def test_a_give_back_that_fails_while_redis_is_away_is_made_once_it_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker.producer.intake, "OWED_RETRY_S", 0.01)
    owed, tries = Owed(), []

    def give_back() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise RedisUnavailable("Redis unreachable for 1 s (connection refused)")

    owed.settle("admission of run r1", give_back, within_s=60)
    assert owed.pending() == 1
    deadline = time.monotonic() + 10
    while owed.pending():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(tries) == 3
    lapsing = Owed()
    lapsing.settle("admission of run r2", give_back_never, within_s=0.05)
    deadline = time.monotonic() + 10
    while lapsing.pending():  # given up at its deadline: what it frees lapses by itself
        assert time.monotonic() < deadline
        time.sleep(0.01)


def give_back_never() -> None:
    raise RedisUnavailable("Redis unreachable for 1 s (connection refused)")


def test_runner_submit_that_cannot_send_gives_its_admission_back(
    server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's own path: the worker that took runner.submit cannot send its canvas."""
    rt = start_runtime(server)
    try:
        admit = rt.intake.accept
        monkeypatch.setattr(
            rt.intake, "accept", lambda sub_, run: (admit(sub_, run), _Unsendable(BROKER_AWAY))[1]
        )
        out = submit.apply(args=(sub(2, tenant="shop", language="PY"),)).get()
        assert (out["verdict"], out["error"]["code"]) == ("IE", "internal_error")
        assert "could not accept it" in out["error"]["message"]
        assert rt.redis.hgetall(RUNS) == {}
        assert int(rt.redis.get(ADMITTED_TESTS) or 0) == 0
        assert int(rt.redis.hget(TENANT + "shop", "tests") or 0) == 0
    finally:
        runtime.install(None)
