"""The images this project builds, as data: the supervisor, every image a language declares
(:attr:`worker.languages.Language.images`), and the benchmark's baseline.

An image's tag is a hash of everything that goes into it (its Dockerfile, its input files, the
base image's id, the supervisor's tag and the build args), so an unchanged image is never
rebuilt and two hosts that build the same sources get the same tags.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.languages import LANGUAGES
from worker.languages.model import ImageSpec
from worker.queue import WRITTEN_FOR

SUPERVISOR = ImageSpec(
    key="supervisor",
    dockerfile="images/supervisor/Dockerfile",
    target="production",
    inputs=("images/supervisor",),
    sandbox=False,
    description="Static sandbox supervisor and a dynamic hello probe, copied into the language "
    "images",
)

IMAGES: dict[str, ImageSpec] = {
    spec.key: spec
    for spec in (SUPERVISOR, *(spec for lang in LANGUAGES.values() for spec in lang.images))
}

BASELINE = ImageSpec(
    key="baseline",
    dockerfile="images/baseline/Dockerfile",
    target="",
    inputs=(
        "images/baseline",
        "images/supervisor",
        "images/python/requirements-execution.txt",
    ),
    sandbox=False,
    description="Unoptimised single-stage baseline (the brief's starting point), for benchmarks "
    "only",
)

# The images deploy/docker-compose.yml runs, which scripts/fleet-images builds (its own content
# tags; the OCI labels and build args from here: ``python -m worker.images flags KEY``).
FLOWER_VERSION = "2.0.1"
_WORKER_INPUTS = ("images/worker", "worker", "setup.cfg", "pyproject.toml", "README.md")
FLEET: dict[str, ImageSpec] = {
    spec.key: spec
    for spec in (
        ImageSpec(
            key="worker",
            dockerfile="images/worker/Dockerfile",
            target="production",
            inputs=_WORKER_INPUTS,
            sandbox=False,
            description="Celery worker of the code-judging fleet; runs tests in hardened sandbox "
            "containers through the host's Docker engine",
            development_description="dev extras, pip, procps; source at /src",
        ),
        ImageSpec(
            key="api",
            dockerfile="images/worker/Dockerfile",
            target="api",
            inputs=_WORKER_INPUTS,
            sandbox=False,
            description="HTTP API, webhooks and playground page of the code-judging fleet",
        ),
        ImageSpec(
            key="redis",
            dockerfile="images/redis/Dockerfile",
            target="production",
            inputs=(),
            sandbox=False,
            description="Debian's redis-server for the fleet's broker and result backend "
            "(noeviction, appendonly), for machines that cannot pull redis:7-alpine",
        ),
        ImageSpec(
            key="flower",
            dockerfile="images/flower/Dockerfile",
            target="production",
            inputs=(),
            args=(("FLOWER_VERSION", FLOWER_VERSION), ("CELERY_VERSION", WRITTEN_FOR["celery"])),
            sandbox=False,
            description=f"Flower {FLOWER_VERSION} (Celery monitor) for the fleet, for machines "
            "that cannot pull mher/flower:2.0",
        ),
        ImageSpec(
            key="registry",
            dockerfile="images/registry/Dockerfile",
            target="production",
            inputs=("images/registry",),
            sandbox=False,
            description="Debian's docker-registry (2.8) with htpasswd authentication: the "
            "fleet's images, pushed and pulled by content tag",
        ),
        ImageSpec(
            key="prometheus",
            dockerfile="images/prometheus/Dockerfile",
            target="production",
            inputs=("images/prometheus",),
            sandbox=False,
            description="Debian's Prometheus scraping the fleet's workers and Flower",
        ),
    )
}


def images_for(languages: Iterable[str]) -> list[str]:
    """Catalogue keys of every image the named languages run or compile in."""
    return sorted(set().union(*(LANGUAGES[name].image_keys for name in languages)))


def image_name(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"


def image_ref(prefix: str, key: str) -> str:
    """The reference sandboxes are created from: the last image built for ``key``."""
    return f"{image_name(prefix, key)}:latest"
