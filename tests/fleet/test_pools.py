"""Every way a user might start a worker either judges correctly or refuses to start.

The sandbox pools live in the worker process, shared by the threads that run tests; a pool
that runs tests in other processes (prefork) would hand one sandbox to two of them at once, and
green threads (eventlet, gevent) would stall on the blocking sandbox calls. So the app's own
configuration picks the thread pool (what plain ``celery -A worker.app worker`` then runs), and
a pool that cannot be safe stops the start with one line on stderr, as does a worker that could
not run a single test (no Docker engine, a missing image)."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest
import redis
from celery.concurrency.base import BasePool
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.solo import TaskPool as SoloPool
from celery.concurrency.thread import TaskPool as ThreadPool
from celery.utils.dispatch import Signal

from tests.fleet.conftest import CELERY, RUNNER, Worker
from worker.client import Client
from worker.contract import Verdict
from worker.pipeline.runtime import StartRefused, check_pool, option_value
from worker.sandbox.reaper import owned_containers
from worker.settings import Settings


def fleet(test: Callable[..., None]) -> Callable[..., None]:
    """Needs Docker and Redis (the in-process checks at the end need neither)."""
    return pytest.mark.docker(pytest.mark.redis(test))


CELERY_WORKER = (str(CELERY), "-A", "worker.app", "worker")

# a right and a wrong program per language; the wrong one adds 1 when the first number is odd
PROGRAMS = [
    ("python", "right", "a, b = map(int, input().split())\nprint(a + b)\n"),
    ("python", "wrong", "a, b = map(int, input().split())\nprint(a + b + a % 2)\n"),
    ("c", "right", '#include <stdio.h>\nint main(){long a,b;scanf("%ld %ld",&a,&b);'
     'printf("%ld\\n",a+b);}\n'),
    ("cpp", "wrong", "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;"
     "std::cout<<a+b+a%2<<'\\n';}\n"),
]  # fmt: skip
PAIRS = [(1, 2), (2, 2), (3, 4), (10, 20), (7, 7), (100, 1)]
TESTS = [
    {"id": f"t{i}", "stdin": f"{a} {b}\n", "expected_stdout": f"{a + b}\n"}
    for i, (a, b) in enumerate(PAIRS)
]


def judge_concurrently(client: Client) -> None:
    """Four submissions of six tests at once, more tests than sandboxes: every verdict right."""
    handles = [
        client.submit({"id": f"{lang}-{kind}", "language": lang, "source": src, "tests": TESTS})
        for lang, kind, src in PROGRAMS
    ]
    with ThreadPoolExecutor(len(handles)) as waiting:
        results = list(waiting.map(lambda h: h.result(timeout=180), handles))
    for (lang, kind, _), result in zip(PROGRAMS, results, strict=True):
        got = [(t.id, t.verdict, t.message) for t in result.tests]
        want = [
            (t["id"], Verdict.WA if kind == "wrong" and a % 2 else Verdict.AC)
            for t, (a, _) in zip(TESTS, PAIRS, strict=True)
        ]
        assert [(i, v) for i, v, _ in got] == want, f"{lang}-{kind}: {got}"
        assert result.verdict == (Verdict.WA if kind == "wrong" else Verdict.AC)


def refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start ends with, after checking it is the only line of ours and
    the exit status is 1. (Celery's own warning about running as root may come before it.)"""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if line.startswith("runner:")] == lines[-1:], done.stderr
    assert "ready." not in done.stdout
    return lines[-1]


STARTS = {
    "celery-defaults": (CELERY_WORKER, "thread", 2),
    "celery-threads-auto": ((*CELERY_WORKER, "-P", "threads", "-c", "auto"), "thread", 2),
    "celery-solo": ((*CELERY_WORKER, "--pool=solo"), "solo", 1),
    "runner-worker": ((str(RUNNER), "worker"), "thread", 2),
}


@fleet
@pytest.mark.parametrize("how", list(STARTS))
def test_a_worker_started_this_way_judges_right(workers, client: Client, how: str) -> None:
    command, pool, sandboxes = STARTS[how]
    worker = workers(how, command=command)
    # Celery's banner names the pool it runs; the concurrency is runner worker's default
    assert f"concurrency: 2 ({pool})" in worker.log.read_text()
    prewarm = worker.events("worker.prewarm")
    assert [e["sandboxes_per_image"] for e in prewarm] == [sandboxes], "one set of pools"
    judge_concurrently(client)


REFUSED = {
    "celery -P prefork": ((*CELERY_WORKER, "-P", "prefork"), {}),
    "celery --pool=prefork": ((*CELERY_WORKER, "--pool=prefork"), {}),
    "celery -Pprocesses": ((*CELERY_WORKER, "-Pprocesses"), {}),
    "CELERY_WORKER_POOL=prefork": (CELERY_WORKER, {"CELERY_WORKER_POOL": "prefork"}),
}


@fleet
@pytest.mark.parametrize("how", list(REFUSED))
def test_a_pool_that_shares_sandboxes_between_processes_is_refused(
    tmp_path: Path, docker_client: docker.DockerClient, redis_db: redis.Redis, how: str
) -> None:
    command, env = REFUSED[how]
    worker = Worker(tmp_path, "refused", command=command, **env)
    assert refusal(worker.run_to_exit()) == (
        "runner: the worker cannot start: the prefork pool would run tests in several "
        "processes sharing one set of sandboxes; start it with the thread pool (the default: "
        "no -P, or -P threads) or -P solo"
    )
    assert owned_containers(docker_client, worker.owner) == []


@fleet
def test_green_thread_pools_do_not_start(
    tmp_path: Path, docker_client: docker.DockerClient, redis_db: redis.Redis
) -> None:
    worker = Worker(tmp_path, "green", command=(*CELERY_WORKER, "-P", "eventlet"))
    done = worker.run_to_exit()
    assert done.returncode == 1
    if importlib.util.find_spec("eventlet") is None:
        # Celery patches for eventlet before it loads the app: its own import error stops it
        assert "No module named 'eventlet'" in done.stderr
    else:
        assert refusal(done).startswith("runner: the worker cannot start: the eventlet pool")
    assert owned_containers(docker_client, worker.owner) == []


@fleet
@pytest.mark.parametrize(
    "command", [(str(RUNNER), "worker"), CELERY_WORKER], ids=["runner", "celery"]
)
def test_no_docker_engine_no_start(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    redis_db: redis.Redis,
    command: tuple[str, ...],
) -> None:
    worker = Worker(tmp_path, "nodocker", command=command, DOCKER_HOST="unix:///nonexistent.sock")
    line = refusal(worker.run_to_exit())
    assert line.startswith("runner: the worker cannot start: the Docker engine is not reachable")


@fleet
def test_a_missing_image_no_start(
    tmp_path: Path, docker_client: docker.DockerClient, redis_db: redis.Redis
) -> None:
    worker = Worker(tmp_path, "noimage", RUNNER_IMAGE_PREFIX="runner-missing")
    assert refusal(worker.run_to_exit()) == (
        "runner: the worker cannot start: sandbox image runner-missing-gcc:latest is missing; "
        "build it with scripts/build-images or set RUNNER_REGISTRY to pull it"
    )
    assert owned_containers(docker_client, worker.owner) == []


@fleet
def test_a_runtime_that_starts_no_sandbox_no_start(
    tmp_path: Path, docker_client: docker.DockerClient, redis_db: redis.Redis
) -> None:
    worker = Worker(tmp_path, "noruntime", RUNNER_RUNTIME="no-such-runtime")
    line = refusal(worker.run_to_exit())
    prefix = Settings.from_env().image_prefix
    assert line.startswith(f"runner: the worker cannot start: no sandbox of {prefix}-")
    assert owned_containers(docker_client, worker.owner) == []


# -- in process: which pools pass, and why a refusal really stops Celery -----------------------


class MyThreads(ThreadPool):
    pass


class MyPrefork(PreforkPool):
    pass


@pytest.mark.parametrize(
    "pool", ["threads", "solo", ThreadPool, SoloPool, MyThreads, f"{__name__}:MyThreads"]
)
def test_pools_that_keep_a_sandbox_to_one_test(pool: object) -> None:
    assert check_pool(pool) in ("threads", "solo")


@pytest.mark.parametrize(
    ("pool", "asked_for", "says"),
    [
        ("prefork", None, "the prefork pool"),
        ("processes", None, "the prefork pool"),
        ("celery.concurrency.prefork:TaskPool", None, "the prefork pool"),
        (PreforkPool, None, "the prefork pool"),
        (MyPrefork, None, "the prefork pool"),
        (ThreadPool, "prefork", "the prefork pool"),  # Celery's CLI swapped -P prefork
        ("eventlet", None, "the eventlet pool runs tests in green threads"),
        ("gevent", None, "the gevent pool runs tests in green threads"),
        ("no.such.module:Pool", None, "pool 'no.such.module:Pool' cannot be loaded"),
        (BasePool, None, "pool 'BasePool' keeps no sandbox to one test at a time"),
    ],
)
def test_pools_that_are_refused(pool: object, asked_for: str | None, says: str) -> None:
    with pytest.raises(StartRefused) as refused:
        check_pool(pool, asked_for)
    assert str(refused.value.code).startswith(f"runner: the worker cannot start: {says}")


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["celery", "-A", "worker.app", "worker"], None),
        (["celery", "worker", "-P", "prefork"], "prefork"),
        (["celery", "worker", "-Pprefork"], "prefork"),
        (["celery", "worker", "--pool", "prefork"], "prefork"),
        (["celery", "worker", "--pool=solo", "-P", "prefork"], "prefork"),
        (["celery", "worker", "--pool=solo"], "solo"),
    ],
)
def test_the_pool_named_on_a_command_line(argv: list[str], value: str | None) -> None:
    assert option_value(argv, "-P", "--pool") == value


def test_a_refusal_gets_through_celerys_signal_dispatch() -> None:
    """Signal.send catches and only logs an Exception from a receiver; not a SystemExit."""
    signal = Signal(name="probe")

    def refuse(**_: object) -> None:
        raise StartRefused("no")

    signal.connect(refuse, weak=False)
    with pytest.raises(SystemExit) as refused:
        signal.send(sender=None)
    assert refused.value.code == "runner: the worker cannot start: no"

    def fail(**_: object) -> None:
        raise RuntimeError("no")

    signal.disconnect(refuse)
    signal.connect(fail, weak=False)
    [(_, swallowed)] = signal.send(sender=None)
    assert isinstance(swallowed, RuntimeError)
