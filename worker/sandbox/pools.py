"""A worker process's sandboxes: one :class:`~worker.sandbox.pool.ImagePool` per image, the
content identity of each image, and the probe loop that checks idle sandboxes and sweeps what
dead workers, failed removals and crashed predecessors left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import docker
import structlog

from worker.errors import SandboxError
from worker.metrics import HEALTH_FAILURES
from worker.outages import DEFAULT_WINDOW_S, Outage
from worker.sandbox.container import ENGINE_ERRORS, SandboxSpec
from worker.sandbox.pool import ImagePool, UidSource
from worker.sandbox.protocol import Job, RunReport
from worker.sandbox.reaper import (
    owned_containers,
    remove_container,
    remove_dead,
    remove_leftovers,
    remove_orphans,
)

log = structlog.get_logger()


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
        outage_window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        first = next(iter(specs.values()), None)
        self.owner = first.owner if first else ""
        self.fleet = first.fleet if first else ""
        if any((s.owner, s.fleet) != (self.owner, self.fleet) for s in specs.values()):
            raise ValueError("every pool of one SandboxPools has the same owner and fleet")
        self._client = client
        uids = UidSource(uid_base)
        # one engine for all the pools: an outage is waited out (and logged) once
        self.engine = Outage("Docker engine", "docker", outage_window_s)
        self._pools = {
            key: ImagePool(client, spec, size, max_jobs, uids, self.engine)
            for key, spec in specs.items()
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
                        HEALTH_FAILURES.labels(pool.spec.image).inc(failed)
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
