"""The fleet's image registry (``RUNNER_REGISTRY``): pushing built images by their content tag,
and pulling the ones a worker's engine lacks.

A pushed image goes up twice, as ``REGISTRY/PREFIX-KEY:<content tag>`` and as
``REGISTRY/PREFIX-KEY:latest`` (the last one pushed). A worker whose engine has no
``PREFIX-KEY:latest`` asks the registry (its HTTP API, v2) which content tag ``latest`` is, pulls
the image by that tag, checks that what it pulled is the manifest the registry names by the tag
(the engine itself checks every layer against its digest), and tags it ``PREFIX-KEY:<tag>`` and
``PREFIX-KEY:latest``: the same names and the same identity (the content tag) as on the host that
built it, so compiled programs cached by identity are shared across hosts.

A host never needs build tools to join: the pull goes through the engine's API (the Python SDK),
with the credentials of ``RUNNER_REGISTRY_USER`` and ``RUNNER_REGISTRY_PASSWORD(_FILE)`` given per
request, never written anywhere nor printed. Pushing goes through the Docker CLI, logged in for
that one push in a throw-away client configuration (``DOCKER_CONFIG``), so the password is not
left in ``~/.docker/config.json`` either.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from worker.errors import ImageError
from worker.images.catalog import image_name
from worker.images.docker_cli import DockerCli
from worker.settings import Settings

log = structlog.get_logger()

LATEST = "latest"
# what a manifest may be: BuildKit pushes Docker's v2 manifests, or an OCI index with cache
MANIFESTS = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
TIMEOUT_S = 10.0


class RegistryError(ImageError):
    """The registry could not give an image: which, and where it was asked for."""


@dataclass(frozen=True)
class Registry:
    address: str  # HOST[:PORT][/PATH], as an image reference names it
    user: str = ""
    password: str = field(default="", repr=False)
    # plain HTTP, as the engine speaks to it: None decides by the address (loopback)
    insecure: bool | None = None

    @classmethod
    def of(cls, settings: Settings) -> Registry | None:
        """The configured registry, or None when ``RUNNER_REGISTRY`` is empty."""
        if not settings.registry:
            return None
        password = settings.registry_password
        if settings.registry_password_file:
            try:
                lines = Path(settings.registry_password_file).read_text().splitlines()
            except OSError as exc:
                raise RegistryError(
                    f"RUNNER_REGISTRY_PASSWORD_FILE cannot be read ({exc.strerror})"
                ) from None
            password = lines[0].strip() if lines else ""
        return cls(settings.registry.rstrip("/"), settings.registry_user, password)

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def path(self) -> str:
        """The repository path under the host (``/PATH/``-prefixed names), or ``""``."""
        _, _, path = self.address.partition("/")
        return f"{path}/" if path else ""

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if self.host.count(":") == 1 else self.host

    @property
    def scheme(self) -> str:
        """Plain HTTP where the engine speaks it (its insecure registries, :meth:`as_engine`
        finds out), else on loopback (which the engine takes as insecure by default, as
        ensure_registry starts it); HTTPS anywhere else."""
        if self.insecure is not None:
            return "http" if self.insecure else "https"
        if self.hostname == "localhost":
            return "http"
        try:
            return (
                "http" if ipaddress.ip_address(self.hostname.strip("[]")).is_loopback else "https"
            )
        except ValueError:
            return "https"

    def as_engine(self, info: dict[str, Any]) -> Registry:
        """This registry spoken to as the engine (``docker info``) does: plain HTTP when it is
        one of its insecure registries (by name or address range), else HTTPS."""
        config = info.get("RegistryConfig") or {}
        named = (config.get("IndexConfigs") or {}).get(self.host)
        if named is not None:
            return dataclasses.replace(self, insecure=not named.get("Secure", True))
        try:
            address = ipaddress.ip_address(self.hostname.strip("[]"))
        except ValueError:
            return dataclasses.replace(self, insecure=False)
        ranges = config.get("InsecureRegistryCIDRs") or []
        insecure = any(address in ipaddress.ip_network(cidr, strict=False) for cidr in ranges)
        return dataclasses.replace(self, insecure=insecure)

    def remote(self, name: str, tag: str) -> str:
        return f"{self.address}/{name}:{tag}"

    def auth_config(self) -> dict[str, str] | None:
        if not self.user:
            return None
        return {"username": self.user, "password": self.password}

    # --- the registry's HTTP API (distribution v2) -------------------------------------------

    def _request(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        url = f"{self.scheme}://{self.host}/v2/{path}"
        request = urllib.request.Request(url, method=method, headers={"Accept": MANIFESTS})
        if self.user:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                return answer.status, dict(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), b""
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"it is unreachable ({reason})") from None

    def digest(self, name: str, reference: str) -> str | None:
        """The manifest digest ``name:reference`` names in the registry, or None."""
        status, headers, _ = self._request("HEAD", f"{self.path}{name}/manifests/{reference}")
        self._refuse_auth(status)
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"it answered {status} for {name}:{reference}")
        found = {k.lower(): v for k, v in headers.items()}.get("docker-content-digest")
        if not found:
            raise RegistryError(f"it gave no digest for {name}:{reference}")
        return found

    def tags(self, name: str) -> list[str]:
        status, _, body = self._request("GET", f"{self.path}{name}/tags/list")
        self._refuse_auth(status)
        if status == 404:
            return []
        if status != 200:
            raise RegistryError(f"it answered {status} listing {name}")
        return list(json.loads(body or b"{}").get("tags") or [])

    def content_tag(self, name: str) -> tuple[str, str]:
        """The content tag ``name:latest`` is in the registry, and its digest."""
        latest = self.digest(name, LATEST)
        if latest is None:
            raise RegistryError(f"{name} is not there (push it: scripts/build-images --push)")
        for tag in sorted(self.tags(name)):
            if tag != LATEST and not tag.startswith("dev-") and self.digest(name, tag) == latest:
                return tag, latest
        raise RegistryError(
            f"{name}:{LATEST} there has no content tag (push it: scripts/build-images --push)"
        )

    def _refuse_auth(self, status: int) -> None:
        if status in (401, 403):
            given = (
                f"as {self.user!r}"
                if self.user
                else "without credentials (set RUNNER_REGISTRY_USER and _PASSWORD_FILE)"
            )
            raise RegistryError(f"it refused access {given} ({status})")


@dataclass(frozen=True)
class Pulled:
    key: str
    ref: str  # the local name it was tagged with, PREFIX-KEY:<content tag>
    remote: str
    seconds: float


def fetch_missing(
    client: Any, settings: Settings, keys: Iterable[str], registry: Registry | None
) -> list[Pulled]:
    """Pull from ``registry`` every image of ``keys`` this engine lacks (``PREFIX-KEY:latest``),
    verify and tag each; raise :class:`RegistryError` naming the image and the registry on the
    first one that cannot be had. Images present are left alone (no registry is asked)."""
    import docker.errors

    pulled: list[Pulled] = []
    for key in keys:
        name = image_name(settings.image_prefix, key)
        try:
            client.images.get(f"{name}:{LATEST}")
            continue
        except docker.errors.ImageNotFound:
            pass
        if registry is None:
            raise RegistryError(
                f"sandbox image {name}:{LATEST} is missing and no registry is set: build it with "
                "scripts/build-images, or set RUNNER_REGISTRY to pull it"
            )
        started = time.monotonic()
        try:
            tag, image = _pull(client, registry, name)
        except RegistryError as exc:
            raise RegistryError(
                f"sandbox image {name}:{LATEST} is missing here and cannot be pulled from "
                f"registry {registry.address}: {exc}"
            ) from None
        remote = registry.remote(name, tag)
        image.tag(name, tag)
        image.tag(name, LATEST)
        with contextlib.suppress(Exception):
            client.images.remove(remote)  # only the registry's name; the image stays
        seconds = time.monotonic() - started
        log.info("image.pulled", image=f"{name}:{tag}", registry=registry.address, seconds=seconds)
        pulled.append(Pulled(key, f"{name}:{tag}", remote, seconds))
    return pulled


def _pull(client: Any, registry: Registry, name: str) -> tuple[str, Any]:
    """Pull ``name`` by the content tag ``latest`` is in ``registry``; check the digest."""
    import docker.errors

    tag, digest = registry.content_tag(name)
    remote = registry.remote(name, tag)
    log.info("image.pull", image=remote)
    try:
        image = client.images.pull(
            f"{registry.address}/{name}", tag=tag, auth_config=registry.auth_config()
        )
    except docker.errors.APIError as exc:
        raise RegistryError(f"pulling {remote} failed: {exc.explanation or exc}") from None
    digests = image.attrs.get("RepoDigests") or []
    if f"{registry.address}/{name}@{digest}" not in digests:
        raise RegistryError(
            f"{remote} is not the manifest its content tag names there ({digest}; pulled "
            f"{', '.join(digests) or 'none'})"
        )
    return tag, image


def push(cli: DockerCli, registry: Registry, refs: Iterable[str]) -> list[str]:
    """Push each local ``PREFIX-KEY:<content tag>`` to ``registry`` under its content tag and
    as ``latest``; return the references pushed. The local registry names are untagged after."""
    pushed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="runner-docker-config-") as config:
        env = {"DOCKER_CONFIG": config}
        if registry.user:
            _login(cli, registry, env)
        for ref in refs:
            name, _, tag = ref.rpartition(":")
            for remote in (registry.remote(name, tag), registry.remote(name, LATEST)):
                cli.run("tag", ref, remote)
                try:
                    cli.run("push", "--quiet", remote, DOCKER_CONFIG=config)
                    pushed.append(remote)
                finally:
                    with contextlib.suppress(ImageError):
                        cli.run("rmi", remote)
    return pushed


def _login(cli: DockerCli, registry: Registry, env: dict[str, str]) -> None:
    result = subprocess.run(
        [cli.path, "login", "--username", registry.user, "--password-stdin", registry.host],
        input=registry.password.encode(),
        capture_output=True,
        env={**os.environ, **env},
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip()[-300:]
        raise RegistryError(f"registry {registry.address} refused {registry.user!r}: {reason}")
