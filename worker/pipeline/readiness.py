"""A worker's way to ready, and how long each part took: pull, prewarm, connect.

A worker started on a host whose engine lacks a sandbox image pulls it from ``RUNNER_REGISTRY``
by its content tag (:func:`worker.images.registry.fetch_missing`) before it opens its pools;
without a registry, or when the registry cannot give it, the start is refused naming the image
and the registry (:class:`~worker.pipeline.runtime.StartRefused`). Then the pools prewarm and every
language self-tests (the runtime's ``worker_init``), and only then does Celery connect its
consumer and take tests: its ``worker_ready`` signal ends the clock.

The three figures are logged once, as ``worker.time_to_ready`` (``pull_s``, ``prewarm_s``,
``connect_s``, ``total_s``, ``process_s`` (since the process started: imports and Celery's
own start too) and the images pulled), and, with console logs, printed on stderr as
one line (JSON logs stay one format).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import structlog

from worker.images.registry import Pulled, Registry, fetch_missing
from worker.sandbox import docker_client, sandbox_images
from worker.settings import Settings

log = structlog.get_logger()


@dataclass
class ReadyTimer:
    """Marks of one worker's start, on the monotonic clock."""

    started: float = field(default_factory=time.monotonic)
    pulled_at: float = 0.0
    prewarmed_at: float = 0.0
    images: list[Pulled] = field(default_factory=list)
    human: bool = True  # one readable line on stderr too (console logs; JSON logs: the event only)

    def pulled(self, images: list[Pulled] | None = None) -> None:
        self.pulled_at = time.monotonic()
        self.images = list(images or [])

    def prewarmed(self) -> None:
        self.prewarmed_at = time.monotonic()

    def figures(self, connected_at: float) -> dict[str, float]:
        pulled = self.pulled_at or self.started
        prewarmed = self.prewarmed_at or pulled
        return {
            "pull_s": round(pulled - self.started, 3),
            "prewarm_s": round(prewarmed - pulled, 3),
            "connect_s": round(max(0.0, connected_at - prewarmed), 3),
            "total_s": round(connected_at - self.started, 3),
        }


_pending: ReadyTimer | None = None


def pull_missing(settings: Settings, timer: ReadyTimer | None = None) -> list[Pulled]:
    """Pull from RUNNER_REGISTRY the sandbox images this host lacks (none when it has them
    all, or when no registry is set: the missing image is then refused as before)."""
    registry = Registry.of(settings)
    pulled: list[Pulled] = []
    if registry is not None:
        client = docker_client()
        registry = registry.as_engine(client.info())  # HTTP where the engine speaks it
        pulled = fetch_missing(client, settings, sandbox_images(settings), registry)
    if timer is not None:
        timer.pulled(pulled)
    return pulled


def await_connected(timer: ReadyTimer) -> None:
    """Report ``timer`` once Celery's consumer is connected (``worker_ready``)."""
    global _pending
    _pending = timer


def process_age_s() -> float | None:
    """Seconds since this process started (the kernel's record of it), or None off Linux."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            up = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(up - started_ticks / os.sysconf("SC_CLK_TCK"), 2)


def report(timer: ReadyTimer, connected_at: float | None = None) -> dict[str, float]:
    figures = timer.figures(time.monotonic() if connected_at is None else connected_at)
    # the whole of it, imports and Celery's own start included (0.01 s resolution)
    age = process_age_s()
    if age is not None:
        figures["process_s"] = age
    log.info("worker.time_to_ready", **figures, pulled=[p.ref for p in timer.images])
    if not timer.human:
        return figures
    since = f"; {figures['process_s']:.2f} s since the process started" if age is not None else ""
    print(
        f"runner: worker ready in {figures['total_s']:.2f} s (pull {figures['pull_s']:.2f} s, "
        f"prewarm {figures['prewarm_s']:.2f} s, connect {figures['connect_s']:.2f} s{since})",
        file=sys.stderr,
        flush=True,
    )
    return figures


def connected() -> None:
    """Celery's ``worker_ready`` (connected in :mod:`worker.pipeline.runtime`): report the pending
    timer, once."""
    global _pending
    timer, _pending = _pending, None
    if timer is not None:
        report(timer)
