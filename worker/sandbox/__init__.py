"""Sandboxes: hardened containers (container), the supervisor's wire format (protocol), warm
pools of them (pool), removal of what no pool holds (reaper), and a fake pool for tests (fake)."""

from __future__ import annotations

import docker
import docker.errors

from worker.errors import SandboxError
from worker.images.catalog import image_ref
from worker.languages import LANGUAGES
from worker.sandbox.container import ENGINE_ERRORS, SandboxSpec
from worker.sandbox.pool import SandboxPools
from worker.settings import Settings


def sandbox_images() -> list[str]:
    """Catalogue keys of every image some language runs or compiles in."""
    keys = {lang.image for lang in LANGUAGES.values()}
    keys |= {lang.compile.image for lang in LANGUAGES.values() if lang.compile}
    return sorted(keys)


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
    """Pools of ``size`` sandboxes for each image (not started: call ``start()``)."""
    specs = {
        key: SandboxSpec(
            image=image_ref(settings.image_prefix, key),
            owner=owner,
            memory_mb=settings.max_memory_mb,
            runtime=settings.runtime,
            extra_labels=extra_labels,
        )
        for key in (images if images is not None else sandbox_images())
    }
    return SandboxPools(
        docker_client(),
        specs,
        size=size,
        max_jobs=max_jobs if max_jobs is not None else settings.max_jobs,
        uid_base=settings.job_uid_base,
        health_interval_s=settings.health_interval_s,
    )
