"""Pools of pre-warmed, reusable sandboxes, one pool per image.

A sandbox serves one job at a time and at most ``max_jobs`` jobs in all; then, or after any
anomaly (a failed cleanup, a dead or silent supervisor, a failed health probe), it is removed
and replaced in the background, so a lease never waits on container creation unless the pool
is empty. Every container carries the owner and fleet labels: at start the pool removes what
an earlier process with the same owner left behind (a crashed worker), and on close it removes
its own. Every sweep stays within the pool's fleet (see :mod:`worker.sandbox.reaper`).

A dead worker's sandboxes are removed by the engine as soon as their supervisor exits (it
exits when the worker's attach connection closes: at once when idle, after the running job
otherwise, so within the job's wall-time limit). What that misses (an exited sandbox the
engine did not remove, one created but never started) goes at the next probe round of any
worker of the same fleet: within ``health_interval_s``, or two minutes for a never-started one.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import docker
import docker.errors
import structlog

from worker.errors import PoolClosed, SandboxError
from worker.sandbox.container import ENGINE_ERRORS, Sandbox, SandboxSpec
from worker.sandbox.protocol import Job, RunReport
from worker.sandbox.reaper import (
    owned_containers,
    remove_container,
    remove_dead,
    remove_leftovers,
    remove_orphans,
)

log = structlog.get_logger()

UID_SPAN = 1 << 30  # jobs' uids are drawn from [base, base + span): never reused in practice


@dataclass
class PoolStats:
    """Counters an operator reads in ``runner status``."""

    leases: int = 0
    waits: int = 0
    wait_s: float = 0.0
    jobs: int = 0
    created: int = 0
    recycles: Counter[str] = field(default_factory=Counter)
    retired_jobs: list[int] = field(default_factory=list)
    refill_s: float = 0.0
    refills: int = 0
    last_error: str = ""  # why the last sandbox that failed to start did

    def snapshot(self) -> dict[str, object]:
        retired = self.retired_jobs[-1000:]
        return {
            "leases": self.leases,
            "waits": self.waits,
            "wait_s": round(self.wait_s, 3),
            "jobs": self.jobs,
            "created": self.created,
            "recycles": dict(self.recycles),
            "jobs_per_container": round(sum(retired) / len(retired), 1) if retired else None,
            "refill_avg_ms": round(1000 * self.refill_s / self.refills, 1)
            if self.refills
            else None,
            "last_error": self.last_error or None,
        }


class UidSource:
    """Fresh unprivileged uids for jobs (like isolate's boxes, but never handed out twice)."""

    def __init__(self, base: int) -> None:
        self._base = base
        self._next = random.randrange(UID_SPAN)
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            self._next = (self._next + 1) % UID_SPAN
            return self._base + self._next


class ImagePool:
    """``size`` warm sandboxes of one image."""

    def __init__(
        self,
        client: docker.DockerClient,
        spec: SandboxSpec,
        size: int,
        max_jobs: int,
        uids: UidSource,
    ) -> None:
        self.spec = spec
        self.size = size
        self.max_jobs = max_jobs
        self.stats = PoolStats()
        self._client = client
        self._uids = uids
        self._idle: deque[Sandbox] = deque()
        self._busy: set[Sandbox] = set()
        self._pending = 0
        self._closed = False
        self._cond = threading.Condition()
        self._workers: set[threading.Thread] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def prewarm(self) -> None:
        """Create the pool's sandboxes now, in parallel, and wait until they answer."""
        with self._cond:
            missing = self.size - len(self._idle) - len(self._busy) - self._pending
            self._pending += missing
        threads = [self._background(self._refill) for _ in range(missing)]
        for t in threads:
            t.join()

    def close(self, wait_s: float = 60.0) -> None:
        """Remove every sandbox, after in-flight creations and removals have finished."""
        with self._cond:
            self._closed = True
            sandboxes = list(self._idle) + list(self._busy)
            self._idle.clear()
            self._cond.notify_all()
            workers = list(self._workers)
        for sandbox in sandboxes:
            sandbox.remove()
        deadline = time.monotonic() + wait_s
        for t in workers:
            t.join(max(0.0, deadline - time.monotonic()))

    def _background(self, target: Callable[..., None], *args: object) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._cond:
                    self._workers.discard(thread)

        thread = threading.Thread(target=run, daemon=True, name=f"pool-{self.spec.image}")
        with self._cond:
            self._workers.add(thread)
        thread.start()
        return thread

    # -- leases ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, timeout: float = 60.0) -> Iterator[Sandbox]:
        """Hold one warm sandbox for the duration of the block."""
        sandbox = self._acquire(timeout)
        before = sandbox.jobs
        try:
            yield sandbox
        finally:
            self._release(sandbox, sandbox.jobs - before)

    def run(self, job: Job, deadline: float) -> RunReport:
        """Run one job on a leased sandbox; ``deadline`` is the outer time limit in seconds."""
        with self.lease() as sandbox:
            # a fork server pays off from a sandbox's second job on; for one job it would only
            # add its own interpreter's start
            server = job.server if self.max_jobs > 1 else ()
            job = replace(job, uid=self._uids.take(), server=server, isolation=self.spec.isolation)
            started = time.monotonic()
            report = sandbox.run(job, deadline)
            log.debug(
                "sandbox.job",
                container=sandbox.short_id,
                duration_ms=round(1000 * (time.monotonic() - started), 2),
                job_no=sandbox.jobs,
            )
            return report

    def _acquire(self, timeout: float) -> Sandbox:
        start = time.monotonic()
        with self._cond:
            self.stats.leases += 1
            waited = False
            while not self._idle:
                if self._closed:
                    raise PoolClosed(f"pool for {self.spec.image} is closed")
                if len(self._busy) + self._pending < self.size:
                    self._pending += 1
                    self._background(self._refill)
                waited = True
                left = start + timeout - time.monotonic()
                if left <= 0:
                    raise SandboxError(
                        f"no sandbox of {self.spec.image} free within {timeout:.0f}s"
                    )
                self._cond.wait(left)
            if self._closed:
                raise PoolClosed(f"pool for {self.spec.image} is closed")
            if waited:
                self.stats.waits += 1
                self.stats.wait_s += time.monotonic() - start
            sandbox = self._idle.popleft()
            self._busy.add(sandbox)
            return sandbox

    def _release(self, sandbox: Sandbox, jobs_done: int) -> None:
        reason = sandbox.broken or ("max_jobs" if sandbox.jobs >= self.max_jobs else "")
        with self._cond:
            self._busy.discard(sandbox)
            self.stats.jobs += jobs_done
            if not reason and not self._closed:
                self._idle.append(sandbox)
                self._cond.notify()
                return
            if reason:
                self.stats.recycles[reason.split(":")[0]] += 1
                self.stats.retired_jobs.append(sandbox.jobs)
                if not self._closed:
                    self._pending += 1
        if reason:
            log.info(
                "sandbox.recycle", container=sandbox.short_id, reason=reason, jobs=sandbox.jobs
            )
        self._background(self._replace, sandbox, bool(reason))

    def _replace(self, old: Sandbox, refill: bool) -> None:
        old.remove()
        if refill and not self._closed:
            self._refill()

    def _refill(self) -> None:
        """Create one sandbox, probe it, and add it to the idle set (runs in the background)."""
        started = time.monotonic()
        sandbox: Sandbox | None = None
        try:
            sandbox = Sandbox(self._client, self.spec)
            sandbox.ping()
        except Exception as exc:
            self.stats.last_error = str(exc)
            log.error("sandbox.create_failed", image=self.spec.image, error=str(exc))
            if sandbox is not None:
                sandbox.remove()
            sandbox = None
            time.sleep(1.0)  # an engine in trouble should not be hammered
        finally:
            with self._cond:
                self._pending -= 1
                keep = sandbox is not None and not self._closed
                if keep:
                    assert sandbox is not None
                    self.stats.created += 1
                    self.stats.refills += 1
                    self.stats.refill_s += time.monotonic() - started
                    self._idle.append(sandbox)
                self._cond.notify_all()
        if sandbox is not None and not keep:
            sandbox.remove()

    def ids(self) -> set[str]:
        with self._cond:
            return {sandbox.id for sandbox in (*self._idle, *self._busy)}

    def health_check(self) -> int:
        """Ping every idle sandbox; recycle those that do not answer. Returns how many failed."""
        with self._cond:
            idle = list(self._idle)
            self._idle.clear()
            self._busy.update(idle)
        failed = 0
        for sandbox in idle:
            try:
                sandbox.ping(timeout=2.0)
            except SandboxError as exc:
                sandbox.broken = sandbox.broken or f"health: {exc}"
                failed += 1
            self._release(sandbox, 0)
        return failed

    def state(self) -> dict[str, object]:
        with self._cond:
            return {
                "image": self.spec.image,
                "isolation": self.spec.isolation,
                "size": self.size,
                "idle": len(self._idle),
                "busy": len(self._busy),
                "starting": self._pending,
                **self.stats.snapshot(),
            }


class SandboxPools:
    """One :class:`ImagePool` per sandbox image: what a worker process runs jobs on."""

    def __init__(
        self,
        client: docker.DockerClient,
        specs: dict[str, SandboxSpec],
        size: int,
        max_jobs: int,
        uid_base: int,
        health_interval_s: float = 30.0,
    ) -> None:
        first = next(iter(specs.values()), None)
        self.owner = first.owner if first else ""
        self.fleet = first.fleet if first else ""
        if any((s.owner, s.fleet) != (self.owner, self.fleet) for s in specs.values()):
            raise ValueError("every pool of one SandboxPools has the same owner and fleet")
        self._client = client
        uids = UidSource(uid_base)
        self._pools = {
            key: ImagePool(client, spec, size, max_jobs, uids) for key, spec in specs.items()
        }
        self._health_interval = health_interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._identities: dict[str, str] = {}
        # set by the worker: the Celery nodes that answer a ping (for remove_orphans)
        self.alive_nodes: Callable[[], set[str]] | None = None

    def start(self) -> None:
        """Remove what a crashed predecessor left, prewarm every pool, start health probes."""
        remove_leftovers(self._client, self.owner, self.fleet)
        try:
            remove_dead(self._client, self.fleet)
        except SandboxError as exc:  # someone else's leftovers must not stop this start
            log.warning("pool.sweep_failed", error=str(exc))
        threads = [threading.Thread(target=p.prewarm, daemon=True) for p in self._pools.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._health_interval > 0:
            threading.Thread(target=self._probe_loop, daemon=True, name="pool-health").start()

    def run(self, image: str, job: Job, deadline: float) -> RunReport:
        try:
            pool = self._pools[image]
        except KeyError:
            raise SandboxError(f"no sandbox pool for image {image!r}") from None
        return pool.run(job, deadline)

    def state(self) -> list[dict[str, object]]:
        return [pool.state() for pool in self._pools.values()]

    def identity(self, image: str) -> str:
        """The content tag the image was built with (``latest`` moves, the tag does not)."""
        with self._lock:
            if image not in self._identities:
                if image not in self._pools:
                    raise SandboxError(f"no sandbox pool for image {image!r}")
                ref = self._pools[image].spec.image
                try:
                    tags = self._client.images.get(ref).tags
                except ENGINE_ERRORS as exc:
                    raise SandboxError(f"cannot inspect image {ref}: {exc}") from exc
                content = sorted(t for t in tags if not t.endswith(":latest"))
                self._identities[image] = content[0] if content else ref
            return self._identities[image]

    @property
    def specs(self) -> dict[str, SandboxSpec]:
        """How each image's sandboxes are made (catalogue key -> spec)."""
        return {key: pool.spec for key, pool in self._pools.items()}

    def close(self) -> None:
        self._stop.set()
        for pool in self._pools.values():
            pool.close()
        remove_leftovers(self._client, self.owner, self.fleet)

    def _probe_loop(self) -> None:
        alive_before: set[str] | None = None
        while not self._stop.wait(self._health_interval):
            try:  # this thread must outlive any one bad round (an engine or Redis restart)
                for pool in self._pools.values():
                    failed = pool.health_check()
                    if failed:
                        log.warning("pool.health_failed", image=pool.spec.image, failed=failed)
                self.reap_strays()
                remove_dead(self._client, self.fleet)
                if self.alive_nodes is not None:
                    alive_now = self.alive_nodes()
                    if alive_before is not None:
                        # a node must miss two pings in a row before its sandboxes go: one
                        # slow answer must not cost a live worker its sandboxes
                        alive = alive_now | alive_before
                        remove_orphans(self._client, alive, self.owner, self.fleet)
                    alive_before = alive_now
            except Exception as exc:
                log.warning("pool.probe_failed", error=str(exc))

    def reap_strays(self, min_age_s: float = 120.0) -> int:
        """Remove this owner's containers that no pool holds (a removal that failed while the
        engine was away, say). Young ones are spared: they may be sandboxes being created."""
        known = set().union(*(pool.ids() for pool in self._pools.values()))
        now = time.time()
        strays = [
            c
            for c in owned_containers(self._client, self.owner, self.fleet)
            if c.id not in known and now - c.attrs.get("Created", now) > min_age_s
        ]
        for container in strays:
            remove_container(container)
        if strays:
            log.info("pool.strays_removed", count=len(strays))
        return len(strays)
