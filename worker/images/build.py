"""Build every image with BuildKit, tagged by content; skip what is up to date.

Builds go through the Docker CLI (the SDK cannot use BuildKit) with the repository root as
context and the root ``.dockerignore`` keeping it small. Each image is tagged
``PREFIX-KEY:<content hash>`` and ``PREFIX-KEY:latest``; a tag that already exists means
nothing it depends on changed, and the build is skipped.

The OCI labels (``org.opencontainers.image.*``) are written here once, for every image and
target, and given to the build as ``--label``: no Dockerfile spells them. Like the build's
date and revision they are left out of the content tag, which the same sources keep.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.parse
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import structlog

from worker.errors import ImageError
from worker.images.base import resolve_base
from worker.images.catalog import IMAGES, SUPERVISOR, image_name
from worker.images.docker_cli import DockerCli
from worker.languages.model import ImageSpec

log = structlog.get_logger()

ROOT = Path(__file__).resolve().parents[2]
TAG_LENGTH = 12
OCI = "org.opencontainers.image."
LICENSES = "MIT"
VENDOR = "code-runner-fleet"
UNKNOWN_SOURCE = "unknown"  # no public repository yet: a checkout cloned from one names it


@dataclass(frozen=True)
class BuildOptions:
    prefix: str = "runner"
    base_image: str = ""
    development: bool = False
    cache_from: str = ""  # registry prefix to pull build cache from
    cache_to: str = ""  # registry prefix to push images with inline build cache to
    verbose: bool = False
    root: Path = ROOT
    # sandbox images built at once: most of a build from scratch is waiting on Debian's
    # mirror and unpacking, which another build can overlap
    jobs: int = 4


@dataclass(frozen=True)
class Built:
    key: str
    ref: str
    size_bytes: int
    seconds: float
    cached: bool

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


def content_tag(spec: ImageSpec, root: Path, extra: Iterable[str]) -> str:
    """Hash of the Dockerfile, the spec's input files (names and bytes) and ``extra``."""
    digest = hashlib.sha256()
    paths = {root / spec.dockerfile}
    for item in spec.inputs:
        path = root / item
        paths.update(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else paths.add(
            path
        )
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for item in [spec.target, *(f"{k}={v}" for k, v in spec.args), *extra]:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:TAG_LENGTH]


@dataclass(frozen=True)
class Provenance:
    """What every image of one checkout says of where it comes from (its OCI labels)."""

    version: str
    revision: str
    source: str

    @classmethod
    def of(cls, root: Path) -> Provenance:
        return cls(_version(), _git_revision(root), _git_source(root))


def oci_labels(
    spec: ImageSpec, name: str, development: bool, provenance: Provenance, created: str
) -> dict[str, str]:
    """The OCI labels of ``spec`` built as the image ``name``: its ``development`` target's
    when asked (titled ``NAME-development``, "Debugging variant of NAME: " what it adds)."""
    if development:
        title = f"{name}-development"
        adds = f": {spec.development_description}" if spec.development_description else ""
        description = f"Debugging variant of {name}{adds}"
    else:
        title, description = name, spec.description
    return {
        f"{OCI}title": title,
        f"{OCI}description": description,
        f"{OCI}version": provenance.version,
        f"{OCI}source": provenance.source,
        f"{OCI}licenses": LICENSES,
        f"{OCI}vendor": VENDOR,
        f"{OCI}revision": provenance.revision,
        f"{OCI}created": created,
    }


def label_flags(labels: dict[str, str]) -> list[str]:
    return [flag for key, value in labels.items() for flag in ("--label", f"{key}={value}")]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Builder:
    def __init__(self, cli: DockerCli, options: BuildOptions) -> None:
        self.cli = cli
        self.options = options
        self._base = ""
        self._base_id = ""
        self._provenance = Provenance.of(options.root)

    @property
    def base(self) -> str:
        if not self._base:
            self._base = resolve_base(self.cli, self.options.base_image)
        return self._base

    @property
    def base_id(self) -> str:
        """The base image's id, looked up once for every image this builder makes."""
        if not self._base_id:
            self._base_id = self.cli.image_id(self.base)
        return self._base_id

    def build_all(self, keys: Iterable[str] | None = None) -> list[Built]:
        """Build the supervisor, then the requested sandbox images (default: all)."""
        wanted = list(keys) if keys else [k for k in IMAGES if k != SUPERVISOR.key]
        supervisor = self.build(SUPERVISOR)
        sandboxes = [IMAGES[key] for key in wanted if key != SUPERVISOR.key]
        with ThreadPoolExecutor(max_workers=max(1, self.options.jobs)) as pool:
            builds = [pool.submit(self.build, spec, supervisor.ref) for spec in sandboxes]
            # every build is waited for, so a failure reports once nothing runs any more
            failures = [build.exception() for build in builds]
        for failure in failures:
            if failure is not None:
                raise failure
        return [supervisor, *(build.result() for build in builds)]

    def build(self, spec: ImageSpec, supervisor_ref: str = "", no_cache: bool = False) -> Built:
        # the supervisor has no development target: sandbox images of either kind copy its
        # production one
        development = self.options.development and spec.target and spec.sandbox
        target = "development" if development else spec.target
        tag = content_tag(spec, self.options.root, [self.base_id, supervisor_ref, target])
        name = image_name(self.options.prefix, spec.key)
        ref = f"{name}:{'dev-' if target == 'development' else ''}{tag}"
        if not no_cache and self.cli.image_exists(ref):
            if target != "development":
                self.cli.run("tag", ref, f"{name}:latest")
            return Built(spec.key, ref, self.cli.image_size(ref), 0.0, True)
        started = time.monotonic()
        args = self.build_command(spec, ref, target, supervisor_ref, no_cache)
        log.info("image.build", image=ref, target=target or "(last stage)")
        result = subprocess.run(
            [self.cli.path, *args],
            cwd=self.options.root,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=not self.options.verbose,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stderr or "")[-3000:]
            raise ImageError(f"building {ref} failed:\n{tail}")
        seconds = time.monotonic() - started
        if self.options.cache_to:
            # by content tag, and as latest: what --cache-from reads
            for remote_tag in (tag, "latest"):
                remote = f"{self.options.cache_to.rstrip('/')}/{name}:{remote_tag}"
                self.cli.run("tag", ref, remote)
                self.cli.run("push", remote)
        return Built(spec.key, ref, self.cli.image_size(ref), seconds, False)

    def build_command(
        self, spec: ImageSpec, ref: str, target: str, supervisor_ref: str, no_cache: bool
    ) -> list[str]:
        name = ref.split(":")[0]
        args = ["build", "-f", spec.dockerfile, "-t", ref]
        if target:
            args += ["--target", target]
        if target not in ("development", ""):
            args += ["-t", f"{name}:latest"]
        if no_cache:
            args.append("--no-cache")
        # image metadata only: no layer's cache key, nor the content tag, depends on them
        args += label_flags(
            oci_labels(spec, name, target == "development", self._provenance, now())
        )
        build_args = {"BASE_IMAGE": self.base, **dict(spec.args)}
        if supervisor_ref:
            build_args["SUPERVISOR_IMAGE"] = supervisor_ref
        if self.options.cache_to:
            build_args["BUILDKIT_INLINE_CACHE"] = "1"  # the pushed image carries its cache
        if self.options.cache_from:
            args += ["--cache-from", f"{self.options.cache_from.rstrip('/')}/{name}:latest"]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        ca_bundle = os.environ.get("PIP_CERT", "")
        if ca_bundle and os.path.isfile(ca_bundle):
            # a TLS-intercepting proxy in front of PyPI: pip in the build needs its CA, as a
            # secret so it never lands in a layer
            args += ["--secret", f"id=ca-bundle,src={ca_bundle}"]
        if not self.options.verbose:
            args.append("--quiet")
        args.append(".")
        return args


def _version() -> str:
    try:
        return metadata.version("code-runner-fleet")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _git_revision(root: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _git_source(root: Path) -> str:
    """The checkout's origin when it is a URL (without any user or token in it), else
    :data:`UNKNOWN_SOURCE` (a clone of a local path says nothing to the image's reader)."""
    result = subprocess.run(
        ["git", "-C", str(root), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    )
    url = urllib.parse.urlsplit(result.stdout.strip())
    if result.returncode != 0 or url.scheme not in ("https", "http", "ssh", "git"):
        return UNKNOWN_SOURCE
    host = url.hostname or ""
    netloc = f"{host}:{url.port}" if url.port else host
    return urllib.parse.urlunsplit((url.scheme, netloc, url.path, "", ""))
