"""Sandboxes: hardened containers (container), the supervisor's wire format (protocol), warm
pools of them (pool), removal of what no pool holds (reaper), and a fake pool for tests (fake).

May import: worker.errors, worker.images, worker.metrics, worker.outages, worker.programs,
worker.settings.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import docker
import docker.errors
import structlog

from worker.errors import SandboxError
from worker.images.catalog import image_ref, images_for
from worker.sandbox.container import ENGINE_ERRORS, SandboxSpec, memory_cgroup
from worker.sandbox.pools import SandboxPools
from worker.sandbox.slice import HostSlice, sandbox_cpus
from worker.settings import Settings

log = structlog.get_logger()


def sandbox_images(settings: Settings) -> list[str]:
    """Catalogue keys of every image the languages a worker runs (RUNNER_LANGUAGES) run or
    compile in."""
    return images_for(settings.chosen_languages())


DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671, "pyamqp": 5672}


def broker_fleet(url: str) -> str:
    """A short, stable name for the fleet served by the broker at ``url``: a hash of each
    broker's scheme, host, port and database (or virtual host), never of its credentials.
    Workers that ping each other (Celery's control messages stay within one broker database)
    get the same name; fleets on other brokers sharing the Docker engine get another."""
    parts = []
    for one in url.split(";"):  # kombu's list of failover brokers
        split = urlsplit(one.strip())
        scheme = split.scheme.lower()
        try:
            port = split.port
        except ValueError:
            port = None
        db = split.path.strip("/")
        if scheme.startswith("redis") and not split.hostname:  # redis+socket:///path?db=N
            db = f"{split.path}/{parse_qs(split.query).get('virtual_host', [''])[0]}"
        elif scheme.startswith("redis"):
            db = db or parse_qs(split.query).get("db", ["0"])[0]
        host = (split.hostname or "").lower()
        parts.append(f"{scheme}://{host}:{port or DEFAULT_PORTS.get(scheme, '')}/{db}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def fleet_of(settings: Settings) -> str:
    """The fleet label of this worker's sandboxes: ``RUNNER_FLEET``, or the broker's hash."""
    return settings.fleet or broker_fleet(settings.broker_url)


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except ENGINE_ERRORS as exc:
        raise SandboxError(f"the Docker engine is not reachable: {exc}") from exc
    return client


def open_pools(
    settings: Settings,
    size: int,
    owner: str,
    images: list[str] | None = None,
    extra_labels: tuple[tuple[str, str], ...] = (),
    max_jobs: int | None = None,
) -> SandboxPools:
    """Pools of ``size`` sandboxes for each image (default: those of the languages
    ``settings`` choose), not started (call ``start()``), labelled with ``owner`` and the fleet
    of ``settings`` (:func:`fleet_of`)."""
    if settings.isolation != "namespaces":
        # an operator's choice for hosts that refuse namespaces; it must stay visible
        log.warning(
            "sandbox.isolation_weakened",
            isolation=settings.isolation,
            detail="jobs share IPC, mount and PID namespaces; only the cleanup keeps them apart",
        )
    fleet = fleet_of(settings)
    client = docker_client()
    host = HostSlice(settings.host_slice, settings.host_cpus) if settings.host_slice else None
    parent = host.cgroup_parent if host else ""
    delegated = memory_cgroup(client, parent) if parent else memory_cgroup(client)
    if host is not None and not delegated:
        raise SandboxError(
            f"RUNNER_HOST_SLICE={host.name!r}: slices need cgroup v1 and the Docker engine's "
            "cgroupfs driver"
        )
    specs = {
        key: SandboxSpec(
            image=image_ref(settings.image_prefix, key),
            owner=owner,
            fleet=fleet,
            memory_mb=settings.ceilings().memory_mb,
            runtime=settings.runtime,
            isolation=settings.isolation,
            extra_labels=extra_labels,
            memory_cgroup=delegated,
            cgroup_parent=parent,
            cpus=sandbox_cpus(host, SandboxSpec.cpus),
        )
        for key in (images if images is not None else sandbox_images(settings))
    }
    return SandboxPools(
        client,
        specs,
        size=size,
        max_jobs=max_jobs if max_jobs is not None else settings.max_jobs,
        uid_base=settings.job_uid_base,
        health_interval_s=settings.health_interval_s,
        outage_window_s=settings.outage_window_s,
    )
