"""worker/queue/transport.py and worker/queue/backend.py override private internals of one celery
and one kombu release (WRITTEN_FOR): setup.cfg pins exactly those, and a worker started on others
says so (``broker.internals_mismatch``) instead of failing quietly in delivery."""

from __future__ import annotations

import configparser
import importlib.metadata
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from worker.pipeline.runtime import check_internals
from worker.queue import WRITTEN_FOR
from worker.queue.transport import internals_mismatch

SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"


def pins() -> dict[str, str]:
    """The exact pins (``name[extras]==version``) of setup.cfg's install_requires."""
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    found = {}
    for line in config["options"]["install_requires"].splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*(\S+)\s*", line)
        if match:
            found[match[1].lower()] = match[2]
    return found


def installed_as(versions: dict[str, str]) -> Callable[[str], str]:
    """``importlib.metadata.version`` as if ``versions`` were installed."""
    real = importlib.metadata.version

    def version(package: str) -> str:
        return versions.get(package) or real(package)

    return version


def test_installed_releases_are_the_ones_the_overrides_were_written_for() -> None:
    messages = internals_mismatch()
    assert not messages, "\n".join(messages)


def test_setup_cfg_pins_exactly_written_for() -> None:
    pinned = pins()
    assert {package: pinned.get(package) for package in WRITTEN_FOR} == dict(WRITTEN_FOR), (
        "setup.cfg's pins of celery and kombu and WRITTEN_FOR in worker/queue/__init__.py must be "
        "changed together"
    )


def test_a_mismatch_names_the_package_both_releases_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", installed_as({"kombu": "5.8.1"}))
    [message] = internals_mismatch()
    assert "kombu 5.8.1 is installed" in message
    assert f"written for kombu {WRITTEN_FOR['kombu']}" in message
    assert "worker/queue/transport.py" in message and "worker/queue/backend.py" in message
    assert "setup.cfg" in message and "WRITTEN_FOR" in message


def test_a_missing_package_is_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    def version(package: str) -> str:
        raise importlib.metadata.PackageNotFoundError(package)

    monkeypatch.setattr(importlib.metadata, "version", version)
    messages = internals_mismatch()
    assert [m.split(",")[0] for m in messages] == [f"{p} is not installed" for p in WRITTEN_FOR]


def test_the_worker_start_logs_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", installed_as({"celery": "5.8.0"}))
    with capture_logs() as logs:
        messages = check_internals()
    [event] = [e for e in logs if e["event"] == "broker.internals_mismatch"]
    assert event["log_level"] == "warning"
    assert event["messages"] == messages
    assert len(messages) == 1 and "celery 5.8.0 is installed" in messages[0]


def test_the_worker_start_is_quiet_when_they_match() -> None:
    with capture_logs() as logs:
        assert check_internals() == []
    assert not [e for e in logs if e["event"] == "broker.internals_mismatch"]
