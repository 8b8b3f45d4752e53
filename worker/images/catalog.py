"""The images this project builds, as data: the supervisor, every image a language declares
(:attr:`worker.languages.Language.images`), and the benchmark's baseline.

An image's tag is a hash of everything that goes into it (its Dockerfile, its input files, the
base image's id, the supervisor's tag and the build args), so an unchanged image is never
rebuilt and two hosts that build the same sources get the same tags.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.images.spec import ImageSpec
from worker.languages import LANGUAGES

SUPERVISOR = ImageSpec(
    key="supervisor",
    dockerfile="images/supervisor/Dockerfile",
    target="production",
    inputs=("images/supervisor",),
    sandbox=False,
    description="static supervisor binary, copied into every sandbox image",
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
    description="the brief's single-stage starting point, for the benchmark only",
)


def images_for(languages: Iterable[str]) -> list[str]:
    """Catalogue keys of every image the named languages run or compile in."""
    return sorted(set().union(*(LANGUAGES[name].image_keys for name in languages)))


def image_name(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"


def image_ref(prefix: str, key: str) -> str:
    """The reference sandboxes are created from: the last image built for ``key``."""
    return f"{image_name(prefix, key)}:latest"
