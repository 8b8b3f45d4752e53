"""The registry settings and the parts of a worker's join that need no service: which values
RUNNER_REGISTRY takes, where credentials come from (never printed), how the time to ready is
split. The real registry, push and pull: tests/fleet/test_registry.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import SettingsError
from worker.images.registry import Registry, RegistryError
from worker.pipeline.readiness import ReadyTimer
from worker.settings import Settings


@pytest.mark.parametrize(
    "value", ["127.0.0.1:5000", "localhost:5000", "registry.example:5000/fleet", "reg.example"]
)
def test_registry_takes_what_an_image_name_starts_with(value: str) -> None:
    assert Settings.from_env({"RUNNER_REGISTRY": value}).registry == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("http://127.0.0.1:5000", "has a scheme"),
        ("runner:pw@127.0.0.1:5000", "carries credentials"),
        ("127.0.0.1:5000/a b", "is not HOST"),
        ("reg.example:5000/Fleet", "is not HOST"),
    ],
)
def test_a_bad_registry_is_refused_with_its_name(value: str, why: str) -> None:
    with pytest.raises(SettingsError, match=f"RUNNER_REGISTRY=.*{why}"):
        Settings.from_env({"RUNNER_REGISTRY": value})


def test_credentials_come_from_a_file_or_the_environment_never_both_and_are_never_shown(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\nignored\n")
    settings = Settings.from_env(
        {
            "RUNNER_REGISTRY": "127.0.0.1:5000",
            "RUNNER_REGISTRY_USER": "runner",
            "RUNNER_REGISTRY_PASSWORD_FILE": str(secret),
        }
    )
    registry = Registry.of(settings)
    assert registry is not None and registry.password == "s3cret-from-file"
    assert "s3cret" not in repr(registry) and "s3cret" not in repr(settings)
    env = {"RUNNER_REGISTRY_USER": "runner", "RUNNER_REGISTRY_PASSWORD": "s3cret-env"}
    shown = Settings.from_env(env)
    assert "s3cret-env" not in repr(shown) and shown.shown("registry_password") == "'***'"
    with pytest.raises(SettingsError, match="both set"):
        Settings.from_env({**env, "RUNNER_REGISTRY_PASSWORD_FILE": str(secret)})
    with pytest.raises(SettingsError, match="without RUNNER_REGISTRY_USER"):
        Settings.from_env({"RUNNER_REGISTRY_PASSWORD": "x"})
    missing = Settings.from_env(
        {
            "RUNNER_REGISTRY": "127.0.0.1:5000",
            "RUNNER_REGISTRY_USER": "runner",
            "RUNNER_REGISTRY_PASSWORD_FILE": str(tmp_path / "nope"),
        }
    )
    with pytest.raises(RegistryError, match="RUNNER_REGISTRY_PASSWORD_FILE cannot be read"):
        Registry.of(missing)


def test_no_registry_means_no_pulls() -> None:
    assert Registry.of(Settings.from_env({})) is None


@pytest.mark.parametrize(
    ("address", "scheme", "path"),
    [
        ("127.0.0.1:5000", "http", ""),
        ("localhost:5000", "http", ""),
        ("10.0.0.5:5000", "https", ""),
        ("reg.example:5000/fleet", "https", "fleet/"),
    ],
)
def test_plain_http_on_loopback_only(address: str, scheme: str, path: str) -> None:
    registry = Registry(address)
    assert registry.scheme == scheme and registry.path == path
    assert registry.remote("runner-python", "abc") == f"{address}/runner-python:abc"


def test_time_to_ready_is_split_into_pull_prewarm_and_connect() -> None:
    timer = ReadyTimer(started=100.0)
    timer.pulled_at, timer.prewarmed_at = 102.5, 103.0
    assert timer.figures(connected_at=103.25) == {
        "pull_s": 2.5,
        "prewarm_s": 0.5,
        "connect_s": 0.25,
        "total_s": 3.25,
    }


def test_the_engine_decides_plain_http_by_its_insecure_registries() -> None:
    info = {
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "10.0.0.0/8"],
            "IndexConfigs": {"reg.example:5000": {"Secure": False}},
        }
    }
    assert Registry("10.0.0.5:5000").as_engine(info).scheme == "http"
    assert Registry("192.168.1.5:5000").as_engine(info).scheme == "https"
    assert Registry("reg.example:5000").as_engine(info).scheme == "http"
    assert Registry("other.example:5000").as_engine(info).scheme == "https"
    assert Registry("127.0.0.1:5000").as_engine({}).scheme == "https"  # the engine's say wins
