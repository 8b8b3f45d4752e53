"""A language whose self-test fails, with a real worker: the worker starts all the same, says
which language and why (its log, ``runner status``, ``runner ping``, the fleet's
announcements), and that language's submissions are refused with ``RJ language_unavailable``
on every path, never judged, while the other languages are judged as ever."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import TEST_ENV
from tests.fleet.conftest import RUNNER
from tests.sandbox.test_verdicts import BROKEN, HOG, SPIN, UNCAUGHT
from worker.client import Client
from worker.images.catalog import image_ref
from worker.keyspace import languages_key
from worker.languages import LANGUAGES
from worker.settings import Settings

pytestmark = [pytest.mark.docker, pytest.mark.redis]

# Loaded by the worker's interpreter as it starts (PYTHONPATH): its registry's JavaScript runs a
# runtime that is not there, as a broken image or a bad registry entry would.
BREAK_JAVASCRIPT = """
import dataclasses
from worker.languages import LANGUAGES

LANGUAGES["javascript"] = dataclasses.replace(
    LANGUAGES["javascript"], run=("/usr/bin/node-missing", "{entry}")
)
"""
JS = {"language": "js", "source": "console.log(41 + 1)", "tests": [{"expected_stdout": "42"}]}
PY = {"language": "python", "source": "print(41 + 1)", "tests": [{"expected_stdout": "42"}]}


def runner(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNNER), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_a_language_whose_self_test_fails_is_refused_and_the_others_judged(
    workers: Any, tmp_path: Path
) -> None:
    (tmp_path / "sitecustomize.py").write_text(BREAK_JAVASCRIPT)
    worker = workers("broken-js", PYTHONPATH=str(tmp_path))
    (unhealthy,) = worker.events("language.unhealthy")
    assert unhealthy["language"] == "javascript"
    assert "node-missing" in str(unhealthy["reason"])

    client = Client()
    refused = client.submit(JS).result(timeout=60)
    assert refused.verdict == "RJ" and refused.error is not None
    assert refused.error.code == "language_unavailable"
    assert refused.error.message.startswith(
        "language: 'javascript' cannot be judged now: javascript failed its self-test on every "
        f"worker that runs it ({worker.name}: its self-test ended "
    )
    assert client.submit(PY).result(timeout=60).verdict == "AC"
    # the one task a foreign backend sends: refused on the worker, by the same announcements
    sent = client.send(JS).result(timeout=60)
    assert sent.verdict == "RJ" and sent.error and sent.error.code == "language_unavailable"

    # a producer that knew nothing (no announcement: one that lapsed, a fleet starting) sends
    # it; the worker's compile step refuses it, as it would never judge it
    backend = redis.Redis.from_url(TEST_ENV["RUNNER_RESULT_BACKEND"])
    backend.hdel(languages_key(TEST_ENV["RUNNER_QUEUE"]), worker.name)
    late = Client().submit(JS).result(timeout=60)
    assert late.verdict == "RJ" and late.error and late.error.code == "language_unavailable"
    assert f"(worker {worker.name})" in late.error.message

    status = runner("status")
    assert status.returncode == 0, status.stderr
    assert "unhealthy: javascript: its self-test ended " in status.stdout, status.stdout
    pinged = runner("ping", "--self", RUNNER_NODE_NAME=worker.name)
    assert pinged.returncode == 0, pinged.stderr
    assert pinged.stdout.startswith(f"{worker.name}: ok; unhealthy: javascript (its self-test")


def test_a_worker_runs_only_the_languages_its_deployment_chose(workers: Any) -> None:
    """RUNNER_LANGUAGES=python: one pool, one self-test; C, which no worker runs, is refused
    saying so, and Python is judged."""
    worker = workers("python-only", RUNNER_LANGUAGES="python")
    status = runner("status")
    assert status.returncode == 0, status.stderr
    images = {word.split("=", 1)[1] for word in status.stdout.split() if word.startswith("image=")}
    assert images == {image_ref(Settings.from_env().image_prefix, "python")}, status.stdout
    assert "  languages: python\n" in status.stdout, status.stdout
    client = Client()
    refused = client.submit({**PY, "language": "c", "source": "int main(){}"}).result(timeout=60)
    assert refused.error is not None and refused.error.code == "language_unavailable"
    assert "no worker of the fleet runs c (RUNNER_LANGUAGES)" in refused.error.message
    assert client.submit(PY).result(timeout=60).verdict == "AC"
    assert worker.events("language.unhealthy") == []


def test_every_language_is_judged_through_runner_submit(workers: Any) -> None:
    """The one task a foreign backend sends, in every language: its self-test (an echo)
    accepted on one test and wrong on another, a syntax error CE where it compiles or is
    checked, and RE, TLE and MLE for an uncaught error, a busy loop and a memory hog."""
    workers("every-language", RUNNER_LANGUAGES="")
    client = Client()
    sent = {
        name: client.send(
            {
                "language": name,
                "source": language.selftest,
                "tests": [
                    {"stdin": "1 2\n", "expected_stdout": "1 2\n"},
                    {"stdin": "3\n", "expected_stdout": "4\n"},
                ],
            }
        )
        for name, language in LANGUAGES.items()
    }
    for name, handle in sent.items():
        result = handle.result(timeout=120)
        assert [t.verdict for t in result.tests] == ["AC", "WA"], (name, result)
    broken = {name: client.send({**PY, "language": name, "source": BROKEN[name]}) for name in sent}
    for name, handle in broken.items():
        assert handle.result(timeout=120).verdict == "CE", name
    # the program's own failures, as the worker judges them (its runtime's start measured and
    # never charged): an uncaught error, a busy loop, a memory hog
    limits = {"cpu_time_ms": 1000, "wall_time_ms": 5000, "memory_mb": 128}  # the most allowed
    failing = {
        (name, verdict): client.send(
            {**PY, "language": name, "source": programs[name], "limits": limits}
        )
        for name in LANGUAGES
        for verdict, programs in (("RE", UNCAUGHT), ("TLE", SPIN), ("MLE", HOG))
    }
    for (name, verdict), handle in failing.items():
        result = handle.result(timeout=180)
        assert result.verdict == verdict, (name, verdict, result)
        if verdict == "TLE":
            assert result.tests[0].cpu_time_ms >= 1000, (name, result)
