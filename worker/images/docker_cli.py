"""The Docker command-line client, for what the Python SDK cannot do (BuildKit builds, import).

The SDK cannot build with BuildKit (docker-py issue 2230), and a newer CLI found on PATH may
lack the buildx plugin and refuse BuildKit, so the client is picked explicitly: Debian's
``/usr/bin/docker`` when present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from typing import IO, Any

from worker.errors import ImageError

DEBIAN_CLIENT = "/usr/bin/docker"


@dataclass(frozen=True)
class DockerCli:
    path: str

    @classmethod
    def pick(cls, configured: str = "") -> DockerCli:
        if configured:
            return cls(configured)
        if os.access(DEBIAN_CLIENT, os.X_OK):
            return cls(DEBIAN_CLIENT)
        found = shutil.which("docker")
        if found is None:
            raise ImageError("no docker client found (apt-get install docker.io)")
        return cls(found)

    def run(self, *args: str, stdin: IO[bytes] | None = None, **env: str) -> str:
        """Run ``docker ARGS``; return stdout, raise :class:`ImageError` with stderr on failure."""
        full_env = {**os.environ, **env}
        result = subprocess.run(
            [self.path, *args], stdin=stdin, capture_output=True, env=full_env, check=False
        )
        if result.returncode != 0:
            err = result.stderr.decode(errors="replace").strip()[-4000:]
            raise ImageError(f"docker {args[0]} failed ({result.returncode}): {err}")
        return result.stdout.decode(errors="replace")

    def stream(self, *args: str, **env: str) -> subprocess.CompletedProcess[Any]:
        """Run ``docker ARGS`` with output going to the terminal; raise on failure."""
        result = subprocess.run([self.path, *args], env={**os.environ, **env}, check=False)
        if result.returncode != 0:
            raise ImageError(f"docker {' '.join(args[:2])} failed ({result.returncode})")
        return result

    def image_exists(self, ref: str) -> bool:
        return (
            subprocess.run(
                [self.path, "image", "inspect", ref], capture_output=True, check=False
            ).returncode
            == 0
        )

    def pull(self, ref: str) -> bool:
        return (
            subprocess.run(
                [self.path, "pull", "-q", ref], capture_output=True, check=False, timeout=120
            ).returncode
            == 0
        )

    def image_size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).strip())

    def compressed_size(self, ref: str) -> int:
        """The image's layers gzipped (``docker save | gzip -6``): about what a registry stores
        and a pull transfers, which is how Docker Hub lists an image's size."""
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        size = 0
        with subprocess.Popen([self.path, "save", ref], stdout=subprocess.PIPE) as saving:
            assert saving.stdout is not None
            while chunk := saving.stdout.read(1 << 20):
                size += len(packer.compress(chunk))
        if saving.returncode != 0:
            raise ImageError(f"docker save {ref} failed ({saving.returncode})")
        return size + len(packer.flush())

    def image_id(self, ref: str) -> str:
        return self.run("image", "inspect", "--format", "{{.Id}}", ref).strip()
