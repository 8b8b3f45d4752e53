"""One hardened sandbox container and the supervisor session attached to it.

Every sandbox is created with the same hardening (see :func:`hardening`): no network, read-only
root, size-limited tmpfs work area, all capabilities dropped but the four the supervisor needs
(:data:`CAPABILITIES`), no-new-privileges, the project's seccomp profile
(:mod:`worker.sandbox.seccomp`: Docker's default in spirit, plus what the supervisor needs to
give each job namespaces of its own), pids, memory (= memory+swap) and CPU limits,
ulimits, an init that reaps zombies, an empty environment, no container log, never
privileged, no Docker socket. The supervisor runs as the container's root so it can give each
job its own unprivileged uid and namespaces; the job never runs as root and holds no
capability.

Every sandbox is labelled with its owner and its fleet (the broker its worker serves), and the
engine removes it as soon as it exits (``AutoRemove``): the supervisor exits when its stdin
closes, which is what happens when the worker holding the attach connection dies, so a killed
worker's sandboxes go away by themselves once their current job ends.

The Docker image HEALTHCHECK is switched off here on purpose: Docker runs it with ``exec``,
and exec into a container untrusted code can write to is how CVE-2019-5736 style escapes
start. The pool's own readiness and health probe (a ``ping`` over the attached stdin)
replaces it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions
import structlog

from worker.errors import IsolationUnavailable, ProtocolError, SandboxError, SandboxTimeout
from worker.sandbox.protocol import (
    SUPERVISOR_VERSION,
    Decoder,
    Job,
    RunReport,
    demux,
    encode_job,
    encode_ping,
    parse_pong,
    parse_report,
)
from worker.sandbox.seccomp import profile_json

SUPERVISOR = "/opt/runner/supervisor"
LABEL_SANDBOX = "io.runner.sandbox"
LABEL_OWNER = "io.runner.owner"
LABEL_FLEET = "io.runner.fleet"
LABEL_IMAGE = "io.runner.image"
# What the supervisor (never a job) does with each: SETUID and SETGID switch a job to its uid
# and map that uid into the job's user namespace; KILL signals a job's processes (another
# uid); CHOWN gives a job its work dir and files.
CAPABILITIES = ("SETUID", "SETGID", "KILL", "CHOWN")
# What a call into the engine can raise: the SDK's own errors, and the transport's when the
# engine is down or restarting (the SDK lets requests' and the socket's errors through).
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
STDOUT, STDERR = 1, 2

log = structlog.get_logger()


@dataclass(frozen=True)
class SandboxSpec:
    """How sandboxes of one image are made. Sizes are the ceilings for any one job."""

    image: str
    owner: str
    fleet: str = ""
    memory_mb: int = 512
    box_mb: int = 256
    pids: int = 128
    cpus: float = 1.0
    nofile: int = 256
    runtime: str = ""
    isolation: str = "namespaces"  # see Settings.isolation
    extra_labels: tuple[tuple[str, str], ...] = ()


def hardening(spec: SandboxSpec) -> dict[str, Any]:
    """docker SDK ``containers.create`` arguments that confine a sandbox."""
    # The work area counts towards the memory cgroup (tmpfs pages are memory), so the ceiling
    # is the job's memory plus the work area plus a little for the supervisor and init.
    memory = f"{spec.memory_mb + spec.box_mb + 32}m"
    box_bytes = spec.box_mb * 1024 * 1024
    params: dict[str, Any] = {
        "entrypoint": [SUPERVISOR],
        "command": [],
        "user": "0:0",
        "stdin_open": True,
        "tty": False,
        "environment": {},
        "hostname": "sandbox",
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/box": f"rw,exec,nosuid,nodev,size={spec.box_mb}m,mode=711"},
        "shm_size": "16m",
        "ipc_mode": "private",
        "cap_drop": ["ALL"],
        "cap_add": list(CAPABILITIES),
        "security_opt": ["no-new-privileges:true", f"seccomp={profile_json()}"],
        "privileged": False,
        "pids_limit": spec.pids,
        "mem_limit": memory,
        "memswap_limit": memory,
        "mem_swappiness": 0,
        "nano_cpus": int(spec.cpus * 1e9),
        "ulimits": [
            docker.types.Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile),
            docker.types.Ulimit(name="fsize", soft=box_bytes, hard=box_bytes),
            docker.types.Ulimit(name="core", soft=0, hard=0),
        ],
        "init": True,
        "auto_remove": True,  # gone once the supervisor exits, even if no worker is left
        "log_config": docker.types.LogConfig(type="none"),
        "healthcheck": {"test": ["NONE"]},
        "labels": {
            LABEL_SANDBOX: "1",
            LABEL_OWNER: spec.owner,
            LABEL_FLEET: spec.fleet,
            LABEL_IMAGE: spec.image,
            **dict(spec.extra_labels),
        },
    }
    if spec.runtime:
        params["runtime"] = spec.runtime
    return params


class Sandbox:
    """A started sandbox container with the supervisor's stdin/stdout attached."""

    def __init__(self, client: docker.DockerClient, spec: SandboxSpec) -> None:
        self.spec = spec
        self.jobs = 0
        self.broken = ""
        self._client = client
        self._decoder = Decoder()
        self._frames = bytearray()
        self._stderr = bytearray()
        try:
            self._container = client.containers.create(spec.image, **hardening(spec))
            self.id: str = self._container.id or ""
            raw = client.api.attach_socket(
                self.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self._raw = raw  # the SocketIO holds a reference on the socket's fd too
            self._sock: socket.socket = raw._sock
            self._container.start()
        except ENGINE_ERRORS as exc:
            self.remove()
            raise SandboxError(f"cannot start sandbox from {spec.image}: {exc}") from exc
        except Exception:
            self.remove()
            raise

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def ping(self, timeout: float = 5.0) -> None:
        """Readiness and health probe: the supervisor answers with the expected version, and
        can isolate jobs as the spec asks; a sandbox that cannot is unfit, never run weaker."""
        pong = parse_pong(self._exchange(encode_ping(), timeout))
        if pong.version != SUPERVISOR_VERSION:
            raise ProtocolError(
                f"supervisor version {pong.version!r}, expected {SUPERVISOR_VERSION!r}"
            )
        if self.spec.isolation == "namespaces" and pong.isolation != "namespaces":
            raise IsolationUnavailable(
                f"jobs cannot get namespaces of their own in {self.spec.image} here "
                f"({pong.isolation_error or 'refused'}); RUNNER_ISOLATION=uid runs them with a "
                "fresh uid and a cleanup only"
            )

    def run(self, job: Job, timeout: float) -> RunReport:
        """Run one job (with its partner, if it has one); ``timeout`` is the outer deadline in
        seconds for the whole exchange. A job the supervisor would refuse raises ValueError
        (:func:`~worker.sandbox.protocol.check_job`) and leaves the sandbox as it was."""
        request = encode_job(job)
        self.jobs += 1
        report = parse_report(self._exchange(request, timeout))
        if report.cleanup != "ok":
            self.broken = f"cleanup: {report.cleanup}"
        return report

    def _exchange(self, request: bytes, timeout: float) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(request)
            while True:
                message = self._decoder.message()
                if message is not None:
                    return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError()
                self._sock.settimeout(left)
                data = self._sock.recv(1 << 20)
                if not data:
                    raise SandboxError(f"supervisor exited: {self.supervisor_stderr()!r}")
                for stream, payload in demux(data, self._frames):
                    if stream == STDOUT:
                        self._decoder.feed(payload)
                    elif stream == STDERR:
                        self._stderr += payload[-4096:]
        except TimeoutError as exc:
            self.broken = "no answer before the deadline"
            raise SandboxTimeout(
                f"sandbox {self.short_id} did not answer in {timeout:.1f}s"
            ) from exc
        except OSError as exc:
            self.broken = f"socket: {exc}"
            raise SandboxError(f"sandbox {self.short_id} connection failed: {exc}") from exc
        except SandboxError as exc:
            self.broken = str(exc)
            raise

    def supervisor_stderr(self) -> str:
        return self._stderr[-2000:].decode(errors="replace")

    def remove(self) -> None:
        """Kill and remove the container; safe to call twice or on a half-made sandbox."""
        raw = getattr(self, "_raw", None)
        if raw is not None:
            # a socket's fd is released only once every file object made from it is closed
            with contextlib.suppress(OSError):
                raw.close()
                self._sock.close()
            self._raw = None
        container = getattr(self, "_container", None)
        if container is None:
            return
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                log.warning("sandbox.remove_failed", container=self.short_id, error=str(exc))
            else:  # a removal is under way (the engine's own, once the supervisor exited)
                self._await_gone()
        except ENGINE_ERRORS as exc:
            log.warning("sandbox.remove_failed", container=self.short_id, error=str(exc))

    def _await_gone(self, timeout: float = 10.0) -> None:
        """Wait until the engine has finished removing the container, so that once
        :meth:`remove` returns no listing shows it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._client.api.inspect_container(self.id)
            except docker.errors.NotFound:
                return
            except ENGINE_ERRORS:
                return
            time.sleep(0.05)
