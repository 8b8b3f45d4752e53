"""Finding and removing sandbox containers that no pool holds: what a crashed worker left
(same owner), strays (a removal that failed while the engine was away), orphans (the
sandboxes of a Celery node that no longer answers) and dead sandboxes (exited, or never
started).

Every sweep lists and removes only the sandboxes of its own fleet (the ``io.runner.fleet``
label: which broker their worker serves), so fleets that share a Docker engine never touch
each other's: a node of another fleet never answers this fleet's ping, and node or owner names
may coincide across fleets.
"""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors
import structlog

from worker.errors import SandboxError
from worker.sandbox.container import ENGINE_ERRORS, LABEL_FLEET, LABEL_OWNER, LABEL_SANDBOX

log = structlog.get_logger()

# States of a container no pool can use again (pools never restart one).
DEAD_STATES = ("exited", "dead")


def fleet_containers(
    client: docker.DockerClient, fleet: str, owner: str | None = None
) -> list[Any]:
    """Every sandbox container of ``fleet`` (and of ``owner`` when given), running or not."""
    labels = [f"{LABEL_SANDBOX}=1", f"{LABEL_FLEET}={fleet}"]
    if owner is not None:
        labels.append(f"{LABEL_OWNER}={owner}")
    found = _list(client, labels, f"fleet {fleet}")
    # the engine filters already; this keeps a sweep within its fleet whatever it was given
    return [c for c in found if _labels(c).get(LABEL_FLEET) == fleet]


def owned_containers(
    client: docker.DockerClient, owner: str, fleet: str | None = None
) -> list[Any]:
    """Every sandbox container labelled with ``owner``, running or not: of ``fleet`` when
    given (what sweeps use), of any fleet otherwise (for tests and inspection)."""
    if fleet is not None:
        return fleet_containers(client, fleet, owner)
    return _list(client, [f"{LABEL_SANDBOX}=1", f"{LABEL_OWNER}={owner}"], owner)


def _list(client: docker.DockerClient, labels: list[str], what: str) -> list[Any]:
    try:
        return client.containers.list(  # type: ignore[no-any-return]
            all=True,
            sparse=True,  # no per-container inspect: one may vanish while we list
            filters={"label": labels},
        )
    except ENGINE_ERRORS as exc:
        raise SandboxError(f"cannot list sandboxes of {what}: {exc}") from exc


def _labels(container: Any) -> dict[str, str]:
    return container.attrs.get("Labels") or {}


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
    client: docker.DockerClient, alive: set[str], own: str, fleet: str, min_age_s: float = 300.0
) -> int:
    """Remove sandboxes of this fleet's Celery nodes (owners named like ``runner@host``) that
    no longer answer: a worker container replaced under a new host name leaves its sandboxes
    to no one. Owners set by hand (no ``@``) are never touched: they are someone else's to
    manage; nor are other fleets' sandboxes, whose nodes never answer this fleet's ping."""
    now = time.time()
    orphans = []
    for container in fleet_containers(client, fleet):
        owner = _labels(container).get(LABEL_OWNER, "")
        old = now - container.attrs.get("Created", now) > min_age_s
        if "@" in owner and owner != own and owner not in alive and old:
            orphans.append(container)
    for container in orphans:
        remove_container(container)
    if orphans:
        log.info("pool.orphans_removed", fleet=fleet, count=len(orphans))
    return len(orphans)


def remove_dead(client: docker.DockerClient, fleet: str, min_age_s: float = 120.0) -> int:
    """Remove this fleet's sandboxes that can never serve again, whoever owns them: exited
    or dead ones (the engine's auto-removal missed them: an engine restart, an older worker),
    and ones created but never started (a worker killed in between) once ``min_age_s`` old,
    so one being started right now is spared."""
    now = time.time()
    dead = []
    for container in fleet_containers(client, fleet):
        state = container.attrs.get("State", "")
        old = now - container.attrs.get("Created", now) > min_age_s
        if state in DEAD_STATES or (state == "created" and old):
            dead.append(container)
    for container in dead:
        remove_container(container)
    if dead:
        log.info("pool.dead_removed", fleet=fleet, count=len(dead))
    return len(dead)


def remove_leftovers(client: docker.DockerClient, owner: str, fleet: str) -> int:
    """Remove every sandbox of ``owner`` in ``fleet`` (what a crashed worker left)."""
    found = fleet_containers(client, fleet, owner)
    for container in found:
        remove_container(container)
    if found:
        log.info("pool.leftovers_removed", owner=owner, fleet=fleet, count=len(found))
    return len(found)
