"""The base image every Dockerfile starts from, made offline when no registry answers.

Dockerfiles take ``ARG BASE_IMAGE`` (default ``debian:bookworm-slim``). When that image is
neither present nor pullable, a minimal Debian root filesystem is built with
``debootstrap --variant=minbase`` from the mirror the host's apt already uses, trimmed the
way the slim image is (no docs, man pages or locales), and imported under a project-owned tag.
The same Dockerfiles then build online and offline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import structlog

from worker.errors import BaseImageError
from worker.images.docker_cli import DockerCli

PUBLIC_BASE = "debian:bookworm-slim"
OWN_BASE = "runner-base:bookworm"
SUITE = "bookworm"

# Mirrors slim's dpkg excludes: files no sandbox needs, kept out of every later apt install too.
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""

log = structlog.get_logger()


def resolve_base(cli: DockerCli, wanted: str = "") -> str:
    """Return a usable base image reference, building one from Debian packages if needed."""
    if wanted:
        if not cli.image_exists(wanted) and not cli.pull(wanted):
            raise BaseImageError(
                f"base image {wanted!r} (RUNNER_BASE_IMAGE) is absent and cannot be pulled"
            )
        return wanted
    for candidate in (PUBLIC_BASE, OWN_BASE):
        if cli.image_exists(candidate):
            return candidate
    if cli.pull(PUBLIC_BASE):
        return PUBLIC_BASE
    log.info("base.debootstrap", reason=f"{PUBLIC_BASE} absent and not pullable", tag=OWN_BASE)
    build_own_base(cli)
    return OWN_BASE


def host_mirror(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The Debian mirror the host's apt uses (deb822 ``URIs:`` or one-line ``deb`` form)."""
    files = [*sorted(apt_dir.glob("sources.list.d/*.sources")), apt_dir / "sources.list"]
    files += sorted(apt_dir.glob("sources.list.d/*.list"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for block in re.split(r"\n\s*\n", text):
            if re.search(rf"^Suites:.*\b{SUITE}\b", block, re.M) and "security" not in block:
                uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
                if uris:
                    return uris.group(1)
        for line in text.splitlines():
            # deb [options] URI SUITE COMPONENT...
            parts = line.split()
            at = next((i for i, part in enumerate(parts) if "://" in part), None)
            if parts[:1] == ["deb"] and at is not None and parts[at + 1 : at + 2] == [SUITE]:
                return parts[at]
    return None


def build_own_base(cli: DockerCli) -> None:
    """debootstrap a minimal bookworm and ``docker import`` it as :data:`OWN_BASE`."""
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="runner-base-") as tmp:
        root = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", SUITE, str(root)]
        mirror = host_mirror()
        if mirror:
            cmd.append(mirror)
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BaseImageError(f"debootstrap failed: {result.stderr.strip()[-2000:]}")
        _trim(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            cli.run(
                "import",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["bash"]',
                "-",
                OWN_BASE,
                stdin=tar.stdout,
            )
        finally:
            if tar.stdout:
                tar.stdout.close()
            tar.wait()
    log.info("base.imported", tag=OWN_BASE)


def _trim(root: Path) -> None:
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/runner-slim").write_text(DPKG_EXCLUDES)
    for sub in (
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/cache/apt/archives",
        "var/lib/apt/lists",
    ):
        target = root / sub
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir(parents=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
