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
    description: str = field(default="", compare=False)
