"""Image size and build times: our multi-stage images against the brief's single-stage
baseline, from a clean build cache, in one run.

The sources are copied to a scratch directory (the tracked files only) so the benchmark can
change "application code" (the supervisor's source) without touching the checkout, and the
images get their own prefix so the real ones are left alone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from worker.images.build import ROOT, Builder, BuildOptions
from worker.images.catalog import BASELINE, IMAGES, SUPERVISOR, image_name
from worker.images.docker_cli import DockerCli
from worker.settings import Settings

PREFIX = "runnerbench"
APP_CODE = "images/supervisor/supervisor.c"


def run() -> dict[str, object]:
    settings = Settings.from_env()
    cli = DockerCli.pick(settings.docker_cli)
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        root = Path(tmp)
        _copy_tracked(root)
        builder = Builder(
            cli, BuildOptions(prefix=PREFIX, base_image=settings.base_image, root=root)
        )
        _ = builder.base  # resolve (or build) the base before anything is timed
        try:
            return _measure(cli, builder, root)
        finally:
            _remove_bench_images(cli)


def _measure(cli: DockerCli, builder: Builder, root: Path) -> dict[str, object]:
    cli.run("builder", "prune", "--all", "--force")
    _remove_bench_images(cli)

    start = time.monotonic()
    built = builder.build_all()
    cold = time.monotonic() - start
    start = time.monotonic()
    baseline = builder.build(BASELINE)
    baseline_cold = time.monotonic() - start

    _touch_app_code(root)
    start = time.monotonic()
    builder.build_all(["python"])
    warm = time.monotonic() - start
    start = time.monotonic()
    builder.build(BASELINE)
    baseline_warm = time.monotonic() - start

    sizes = {b.key: round(b.size_mb, 1) for b in built if b.key != SUPERVISOR.key}
    python_mb = sizes["python"]
    baseline_mb = round(baseline.size_mb, 1)
    return {
        "images_mb": sizes,
        "python_image_mb": python_mb,
        "baseline_image_mb": baseline_mb,
        "cold_build_s": round(cold, 1),
        "baseline_cold_build_s": round(baseline_cold, 1),
        "warm_rebuild_s": round(warm, 2),
        "baseline_warm_rebuild_s": round(baseline_warm, 1),
        "python_smaller_than_baseline_pct": round(100 * (1 - python_mb / baseline_mb), 1),
        "warm_rebuild_speedup": round(baseline_warm / warm, 1),
        "cold_build_note": "all sandbox images (supervisor, python, gcc, native, javascript)",
    }


def _copy_tracked(root: Path) -> None:
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _touch_app_code(root: Path) -> None:
    path = root / APP_CODE
    path.write_text(path.read_text() + f"/* bench edit {time.time()} */\n")


def _remove_bench_images(cli: DockerCli) -> None:
    keys = [*IMAGES, BASELINE.key]
    refs = cli.run("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    names = {image_name(PREFIX, key) for key in keys}
    doomed = [ref for ref in refs if ref.split(":")[0] in names]
    if doomed:
        cli.run("rmi", "--force", *doomed)
