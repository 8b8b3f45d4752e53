"""Finding and removing sandbox containers that no pool holds: what a crashed worker left
(same owner), strays (a removal that failed while the engine was away), and orphans (the
sandboxes of a Celery node that no longer answers)."""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors
import structlog

from worker.errors import SandboxError
from worker.sandbox.container import ENGINE_ERRORS, LABEL_OWNER, LABEL_SANDBOX

log = structlog.get_logger()


def owned_containers(client: docker.DockerClient, owner: str) -> list[Any]:
    """Every sandbox container labelled with ``owner``, running or not."""
    try:
        return client.containers.list(  # type: ignore[no-any-return]
            all=True,
            sparse=True,  # no per-container inspect: one may vanish while we list
            filters={"label": [f"{LABEL_SANDBOX}=1", f"{LABEL_OWNER}={owner}"]},
        )
    except ENGINE_ERRORS as exc:
        raise SandboxError(f"cannot list sandboxes of {owner}: {exc}") from exc


def remove_container(container: Any) -> None:
    """Force-remove; gone already, or a removal already under way (409), is fine."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise SandboxError(f"cannot remove sandbox {container.id[:12]}: {exc}") from exc
    except ENGINE_ERRORS as exc:
        raise SandboxError(f"cannot remove sandbox {container.id[:12]}: {exc}") from exc


def remove_orphans(
    client: docker.DockerClient, alive: set[str], own: str, min_age_s: float = 300.0
) -> int:
    """Remove sandboxes of Celery nodes (owners named like ``runner@host``) that no longer
    answer: a worker container replaced under a new host name leaves its sandboxes to no one.
    Owners set by hand (no ``@``) are never touched: they are someone else's to manage."""
    try:
        listed = client.containers.list(
            all=True, sparse=True, filters={"label": f"{LABEL_SANDBOX}=1"}
        )
    except ENGINE_ERRORS as exc:
        raise SandboxError(f"cannot list sandboxes: {exc}") from exc
    now = time.time()
    orphans = []
    for container in listed:
        owner = (container.attrs.get("Labels") or {}).get(LABEL_OWNER, "")
        old = now - container.attrs.get("Created", now) > min_age_s
        if "@" in owner and owner != own and owner not in alive and old:
            orphans.append(container)
    for container in orphans:
        remove_container(container)
    if orphans:
        log.info("pool.orphans_removed", count=len(orphans))
    return len(orphans)


def remove_leftovers(client: docker.DockerClient, owner: str) -> int:
    """Remove every sandbox container labelled with ``owner`` (what a crashed worker left)."""
    found = owned_containers(client, owner)
    for container in found:
        remove_container(container)
    if found:
        log.info("pool.leftovers_removed", owner=owner, count=len(found))
    return len(found)
