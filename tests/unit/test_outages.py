"""Outages of Redis and of the Docker engine ridden out within the window, with fakes: fakeredis
whose server goes away (``server.connected = False``) and comes back, the fake pool, and an
image pool over a fake engine that restarts (every sandbox dies with it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
import requests
from structlog.testing import capture_logs

from tests.unit.fleet import parsed, sub
from worker.compare import Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.data.storage import DataStore
from worker.errors import EngineUnavailable, RedisUnavailable, SandboxError, SandboxLost
from worker.judging.judge import LOST_RETRIES, Judge
from worker.keyspace import ADMITTED_TESTS, HOLDS, TENANT
from worker.languages import LANGUAGES
from worker.outages import Outage, RideOut, redis_retryable, riding
from worker.pipeline import runtime
from worker.pipeline.tasks import join_results, run_test
from worker.producer.admission import Admission, Ticket, release
from worker.producer.intake import Intake
from worker.producer.workflow import TEST_TASK
from worker.programs import File, Program
from worker.sandbox import pool as pool_module
from worker.sandbox.container import SandboxSpec
from worker.sandbox.fake import FakePool, report
from worker.sandbox.pool import ImagePool, UidSource
from worker.sandbox.protocol import Job, RunReport
from worker.settings import Settings

LIMITS = Limits(cpu_time_ms=1000, wall_time_ms=2000, memory_mb=64, output_kb=4, processes=4)
PROGRAM = Program(LANGUAGES["python"], (File("main.py", b"print(input())"),))
TEST = TestCase("t1", b"42\n", b"42\n")


def events(logs: list[dict[str, Any]], prefix: str) -> list[str]:
    return [e["event"] for e in logs if e["event"].startswith(prefix)]


def back_after(seconds: float, action: Any) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


# --- Redis ----------------------------------------------------------------------------------


class RidingFakeRedis(RideOut, fakeredis.FakeRedis):
    """fakeredis whose commands, scripts and pipelines ride out its server's outage."""


def riding_fake(server: fakeredis.FakeServer, window_s: float) -> RidingFakeRedis:
    return riding(RidingFakeRedis(server=server), Outage("Redis", "redis", window_s))


def test_a_redis_outage_shorter_than_the_window_is_waited_out_and_logged_once() -> None:
    server = fakeredis.FakeServer()
    client = riding_fake(server, window_s=10.0)
    client.set("k", "v")
    script = client.register_script("return redis.call('GET', KEYS[1])")
    server.connected = False
    with capture_logs() as logs:
        back_after(0.4, lambda: setattr(server, "connected", True))
        threads = [threading.Thread(target=client.get, args=("k",)) for _ in range(3)]
        for t in threads:
            t.start()
        assert client.get("k") == b"v"
        for t in threads:
            t.join()
        with client.pipeline() as pipe:  # a pipeline and a script, each after its own outage
            server.connected = False
            back_after(0.3, lambda: setattr(server, "connected", True))
            pipe.set("n", 1).incr("n").get("n")
            assert pipe.execute() == [True, 2, b"2"]
        server.connected = False
        back_after(0.3, lambda: setattr(server, "connected", True))
        assert script(keys=["k"]) == b"v"
    # one window per outage, however many calls waited in it
    assert events(logs, "redis.") == ["redis.retrying", "redis.recovered"] * 3
    recovered = [e for e in logs if e["event"] == "redis.recovered"]
    assert all(0.2 <= e["down_s"] < 5 for e in recovered)


def test_redis_away_longer_than_the_window_is_an_error_that_says_so() -> None:
    server = fakeredis.FakeServer()
    client = riding_fake(server, window_s=0.5)
    server.connected = False
    with capture_logs() as logs:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=r"Redis unreachable for 0\.5 s \(.+\)"):
            client.get("k")
        assert time.monotonic() - started >= 0.5
        # the outage has outlasted the window: a call now gives up at once, not after another
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            client.set("k", "v")
        assert time.monotonic() - started < 0.5
        server.connected = True
        client.set("k", "v")  # back: calls work again at once
    assert events(logs, "redis.") == ["redis.retrying", "redis.gave_up", "redis.recovered"]


def test_only_redis_being_away_is_waited_out() -> None:
    assert redis_retryable(redis.ConnectionError("Error 111 connecting"))
    assert redis_retryable(redis.TimeoutError("Timeout reading from socket"))
    assert redis_retryable(redis.BusyLoadingError("Redis is loading the dataset in memory"))
    assert not redis_retryable(redis.AuthenticationError("invalid password"))
    assert not redis_retryable(redis.ResponseError("WRONGTYPE"))
    client = riding_fake(fakeredis.FakeServer(), window_s=10.0)
    client.set("k", "v")
    started = time.monotonic()
    with pytest.raises(redis.ResponseError):
        client.incr("k")
    assert time.monotonic() - started < 1


@pytest.fixture
def redis_server() -> Iterator[fakeredis.FakeServer]:
    yield fakeredis.FakeServer()
    runtime.install(None)


def start_fleet(server: fakeredis.FakeServer, window_s: float, script: Any) -> None:
    """A runtime (fake pool answering with ``script``, fakeredis) whose Redis clients ride out
    an outage of up to ``window_s``."""
    settings = Settings.from_env({})
    intake = Intake.open(settings, lambda url: riding_fake(server, window_s))
    runtime.install(runtime.build(settings, FakePool(script), intake=intake))


def run_steps(raw: dict[str, Any], before_join: Any = None) -> dict[str, Any]:
    """A submission's canvas run eagerly, step by step, ``before_join()`` called before its
    join."""
    work = runtime.current().intake.accept(parsed(raw), "run-outage")
    chord = work if work.tasks[0].task == TEST_TASK else work.tasks[1]
    compiled = None if chord is work else work.tasks[0].apply().get()
    parts = []
    for task in chord.tasks:
        args = task.args if compiled is None else (compiled, *task.args)
        parts.append(run_test.apply(args=args).get())
    if before_join is not None:
        before_join()
    return join_results.apply(args=(parts, *chord.body.args)).get()  # type: ignore[no-any-return]


def away_during_test_1(server: fakeredis.FakeServer, down_s: float, timers: list[Any]) -> Any:
    """A fake pool's script: Redis goes away while test 1 runs, back ``down_s`` later."""

    def script(image: str, job: Job) -> RunReport:
        if job.stdin == b"1":
            server.connected = False
            timers.append(back_after(down_s, lambda: setattr(server, "connected", True)))
        return report(stdout=job.stdin)

    return script


def test_a_redis_restart_mid_submission_delays_its_tests_never_fails_them(
    redis_server: fakeredis.FakeServer,
) -> None:
    start_fleet(redis_server, 10.0, away_during_test_1(redis_server, 0.5, []))
    with capture_logs() as logs:
        result = run_steps(sub(3))
    assert [t["verdict"] for t in result["tests"]] == ["AC", "AC", "AC"]
    assert result["verdict"] == "AC"
    assert events(logs, "redis.") == ["redis.retrying", "redis.recovered"]


def test_redis_away_past_the_window_ends_the_tests_caught_in_it_ie_saying_so(
    redis_server: fakeredis.FakeServer,
) -> None:
    timers: list[threading.Timer] = []
    start_fleet(redis_server, 0.5, away_during_test_1(redis_server, 1.5, timers))
    with capture_logs() as logs:
        result = run_steps(sub(2), before_join=lambda: timers[0].join())
    assert [t["verdict"] for t in result["tests"]] == ["AC", "IE"]
    assert "Redis unreachable for 0.5 s" in result["tests"][1]["message"]
    assert "redis.gave_up" in events(logs, "redis.")


def test_an_admission_or_a_hold_sent_again_counts_its_run_once() -> None:
    """What is retried must be safe to run twice: a reply lost with the connection does not
    say whether Redis ran the script."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    admission = Admission(Settings.from_env({}), None, client)
    for _ in range(2):  # the same call again, once Redis is back
        admission.admit("default", "run1", 5, 100)
    assert (int(client.get(ADMITTED_TESTS)), client.hget(TENANT + "default", "tests")) == (5, b"5")
    release(client, Ticket("default", "run1"))
    assert int(client.get(ADMITTED_TESTS)) == 0
    data = DataStore(client, 3600)
    for _ in range(2):
        data.hold("run1", ["d1"])
    assert client.hget(HOLDS, "d1") == b"1"


# --- the Docker engine: the judge over the fake pool ------------------------------------------


def test_a_sandbox_lost_with_the_engine_is_replaced_and_its_job_run_again() -> None:
    calls: list[str] = []

    def dies_twice(image: str, job: Job) -> RunReport:
        calls.append(image)
        if len(calls) <= 2:
            raise SandboxLost("supervisor exited: ''")
        return report(stdout=job.stdin)

    with capture_logs() as logs:
        result = Judge(FakePool(dies_twice)).run_test(PROGRAM, TEST, LIMITS, Comparison())
    assert result.verdict == Verdict.AC
    assert len(calls) == 3
    retries = [e for e in logs if e["event"] == "sandbox.retry"]
    assert len(retries) == 2 and all(e["lost"] for e in retries)


def test_a_job_whose_sandboxes_keep_dying_is_not_run_again_forever() -> None:
    calls: list[str] = []

    def always_dies(image: str, job: Job) -> RunReport:
        calls.append(image)
        raise SandboxLost("supervisor exited: ''")

    result = Judge(FakePool(always_dies)).run_test(PROGRAM, TEST, LIMITS, Comparison())
    assert result.verdict == Verdict.IE
    assert len(calls) == 1 + LOST_RETRIES


def test_an_engine_away_past_the_window_ends_the_test_ie_saying_so() -> None:
    calls: list[str] = []

    def engine_gone(image: str, job: Job) -> RunReport:
        calls.append(image)
        raise EngineUnavailable("Docker engine unreachable for 60 s (connection refused)")

    result = Judge(FakePool(engine_gone)).run_test(PROGRAM, TEST, LIMITS, Comparison())
    assert result.verdict == Verdict.IE
    assert result.message.startswith("Docker engine unreachable for 60 s")
    assert len(calls) == 1  # the lease waited out the window already


# --- the Docker engine: an image pool over a fake engine --------------------------------------


class FakeEngine:
    """A Docker engine that can restart: while it is down nothing answers; a restart kills
    every sandbox made before it."""

    def __init__(self) -> None:
        self.up = True
        self.generation = 0
        self.made = 0
        self.die_in_next_job = False

    def ping(self) -> bool:
        if not self.up:
            raise requests.exceptions.ConnectionError("Connection refused: docker.sock")
        return True

    def restart(self, down_s: float | None) -> None:
        """Down now (every sandbox dies), up again after ``down_s`` (None: not by itself)."""
        self.up = False
        self.generation += 1
        if down_s is not None:
            back_after(down_s, lambda: setattr(self, "up", True))


class FakeSandbox:
    """What the pool needs of a sandbox, on a :class:`FakeEngine`."""

    def __init__(self, engine: FakeEngine, spec: SandboxSpec) -> None:
        if not engine.up:
            raise SandboxError(f"cannot start sandbox from {spec.image}: connection refused")
        engine.made += 1
        self.engine, self.spec = engine, spec
        self.generation = engine.generation
        self.id = f"fake{engine.made:08d}"
        self.jobs = 0
        self.broken = ""

    @property
    def short_id(self) -> str:
        return self.id

    def alive(self) -> bool:
        return self.generation == self.engine.generation

    def ping(self, timeout: float = 5.0) -> None:
        if not self.alive():
            raise SandboxLost("supervisor exited: ''")

    def run(self, job: Job, timeout: float) -> RunReport:
        self.jobs += 1
        if self.engine.die_in_next_job:  # the engine restarts under this very job
            self.engine.die_in_next_job = False
            self.engine.restart(0.5)
        if not self.alive():
            self.broken = "supervisor exited: ''"
            raise SandboxLost(self.broken)
        return report(stdout=job.stdin)

    def remove(self) -> None:
        pass


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    monkeypatch.setattr(pool_module, "Sandbox", FakeSandbox)
    return FakeEngine()


def image_pool(engine: FakeEngine, window_s: float, size: int = 2) -> ImagePool:
    spec = SandboxSpec(image="runner-python:latest", owner="unit")
    outage = Outage("Docker engine", "docker", window_s)
    pool = ImagePool(engine, spec, size, 100, UidSource(100000), outage)  # type: ignore[arg-type]
    pool.prewarm()
    return pool


class OnePool:
    """The judge's view of one image pool."""

    def __init__(self, pool: ImagePool) -> None:
        self.pool = pool

    def run(self, image: str, job: Job, deadline: float) -> RunReport:
        return self.pool.run(job, deadline)


def echo_job(data: bytes = b"hi") -> Job:
    return Job(uid=0, argv=("./echo",), stdin=data, wall_ms=1000)


def test_an_engine_restart_shorter_than_the_window_only_delays_a_lease(
    engine: FakeEngine,
) -> None:
    pool = image_pool(engine, window_s=10.0)
    engine.restart(down_s=0.6)
    with capture_logs() as logs:
        started = time.monotonic()
        assert pool.run(echo_job(), 5).stdout == b"hi"
        assert time.monotonic() - started >= 0.5  # waited for the engine
    state = pool.state()
    assert state["recycles"] == {"lost": 2}  # both dead sandboxes found at the lease
    assert events(logs, "docker.") == ["docker.retrying", "docker.recovered"]
    deadline = time.monotonic() + 5
    while pool.state()["idle"] < 2:  # the pool is made whole again
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pool.close()


def test_a_job_whose_sandbox_dies_with_the_engine_runs_again_on_a_fresh_one(
    engine: FakeEngine,
) -> None:
    pool = image_pool(engine, window_s=10.0)
    engine.die_in_next_job = True
    result = Judge(OnePool(pool)).run_test(PROGRAM, TEST, LIMITS, Comparison())  # type: ignore[arg-type]
    assert result.verdict == Verdict.AC
    assert engine.made >= 3  # two before the restart, fresh ones after
    pool.close()


def test_an_engine_away_longer_than_the_window_fails_the_lease_saying_so(
    engine: FakeEngine,
) -> None:
    pool = image_pool(engine, window_s=0.5)
    engine.restart(down_s=None)
    with capture_logs() as logs:
        with pytest.raises(EngineUnavailable, match=r"Docker engine unreachable for 0\.5 s"):
            pool.run(echo_job(), 5)
        result = Judge(OnePool(pool)).run_test(PROGRAM, TEST, LIMITS, Comparison())  # type: ignore[arg-type]
        assert result.verdict == Verdict.IE
        assert result.message.startswith("Docker engine unreachable for 0.5 s")
    assert events(logs, "docker.")[:2] == ["docker.retrying", "docker.gave_up"]
    engine.up = True  # back at last: the next probe round makes the sandboxes again
    pool.health_check()
    assert pool.run(echo_job(b"back"), 5).stdout == b"back"
    pool.close()
