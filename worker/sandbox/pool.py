"""Pools of pre-warmed, reusable sandboxes, one pool per image.

A sandbox serves one job at a time and at most ``max_jobs`` jobs in all; then, or after any
anomaly (a failed cleanup, a dead or silent supervisor, a failed health probe), it is removed
and replaced in the background, so a lease never waits on container creation unless the pool
is empty. Every container carries the owner and fleet labels: at start the pool removes what
an earlier process with the same owner left behind (a crashed worker), and on close it removes
its own. Every sweep stays within the pool's fleet (see :mod:`worker.sandbox.reaper`).

**Engine outages are ridden out.** A restart of the Docker engine kills every sandbox; their
supervisors' connections then read end of file. A lease never hands out such a sandbox (it
looks first, without waiting) but recycles it; a job whose sandbox dies under it raises
:class:`~worker.errors.SandboxLost` (the judge runs it again on a fresh one); sandboxes that
cannot be made because the engine does not answer are made again as soon as it does. Leases
wait for the engine meanwhile, up to ``RUNNER_OUTAGE_WINDOW_S`` from the outage's start
(:class:`~worker.outages.Outage`, shared by a worker's pools): only then does a lease give up,
with :class:`~worker.errors.EngineUnavailable` ("Docker engine unreachable for 60 s").

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

from worker.errors import EngineUnavailable, PoolClosed, SandboxError
from worker.outages import Outage
from worker.sandbox.container import Sandbox, SandboxSpec
from worker.sandbox.protocol import Job, RunReport, check_job

log = structlog.get_logger()

UID_SPAN = 1 << 30  # jobs' uids are drawn from [base, base + span): never reused in practice
ENGINE_POLL_S = 0.5  # how often a lease waiting out an engine outage looks at it again


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
        engine: Outage | None = None,
    ) -> None:
        self.spec = spec
        self.size = size
        self.max_jobs = max_jobs
        self.stats = PoolStats()
        self.engine = engine or Outage("Docker engine", "docker")
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
        """Run one job (with its partner, if it has one) on a leased sandbox; ``deadline`` is
        the outer time limit in seconds. ValueError, before any lease, for a job the
        supervisor would refuse."""
        check_job(job)
        with self.lease() as sandbox:
            job = self._fresh(job, sandbox)
            started = time.monotonic()
            report = sandbox.run(job, deadline)
            log.debug(
                "sandbox.job",
                container=sandbox.short_id,
                duration_ms=round(1000 * (time.monotonic() - started), 2),
                job_no=sandbox.jobs,
            )
            return report

    def _fresh(self, job: Job, sandbox: Sandbox) -> Job:
        """``job`` as this pool runs it on ``sandbox``: a fresh uid (its partner another), this
        pool's isolation, and its fork server or parked runtime only where a sandbox serves
        more than one job (for one job they would only add a start of their own). A job that
        may be parked gets the uid its runtime was parked for after the sandbox's last job,
        and names the uid of the sandbox's next job, for which one is parked after it."""
        many = self.max_jobs > 1
        server = job.server if many else ()
        uid = self._uids.take()
        park_uid = 0
        parks = many and bool(job.park) and job.partner is None
        if parks:
            uid = sandbox.parked_uid or uid
            if sandbox.jobs + 1 < self.max_jobs:
                park_uid = self._uids.take()
        sandbox.parked_uid = park_uid
        partner = (
            replace(job.partner, uid=self._uids.take(), isolation=self.spec.isolation)
            if job.partner
            else None
        )
        return replace(
            job,
            uid=uid,
            server=server,
            park=job.park if parks else (),
            park_files=job.park_files if parks else (),
            park_uid=park_uid,
            isolation=self.spec.isolation,
            partner=partner,
        )

    def _acquire(self, timeout: float) -> Sandbox:
        """A live idle sandbox, waiting for one at most ``timeout`` seconds, and while the
        engine is away until it is back (at most the outage window from the outage's start),
        then ``timeout`` more."""
        start = time.monotonic()
        deadline = start + timeout
        with self._cond:
            self.stats.leases += 1
            waited = False
            while True:
                if self._closed:
                    raise PoolClosed(f"pool for {self.spec.image} is closed")
                while self._idle:
                    sandbox = self._idle.popleft()
                    if not sandbox.alive():  # died idle (an engine restart): never handed out
                        sandbox.broken = "lost: its connection closed while idle"
                        self._busy.add(sandbox)
                        self._release(sandbox, 0)
                        continue
                    if waited:
                        self.stats.waits += 1
                        self.stats.wait_s += time.monotonic() - start
                    self._busy.add(sandbox)
                    return sandbox
                if len(self._busy) + self._pending < self.size:
                    self._pending += 1
                    self._background(self._refill)
                waited = True
                now = time.monotonic()
                if self.engine.down_since is not None:
                    if self.engine.expired() and not self._engine_back():
                        self.engine.give_up()
                        raise EngineUnavailable(self.engine.message())
                    deadline = max(deadline, now + timeout)
                left = deadline - now
                if left <= 0:
                    raise SandboxError(
                        f"no sandbox of {self.spec.image} free within {timeout:.0f}s"
                    )
                self._cond.wait(min(left, ENGINE_POLL_S))

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
        """Create one sandbox, probe it, and add it to the idle set (runs in the background).
        While the engine does not answer (a restart), it tries again as soon as it does, until
        the outage outlasts its window."""
        started = time.monotonic()
        sandbox: Sandbox | None = None
        attempt = 0
        try:
            while True:
                try:
                    sandbox = Sandbox(self._client, self.spec)
                    sandbox.ping()
                    self.engine.succeeded()
                    break
                except Exception as exc:
                    if sandbox is not None:
                        sandbox.remove()
                    sandbox = None
                    if self._closed:
                        break
                    if self._engine_away(exc) and not self.engine.expired():
                        time.sleep(min(0.1 * 2**attempt, 1.0))
                        attempt += 1
                        continue
                    self.stats.last_error = str(exc)
                    log.error("sandbox.create_failed", image=self.spec.image, error=str(exc))
                    time.sleep(1.0)  # an engine in trouble should not be hammered
                    break
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

    def _engine_back(self) -> bool:
        """Whether the engine answers again after an outage that outlasted the window (the
        pool's lock, held by the caller, is let go meanwhile)."""
        self._cond.release()
        try:
            self._client.ping()
        except Exception:
            return False
        finally:
            self._cond.acquire()
        self.engine.succeeded()
        return True

    def _engine_away(self, exc: Exception) -> bool:
        """Whether a sandbox could not be made because the engine does not answer (then the
        outage is recorded, with ``exc`` as its error)."""
        try:
            self._client.ping()
        except Exception:
            self.engine.failed(exc)
            return True
        self.engine.succeeded()
        return False

    def top_up(self) -> int:
        """Start making the sandboxes the pool lacks (refills given up while the engine was
        away longer than the window); how many."""
        with self._cond:
            missing = self.size - len(self._idle) - len(self._busy) - self._pending
            if self._closed or missing <= 0:
                return 0
            self._pending += missing
        for _ in range(missing):
            self._background(self._refill)
        return missing

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
        self.top_up()
        return failed

    def state(self) -> dict[str, object]:
        with self._cond:
            return {
                "image": self.spec.image,
                "isolation": self.spec.isolation,
                # whether a job's memory peak is the kernel's high-water mark or sampled
                "peak": "exact" if self.spec.exact_peak else "sampled",
                "size": self.size,
                "idle": len(self._idle),
                "busy": len(self._busy),
                "starting": self._pending,
                **self.stats.snapshot(),
            }
