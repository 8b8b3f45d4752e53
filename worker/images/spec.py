"""What an image is to the build tool: its Dockerfile, target, build args and the files that
define it. Its own module so that the catalogue (:mod:`worker.images.catalog`) and the language
modules that declare their images (:mod:`worker.languages`) both import it, neither the other.
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
    sandbox: bool = True  # pooled as a sandbox by workers (the supervisor image is not)
    # what the image is, its OCI description label (the build writes every OCI label:
    # worker/images/build.py); development_description says what the Dockerfile's
    # ``development`` target adds ("Debugging variant of NAME: " goes before it)
    description: str = field(default="", compare=False)
    development_description: str = field(default="", compare=False)
    # the official image a deployment would run this runtime in otherwise, and its size in MB
    # as Docker Hub lists it (compressed for transfer, so less than it takes on disk): this
    # image must be smaller (tests/images), scripts/bench images reports both
    official_slim: tuple[str, float] | None = field(default=None, compare=False)
