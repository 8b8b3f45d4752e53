"""The images this project builds, as data: Dockerfile, target, and the files that define each.

An image's tag is a hash of everything that goes into it (its Dockerfile, its input files, the
base image's id, the supervisor's tag and the build args), so an unchanged image is never
rebuilt and two hosts that build the same sources get the same tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageSpec:
    key: str
    dockerfile: str
    target: str
    inputs: tuple[str, ...]
    args: tuple[tuple[str, str], ...] = ()
    needs_supervisor: bool = True
    sandbox: bool = True  # pooled as a sandbox by workers (the supervisor image is not)
    description: str = field(default="", compare=False)


SUPERVISOR = ImageSpec(
    key="supervisor",
    dockerfile="images/supervisor/Dockerfile",
    target="production",
    inputs=("images/supervisor",),
    needs_supervisor=False,
    sandbox=False,
    description="static supervisor binary, copied into every sandbox image",
)

IMAGES: dict[str, ImageSpec] = {
    spec.key: spec
    for spec in (
        SUPERVISOR,
        ImageSpec(
            key="python",
            dockerfile="images/python/Dockerfile",
            target="production",
            inputs=("images/python", "images/common"),
            args=(("PYTHON_VERSION", "3.11"),),
            description="Python 3 runtime, FROM scratch",
        ),
        ImageSpec(
            key="gcc",
            dockerfile="images/gcc/Dockerfile",
            target="compiler",
            inputs=("images/gcc", "images/common"),
            args=(("GCC_VERSION", "12"),),
            description="gcc/g++ compile image for C and C++",
        ),
        ImageSpec(
            key="native",
            dockerfile="images/gcc/Dockerfile",
            target="production",
            inputs=("images/gcc", "images/common"),
            args=(("GCC_VERSION", "12"),),
            description="run image for compiled C and C++ programs, FROM scratch",
        ),
        ImageSpec(
            key="javascript",
            dockerfile="images/javascript/Dockerfile",
            target="production",
            inputs=("images/javascript", "images/common"),
            args=(("NODE_VERSION", "18"),),
            description="Node.js runtime, FROM scratch",
        ),
    )
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
    needs_supervisor=False,
    sandbox=False,
    description="the brief's single-stage starting point, for the benchmark only",
)


def image_name(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"


def image_ref(prefix: str, key: str) -> str:
    """The reference sandboxes are created from: the last image built for ``key``."""
    return f"{image_name(prefix, key)}:latest"
