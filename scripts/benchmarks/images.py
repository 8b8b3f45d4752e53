"""Image size and build times: our multi-stage images against the brief's single-stage
baseline, from a clean build cache, in one run.

The sources are copied to a scratch directory (the tracked files only) so the benchmark can
change "application code" (the supervisor's source) without touching the checkout, and the
images get their own prefix so the real ones are left alone.

Quick mode (``--quick``, what the tests run) proves the entry point and every Dockerfile still
build, in seconds, without touching the shared BuildKit cache: no prune, so the "cold" builds
come from the cache; only the files the image catalogue declares as inputs are copied (a
Dockerfile that copies an undeclared file, which its content tag would not cover, fails here);
the images get a prefix of their own run; and the baseline, whose every step re-runs when its
build args change (about 40 s of apt), gets a fixed creation date and is rebuilt with the
edit undone, so it comes from the cache whenever its inputs did not change. Its figures are
not measurements.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from worker.images.build import ROOT, Builder, BuildOptions
from worker.images.catalog import BASELINE, IMAGES, SUPERVISOR, image_name
from worker.images.docker_cli import DockerCli
from worker.languages.model import ImageSpec
from worker.settings import Settings

PREFIX = "runnerbench"
APP_CODE = "images/supervisor/supervisor.c"
T = TypeVar("T")


def run(quick: bool = False) -> dict[str, object]:
    settings = Settings.from_env()
    cli = DockerCli.pick(settings.docker_cli)
    prefix = f"{PREFIX}-quick-{uuid.uuid4().hex[:6]}" if quick else PREFIX
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        root = Path(tmp)
        _copy_sources(root, _declared_inputs() if quick else [])
        builder = Builder(
            cli, BuildOptions(prefix=prefix, base_image=settings.base_image, root=root)
        )
        _ = builder.base  # resolve (or build) the base before anything is timed
        try:
            return _measure(cli, builder, root, quick)
        finally:
            _remove_bench_images(cli, prefix)


def _measure(cli: DockerCli, builder: Builder, root: Path, quick: bool) -> dict[str, object]:
    prefix = builder.options.prefix
    if not quick:
        cli.run("builder", "prune", "--all", "--force")
    _remove_bench_images(cli, prefix)

    cold, built = _timed(builder.build_all)
    baseline_cold, baseline = _timed(lambda: builder.build(BASELINE))

    with _app_code_edit(root):
        warm, _ = _timed(lambda: builder.build_all(["python"]))
        if not quick:
            baseline_warm, _ = _timed(lambda: builder.build(BASELINE))
    if quick:
        _remove_bench_images(cli, prefix, [BASELINE.key])  # or the build would be skipped
        baseline_warm, _ = _timed(lambda: builder.build(BASELINE))

    sizes = {b.key: round(b.size_mb, 1) for b in built if b.key != SUPERVISOR.key}
    official = {key: spec.official_slim[1] for key, spec in IMAGES.items() if spec.official_slim}
    refs = {b.key: b.ref for b in built}
    # ours as a pull transfers them, like for like with Docker Hub's figures
    compressed = {key: round(cli.compressed_size(refs[key]) / 1e6, 1) for key in official}
    python_mb = sizes["python"]
    baseline_mb = round(baseline.size_mb, 1)
    return {
        "images_mb": sizes,
        # the official images of the same runtimes, as Docker Hub lists them (compressed)
        "official_slim_mb": official,
        "images_compressed_mb": compressed,
        "python_image_mb": python_mb,
        "baseline_image_mb": baseline_mb,
        "cold_build_s": round(cold, 1),
        "baseline_cold_build_s": round(baseline_cold, 1),
        "warm_rebuild_s": round(warm, 2),
        "baseline_warm_rebuild_s": round(baseline_warm, 1),
        "python_smaller_than_baseline_pct": round(100 * (1 - python_mb / baseline_mb), 1),
        "warm_rebuild_speedup": round(baseline_warm / warm, 1),
        "cold_build_note": f"all sandbox images ({', '.join(IMAGES)})",
    }


def _timed(build: Callable[[], T]) -> tuple[float, T]:
    start = time.monotonic()
    result = build()
    return time.monotonic() - start, result


def _declared_inputs() -> list[str]:
    """What the catalogue says the images are built from, and the root .dockerignore."""
    specs: list[ImageSpec] = [*IMAGES.values(), BASELINE]
    return sorted({".dockerignore", *(p for s in specs for p in (s.dockerfile, *s.inputs))})


def _copy_sources(root: Path, pathspecs: list[str]) -> None:
    """Copy the checkout's files that git does not ignore (tracked or new), or only those
    under ``pathspecs`` when given, into ``root``."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z", "--", *pathspecs],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@contextmanager
def _app_code_edit(root: Path) -> Iterator[None]:
    """A change to application code only (a comment in the supervisor), undone afterwards."""
    path = root / APP_CODE
    original = path.read_text()
    path.write_text(original + f"/* bench edit {time.time()} */\n")
    try:
        yield
    finally:
        path.write_text(original)


def _remove_bench_images(cli: DockerCli, prefix: str, keys: list[str] | None = None) -> None:
    names = {image_name(prefix, key) for key in (keys or [*IMAGES, BASELINE.key])}
    refs = cli.run("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    doomed = [ref for ref in refs if ref.split(":")[0] in names]
    if doomed:
        cli.run("rmi", "--force", *doomed)
