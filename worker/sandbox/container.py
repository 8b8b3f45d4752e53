"""One hardened sandbox container and the supervisor session attached to it.

Every sandbox is created with the same hardening (see :func:`hardening`): no network, read-only
root, size-limited tmpfs work area, all capabilities dropped but the four the supervisor needs
(:data:`CAPABILITIES`), no-new-privileges, the project's seccomp profile
(:mod:`worker.sandbox.seccomp`: Docker's default in spirit, plus what the supervisor needs to
give each job namespaces of its own), pids, memory (= memory+swap) and CPU limits,
ulimits, an init that reaps zombies, an empty environment, no container log, never
privileged, no Docker socket. The supervisor starts as the container's root and drops it at
once for a uid of the sandbox's own (:data:`SUPERVISOR_UIDS`, never a job's), keeping the four
capabilities; it gives each job its own unprivileged uid and namespaces; the job never runs as
root and holds no capability. Sandboxes that give jobs cells of their own have Docker's masks
on /proc lifted (``systempaths=unconfined``): the kernel lets a cell mount a /proc of its own
PID namespace only where no part of the container's /proc is hidden, and each cell masks the
same paths in its own /proc (images/supervisor/cell.c). Only Docker's init is root there, and a
/proc file of the host's is written by root alone.

Where the engine runs cgroup v1 with its cgroupfs driver, sandboxes are made in one memory
cgroup of their own (:data:`MEMORY_PARENT`) that is bound into each (:func:`memory_cgroup`): a
sandbox's supervisor opens its own cgroup's high-water mark there while it is still root, so
that the kernel keeps the exact memory peak of every job (images/supervisor/ledger.c). Jobs
never see the directory (their cells hide it), and the files are root's: the supervisor, once
it has dropped root, writes only the one it opened.

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
import random
import socket
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions
import structlog

from worker.errors import (
    IsolationUnavailable,
    ProtocolError,
    SandboxError,
    SandboxLost,
    SandboxTimeout,
)
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
# The supervisor's uid in each sandbox: drawn from a range no job's uid comes from (jobs' start
# at Settings.job_uid_base, below it), one per sandbox, so that the per-user budgets of the host
# that the jobs of a sandbox count against are that sandbox's alone (images/supervisor/cell.c).
SUPERVISOR_UIDS = range((1 << 31) - (1 << 29), 1 << 31)
# The memory cgroup sandboxes are made in where the engine lets their supervisors keep each
# job's exact peak (memory_cgroup), and where the supervisor finds it (images/supervisor/ledger.c)
MEMORY_PARENT = "runner-sandboxes"
MEMORY_MOUNT = "/run/runner/memory"
# hardening()'s arguments that configure the container itself; the rest are the host's
CONTAINER_KEYS = (
    "entrypoint", "command", "user", "stdin_open", "tty", "environment", "hostname",
    "healthcheck", "labels",
)  # fmt: skip
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
    # the host directory of the sandboxes' memory cgroup parent when the engine allows it
    # (memory_cgroup), else ""
    memory_cgroup: str = ""
    # the cgroup parent: a host slice's (worker.sandbox.slice), else MEMORY_PARENT where the
    # memory cgroup is delegated, else the engine's own
    cgroup_parent: str = ""

    @property
    def exact_peak(self) -> bool:
        """Whether its supervisor keeps the kernel's high-water mark of each job: where the
        engine allows it, and only for sandboxes whose jobs get cells (a cell hides the
        directory the sandbox's cgroup is bound at)."""
        return bool(self.memory_cgroup) and self.isolation == "namespaces"


def hardening(spec: SandboxSpec, supervisor_uid: int = SUPERVISOR_UIDS.start) -> dict[str, Any]:
    """docker SDK arguments that confine a sandbox (:data:`CONTAINER_KEYS` the container's,
    the others its host configuration's), its supervisor running as ``supervisor_uid``."""
    # The work area counts towards the memory cgroup (tmpfs pages are memory), so the ceiling
    # is the job's memory plus the work area plus a little for the supervisor and init.
    memory = f"{spec.memory_mb + spec.box_mb + 32}m"
    box_bytes = spec.box_mb * 1024 * 1024
    params: dict[str, Any] = {
        "entrypoint": [SUPERVISOR],
        "command": ["--uid", str(supervisor_uid)],
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
    if spec.cgroup_parent or spec.exact_peak:
        params["cgroup_parent"] = f"/{spec.cgroup_parent or MEMORY_PARENT}"
    if spec.exact_peak:
        params["binds"] = [f"{spec.memory_cgroup}:{MEMORY_MOUNT}:rw"]
    return params


def memory_cgroup(client: docker.DockerClient, parent: str = MEMORY_PARENT) -> str:
    """The host directory of the memory cgroup sandboxes are made in (``parent``: a host
    slice's, or MEMORY_PARENT), where the engine lets their supervisors keep each job's exact
    peak: cgroup v1 with the cgroupfs driver, whose memory hierarchy is at
    /sys/fs/cgroup/memory (the engine makes the directory, a cgroup, the first time it binds
    it). "" elsewhere: the supervisor then samples the peak."""
    try:
        info = client.info()
    except ENGINE_ERRORS as exc:
        raise SandboxError(f"the Docker engine is not reachable: {exc}") from exc
    if str(info.get("CgroupVersion")) == "1" and info.get("CgroupDriver") == "cgroupfs":
        return f"/sys/fs/cgroup/memory/{parent}"
    return ""


def system_paths(spec: SandboxSpec) -> dict[str, list[str]]:
    """Host configuration the SDK has no argument for: no path of /proc masked or made
    read-only by Docker where jobs get cells (each cell masks them in a /proc of its own; see
    the module docstring); Docker's defaults where they do not."""
    return {"MaskedPaths": [], "ReadonlyPaths": []} if spec.isolation == "namespaces" else {}


class Sandbox:
    """A started sandbox container with the supervisor's stdin/stdout attached."""

    def __init__(self, client: docker.DockerClient, spec: SandboxSpec) -> None:
        self.spec = spec
        self.jobs = 0
        # the uid of the job a runtime is parked for in it (after its last job), or 0
        self.parked_uid = 0
        self.broken = ""
        self._client = client
        self._decoder = Decoder()
        self._frames = bytearray()
        self._stderr = bytearray()
        self.id = ""
        params = hardening(spec, random.choice(SUPERVISOR_UIDS))
        try:
            host = client.api.create_host_config(
                **{key: value for key, value in params.items() if key not in CONTAINER_KEYS}
            )
            host.update(system_paths(spec))
            container = {key: params[key] for key in CONTAINER_KEYS}
            self.id = client.api.create_container(spec.image, host_config=host, **container)["Id"]
            raw = client.api.attach_socket(
                self.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self._raw = raw  # the SocketIO holds a reference on the socket's fd too
            self._sock: socket.socket = raw._sock
            client.api.start(self.id)
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
        if pong.accounting != "cgroup":
            raise SandboxError(
                f"{self.spec.image} cannot measure jobs here: {pong.accounting or 'no answer'}"
            )
        if self.spec.exact_peak and pong.peak != "exact":
            raise SandboxError(
                f"{self.spec.image} cannot keep its jobs' memory peak: its memory cgroup "
                f"({self.spec.memory_cgroup}) is not where the engine was to bind it"
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
                    raise SandboxLost(f"supervisor exited: {self.supervisor_stderr()!r}")
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
            raise SandboxLost(f"sandbox {self.short_id} connection failed: {exc}") from exc
        except SandboxError as exc:
            self.broken = str(exc)
            raise

    def alive(self) -> bool:
        """Whether the supervisor's connection is still open, without waiting: an idle
        sandbox whose container died (an engine restart kills them all) reads end of file."""
        try:
            self._sock.settimeout(0.0)  # each exchange sets its own timeout again
            return bool(self._sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            return True  # open, nothing to read: an idle supervisor
        except (OSError, AttributeError):  # reset, closed, or never attached
            return False

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
        if not getattr(self, "id", ""):
            return
        try:
            self._client.api.remove_container(self.id, force=True)
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
