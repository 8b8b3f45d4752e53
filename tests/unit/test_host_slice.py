"""RUNNER_HOST_SLICE and RUNNER_HOST_CPUS: what is refused (quoting the setting), what the
sandboxes are given, without a cgroup or an engine. tests/fleet/test_host_slice.py confines a
real worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import SettingsError
from worker.sandbox.container import MEMORY_PARENT, SandboxSpec, hardening
from worker.sandbox.slice import HostSlice, hierarchies, sandbox_cpus
from worker.settings import Settings


def test_no_slice_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.host_slice == ""
    assert settings.host_cpus == 0.0


def test_a_slice_and_its_cpus_are_read() -> None:
    settings = Settings.from_env({"RUNNER_HOST_SLICE": "host-a", "RUNNER_HOST_CPUS": "0.4"})
    assert (settings.host_slice, settings.host_cpus) == ("host-a", 0.4)
    # a slice without a quota: confined for accounting only
    assert Settings.from_env({"RUNNER_HOST_SLICE": "b.2_x"}).host_cpus == 0.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RUNNER_HOST_SLICE": "../etc"}, "RUNNER_HOST_SLICE='../etc' is not a slice name"),
        ({"RUNNER_HOST_SLICE": "a/b"}, "RUNNER_HOST_SLICE='a/b' is not a slice name"),
        ({"RUNNER_HOST_SLICE": "-a"}, "RUNNER_HOST_SLICE='-a' is not a slice name"),
        ({"RUNNER_HOST_SLICE": "a" * 65}, "RUNNER_HOST_SLICE='a{65}' is not a slice name"),
        (
            {"RUNNER_HOST_SLICE": "h", "RUNNER_HOST_CPUS": "x"},
            "RUNNER_HOST_CPUS='x' is not a number",
        ),
        (
            {"RUNNER_HOST_SLICE": "h", "RUNNER_HOST_CPUS": "nan"},
            "RUNNER_HOST_CPUS='nan' is not a finite number",
        ),
        (
            {"RUNNER_HOST_SLICE": "h", "RUNNER_HOST_CPUS": "inf"},
            "RUNNER_HOST_CPUS='inf' is not a finite number",
        ),
        (
            {"RUNNER_HOST_SLICE": "h", "RUNNER_HOST_CPUS": "-1"},
            "RUNNER_HOST_CPUS='-1' must be at least 0",
        ),
        (
            {"RUNNER_HOST_SLICE": "h", "RUNNER_HOST_CPUS": "2000"},
            "RUNNER_HOST_CPUS='2000' must be at most 1024",
        ),
        (
            {"RUNNER_HOST_SLICE": "h", "RUNNER_HOST_CPUS": "0.001"},
            r"RUNNER_HOST_CPUS=0\.001 must be 0 \(no quota\) or from 0\.01 to 1024",
        ),
        ({"RUNNER_HOST_CPUS": "0.4"}, r"RUNNER_HOST_CPUS=0\.4 needs RUNNER_HOST_SLICE"),
        ({"RUNNER_HOST_SLISE": "h"}, "did you mean RUNNER_HOST_SLICE"),
        ({"RUNNER_HOST_CPU": "0.4"}, "did you mean RUNNER_HOST_CPUS"),
    ],
)
def test_bad_values_are_refused_quoting_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_sandboxes_get_the_slice_as_cgroup_parent_and_at_most_its_quota() -> None:
    host = HostSlice("host-a", 0.4)
    spec = SandboxSpec(image="x", owner="o", cgroup_parent=host.cgroup_parent)
    assert hardening(spec)["cgroup_parent"] == "/runner-host-host-a"
    delegated = SandboxSpec(
        image="x", owner="o", cgroup_parent=host.cgroup_parent, memory_cgroup="/m/runner-host-h"
    )
    assert hardening(delegated)["binds"] == ["/m/runner-host-h:/run/runner/memory:rw"]
    # without a slice, as before: the delegated memory parent, or the engine's own
    assert hardening(SandboxSpec(image="x", owner="o", memory_cgroup="/m"))["cgroup_parent"] == (
        f"/{MEMORY_PARENT}"
    )
    assert "cgroup_parent" not in hardening(SandboxSpec(image="x", owner="o"))
    # cgroup v1 refuses a child a quota above its parent's
    assert sandbox_cpus(host, 1.0) == 0.4
    assert sandbox_cpus(HostSlice("h", 2.0), 1.0) == 1.0
    assert sandbox_cpus(HostSlice("h"), 1.0) == 1.0
    assert sandbox_cpus(None, 1.0) == 1.0


def test_cpu_and_cpuacct_are_found_mounted_apart_or_together(tmp_path: Path) -> None:
    apart = tmp_path / "apart"
    apart.write_text(
        "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
        "cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n"
        "cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0\n"
    )
    assert hierarchies(apart) == {
        "cpu": Path("/sys/fs/cgroup/cpu"),
        "cpuacct": Path("/sys/fs/cgroup/cpuacct"),
    }
    together = tmp_path / "together"
    together.write_text("cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n")
    assert set(hierarchies(together).values()) == {Path("/sys/fs/cgroup/cpu,cpuacct")}
    v2 = tmp_path / "v2"
    v2.write_text("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n")
    assert hierarchies(v2) == {}


def test_a_slices_quota_caps_the_default_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import app

    monkeypatch.setattr(app, "available_cpus", lambda: 8.0)
    sliced = {"RUNNER_HOST_SLICE": "h"}
    assert app.concurrency_of(Settings.from_env({**sliced, "RUNNER_HOST_CPUS": "0.4"})) == 2
    assert app.concurrency_of(Settings.from_env({**sliced, "RUNNER_HOST_CPUS": "3"})) == 6
    assert app.concurrency_of(Settings.from_env(sliced)) == 16  # no quota: the host's
    assert app.concurrency_of(Settings.from_env({**sliced, "RUNNER_CONCURRENCY": "1"})) == 1
