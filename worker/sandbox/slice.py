"""A host's CPU slice (``RUNNER_HOST_SLICE``, ``RUNNER_HOST_CPUS``): one cgroup v1 cpu,cpuacct
cgroup that holds a worker process and every sandbox it starts, under one CFS quota, so that a
worker on a shared machine behaves as a host of that many CPUs would (the scale benchmark's
simulated hosts).

The slice is ``/runner-host-NAME`` in the cpu and cpuacct hierarchies (mounted apart or
together). The worker writes its own process into it (``cgroup.procs`` moves every thread; what
it starts later is born there); its sandboxes get it as their engine's cgroup parent, so the
engine (cgroupfs driver) makes each sandbox's cgroup a child of it in every hierarchy, and the
quota set on it holds the worker and its sandboxes together. The other hierarchies (memory,
pids...) only gain the same path for the sandboxes: the slice limits CPU only.

A host's CPUs are its own: with a quota, the slice also gets the highest CPU weight
(``cpu.shares``, :data:`RESERVED_SHARES`), so whatever else runs on the machine cannot take its
quota from it, and the quota caps it (a slice is a top-level cgroup for this: under a common
parent the parent's weight would be what competes). Without a quota the slice only accounts
(the default weight).

Workers given the same name share the slice (a host of several worker processes). Nobody
removes it while something runs in it: :func:`remove` is for whoever made it for a while (the
benchmark, the tests), once its workers have stopped.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "runner-host-"  # + the slice's name: a top-level cgroup
RESERVED_SHARES = 1 << 18  # cgroup v1's highest cpu.shares; the quota caps what it wins
DEFAULT_SHARES = 1024
PERIOD_US = 100_000
CONTROLLERS = ("cpu", "cpuacct")
MOUNTS = Path("/proc/self/mounts")


def hierarchies(mounts: Path = MOUNTS) -> dict[str, Path]:
    """controller -> the mount point of the cgroup v1 hierarchy it is in, for cpu and cpuacct
    (one path twice where they are mounted together). Missing ones are left out."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for line in mounts.read_text().splitlines():
            fields = line.split()
            if len(fields) < 4 or fields[2] != "cgroup":
                continue
            options = fields[3].split(",")
            for controller in CONTROLLERS:
                if controller in options:
                    found.setdefault(controller, Path(fields[1]))
    return found


@dataclass(frozen=True)
class HostSlice:
    name: str
    cpus: float = 0.0  # 0: no quota

    @property
    def cgroup_parent(self) -> str:
        """The sandboxes' cgroup parent as the engine takes it (cgroupfs driver)."""
        return f"{PREFIX}{self.name}"

    def directory(self, controller: str) -> Path:
        mounted = hierarchies()
        if controller not in mounted:
            raise OSError(f"no cgroup v1 {controller} hierarchy is mounted (cgroup v2?)")
        return mounted[controller] / self.cgroup_parent

    def create(self) -> None:
        """Make the slice (if it is not there) and set its quota: ``cpus`` CPUs per period, or
        none. Raises OSError with the path when the cgroups cannot be made or written (cgroup
        v1 also refuses a quota below one of a child's, a sandbox still running from before:
        sandboxes are given at most the slice's quota, :func:`sandbox_cpus`)."""
        for controller in CONTROLLERS:
            self.directory(controller).mkdir(parents=True, exist_ok=True)
        cpu = self.directory("cpu")
        quota = round(self.cpus * PERIOD_US) if self.cpus else -1
        _write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
        _write(cpu / "cpu.cfs_quota_us", str(quota))
        _write(cpu / "cpu.shares", str(RESERVED_SHARES if self.cpus else DEFAULT_SHARES))

    def enter(self, pid: int = 0) -> None:
        """Move process ``pid`` (0: this one), every thread of it, into the slice."""
        for controller in CONTROLLERS:
            _write(self.directory(controller) / "cgroup.procs", str(pid or os.getpid()))

    def usage_ns(self) -> int:
        """CPU the slice has used (its processes' and its sandboxes'), nanoseconds."""
        return int((self.directory("cpuacct") / "cpuacct.usage").read_text())

    def throttled(self) -> tuple[int, int]:
        """(periods, periods in which the quota ran out) since the slice was made."""
        stat = dict(
            line.split() for line in (self.directory("cpu") / "cpu.stat").read_text().splitlines()
        )
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))

    def quota_cpus(self) -> float:
        """The quota in force, in CPUs (0: none)."""
        cpu = self.directory("cpu")
        quota = int((cpu / "cpu.cfs_quota_us").read_text())
        return 0.0 if quota < 0 else quota / int((cpu / "cpu.cfs_period_us").read_text())

    def pids(self) -> list[int]:
        """The processes in the slice itself (not its sandboxes')."""
        text = (self.directory("cpuacct") / "cgroup.procs").read_text()
        return [int(pid) for pid in text.split()]


def sandbox_cpus(host: HostSlice | None, wanted: float) -> float:
    """A sandbox's CPU limit inside ``host``: cgroup v1 refuses a child a quota above its
    parent's, so at most the slice's."""
    if host is None or not host.cpus:
        return wanted
    return min(wanted, host.cpus)


def remove(host: HostSlice, hierarchy_root: Path | None = None) -> None:
    """Remove the slice from every hierarchy it is in (the engine made it in the others for
    the sandboxes), once nothing runs in it: children first, left alone where they are busy."""
    roots = [hierarchy_root] if hierarchy_root else _every_hierarchy()
    for root in roots:
        top = root / host.cgroup_parent
        if not top.is_dir():
            continue
        for child in [entry for entry in top.iterdir() if entry.is_dir()]:
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _every_hierarchy(mounts: Path = MOUNTS) -> list[Path]:
    found = []
    with contextlib.suppress(OSError):
        for line in mounts.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] in ("cgroup", "cgroup2"):
                found.append(Path(fields[1]))
    return found


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise OSError(f"cannot write {value} to {path}: {exc.strerror or exc}") from exc
