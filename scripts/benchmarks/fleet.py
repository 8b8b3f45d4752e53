"""What the fleet benchmarks (e2e, scale, soak) share: ``runner worker`` processes started and
stopped around a measurement, a Redis of the run's own, and Redis figures sampled meanwhile.

Redis databases 10 and 11 are the benchmarks' own (flushed at the start);
``BENCH_BROKER_URL`` and ``BENCH_RESULT_BACKEND`` name others, as the tests do. Each run's
workers label their sandboxes with an owner of the run's own, so runs side by side leave each
other's sandboxes alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import redis

from worker.sandbox import docker_client
from worker.sandbox.container import MEMORY_PARENT
from worker.sandbox.reaper import owned_containers, remove_container
from worker.sandbox.slice import PREFIX as SLICE_PREFIX

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")
BACKEND = os.environ.get("BENCH_RESULT_BACKEND", "redis://127.0.0.1:6379/11")
RUN_ID = uuid.uuid4().hex[:6]
RUNNER = str(Path(sys.executable).with_name("runner"))
MB = 2**20
LANGUAGES = "python,c,cpp"
# cgroup v1's CPU accounting: the engine (cgroupfs driver) makes each sandbox's cgroup in
# MEMORY_PARENT (container.hardening's cgroup_parent), or in "docker" where it makes it alone
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
SANDBOX_PARENTS = (CPUACCT / MEMORY_PARENT, CPUACCT / "docker")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def owner_of(name: str) -> str:
    """The owner label the sandboxes of :func:`workers`' worker ``name`` carry."""
    return f"bench-{name}-{RUN_ID}"


@contextmanager
def workers(
    names: Sequence[str], each: Mapping[str, Mapping[str, str]] | None = None, **env: str
) -> Iterator[None]:
    """``runner worker`` processes on the benchmark's own queue, started side by side, all
    ready before we go on; stopped, and whatever sandboxes they left removed, afterwards.
    ``each``: a worker's own settings (by name), over ``env``."""
    from worker.app import app

    started: list[tuple[str, str, subprocess.Popen[bytes], Path]] = []
    try:
        for name in names:
            log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
            node, owner = f"{name}@bench-{RUN_ID}", owner_of(name)
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [RUNNER, "worker", "-n", node, "-l", "WARNING"],
                    env={
                        **os.environ,
                        "RUNNER_OWNER": owner,
                        # the languages the benchmarks submit in, unless told otherwise: a
                        # worker's start opens pools and self-tests every language it runs
                        "RUNNER_LANGUAGES": os.environ.get("RUNNER_LANGUAGES", LANGUAGES),
                        **env,
                        **(each or {}).get(name, {}),
                    },
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append((node, owner, proc, log))
        deadline = time.monotonic() + 120
        for node, _, proc, log in started:
            while not app.control.ping(destination=[node], timeout=0.5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {node} did not start: {log.read_text()[-2000:]}")
        yield
    finally:
        for _, _, proc, _ in started:
            proc.terminate()
        for _, owner, proc, log in started:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for container in owned_containers(docker_client(), owner):  # a dead worker's
                remove_container(container)
            log.unlink()


def worker(name: str, **env: str) -> AbstractContextManager[None]:
    """One ``runner worker`` process, as :func:`workers`."""
    return workers([name], each=None, **env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    argv: list[str], ready: Callable[[], bool], timeout_s: float, **env: str
) -> Iterator[None]:
    """A server process of the run's own, its output discarded, entered once ``ready()``
    says it serves (connection errors count as not yet); stopped afterwards."""
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with suppress(OSError, redis.ConnectionError):
                if ready():
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def private_redis(maxmemory: str = "1gb") -> Iterator[str]:
    """A ``redis-server`` of this run's own on a free loopback port, configured as
    ``scripts/lib.sh`` starts the project's (no persistence, ``noeviction``) plus a
    ``maxmemory`` as the deployments set one: its memory and CPU figures are the fleet's
    alone, not those of whatever else uses the machine's Redis. Yields its URL (no
    database); stopped afterwards."""
    port = free_port()
    argv = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        maxmemory,
        "--maxmemory-policy",
        "noeviction",
        "--loglevel",
        "warning",
    ]
    url = f"redis://127.0.0.1:{port}"
    client = redis.Redis.from_url(url)
    with serving(argv, lambda: bool(client.ping()), timeout_s=10):
        yield url


def used_memory(client: redis.Redis) -> int:
    """The Redis instance's ``used_memory`` (every database: INFO is per instance)."""
    return int(client.info("memory")["used_memory"])


def cpu_s(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used so far (user + system, all its threads)."""
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class MemorySampler:
    """``used_memory`` of a Redis sampled every ``every_s`` on a thread, while it runs: the
    peak, and the latest figure."""

    def __init__(self, client: redis.Redis, every_s: float = 0.1) -> None:
        self._client = client
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = used_memory(client)
        self.samples = 1

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, used_memory(self._client))
            self.samples += 1

    def reset(self) -> None:
        """Start a new peak from now."""
        self.peak = used_memory(self._client)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, used_memory(self._client))


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (every core; not idle, not iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _usage_ns(cgroup: Path) -> int | None:
    try:
        return int((cgroup / "cpuacct.usage").read_text())
    except (OSError, ValueError):  # gone: the container was removed
        return None


class SandboxCpu:
    """The CPU of the sandbox containers of ``owners`` while it runs, from their own cgroups
    (cgroup v1 ``cpuacct.usage``: the supervisor, its fork server, the jobs and their
    cleanup; not the engine's shim or attach stream, which are the fleet's). Containers are
    found by their owner label; the cgroup directories are read every ``every_s`` on a
    thread, so a container created meanwhile counts from its start, and one removed meanwhile
    counts up to the last reading (at most ``every_s`` of it is missed; ``gone`` says how many
    were); a host slice's sandboxes (``runner-host-*``) too. Also the CPU of every sandbox in
    :data:`MEMORY_PARENT` (the parent counts its removed children's too), ours or not: what
    the fleet's figure leaves out besides ours."""

    def __init__(self, owners: Sequence[str], every_s: float = 0.05) -> None:
        self._owners = list(owners)
        self._every = every_s
        self._client = docker_client()
        self._ours: dict[str, Path] = {}
        self._others: set[str] = set()
        self._first: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._live: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.gone = 0  # our containers removed while it ran
        self._parent_first = self._parent_last = 0

    def _scan(self, first: bool) -> None:
        found: dict[str, Path] = {}
        slices: list[Path] = []
        with suppress(OSError):  # host slices: top-level cgroups, their sandboxes within
            slices = [
                Path(entry.path)
                for entry in os.scandir(CPUACCT)
                if entry.is_dir() and entry.name.startswith(SLICE_PREFIX)
            ]
        for parent in (*SANDBOX_PARENTS, *slices):
            with suppress(OSError):
                for entry in os.scandir(parent):
                    if entry.is_dir() and len(entry.name) == 64:
                        found[entry.name] = Path(entry.path)
        new = [cid for cid in found if cid not in self._ours and cid not in self._others]
        if new:  # one listing per scan that meets a container it has not classified yet
            mine = {c.id for owner in self._owners for c in owned_containers(self._client, owner)}
            for cid in new:
                if cid in mine:
                    self._ours[cid] = found[cid]
                else:
                    self._others.add(cid)
        live = set()
        for cid, cgroup in self._ours.items():
            usage = _usage_ns(cgroup)
            if usage is None:
                continue
            live.add(cid)
            self._first.setdefault(cid, usage if first else 0)
            self._last[cid] = usage
        self.gone += len(self._live - live)
        self._live = live
        total = _usage_ns(SANDBOX_PARENTS[0])
        if total is not None:
            if first:
                self._parent_first = total
            self._parent_last = total

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self._scan(first=False)

    @property
    def ours_s(self) -> float:
        """CPU seconds of the owners' sandboxes since it started."""
        return sum(self._last[cid] - self._first[cid] for cid in self._last) / 1e9

    @property
    def all_s(self) -> float:
        """CPU seconds of every sandbox since it started: ours, and others' in the parent."""
        ours_in_parent = sum(
            self._last[cid] - self._first[cid]
            for cid, cgroup in self._ours.items()
            if cid in self._last and cgroup.parent == SANDBOX_PARENTS[0]
        )
        others = max(0, self._parent_last - self._parent_first - ours_in_parent)
        return self.ours_s + others / 1e9

    def __enter__(self) -> SandboxCpu:
        self._scan(first=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._scan(first=False)
