"""Backends not written in Python enqueue ``runner.submit`` by name and read its result.

Two producers stand in for them: ``tests/foreign/producer.js`` (Node.js, celery-node) and
``tests/foreign/raw_producer.py`` (a hand-built protocol v2 message pushed with plain Redis
commands, no Celery). Both must get what the Python client gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_ENV
from worker.client import Client
from worker.contract import Verdict

pytestmark = [pytest.mark.docker, pytest.mark.redis]

FOREIGN = Path(__file__).resolve().parents[1] / "foreign"
RAW_PRODUCER = FOREIGN / "raw_producer.py"
TIMEOUT_S = 120

SUBMISSION = {
    "id": "foreign-1",
    "language": "python",
    "source": "a, b = map(int, input().split())\nprint(a + b)\n",
    "tests": [
        {"id": "right", "stdin": "1 2\n", "expected_stdout": "3\n"},
        {"id": "wrong", "stdin": "2 2\n", "expected_stdout": "5\n"},
    ],
}


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Run a producer: the submission result it prints, and its stderr."""
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S + 30, check=False
    )
    assert done.returncode == 0, f"{cmd[:2]} failed:\n{done.stderr}"
    return json.loads(done.stdout), done.stderr


def write(tmp_path: Path, submission: dict[str, Any]) -> Path:
    path = tmp_path / "submission.json"
    path.write_text(json.dumps(submission))
    return path


def node_produce(producer: Path, path: Path) -> dict[str, Any]:
    env = {
        "PATH": os.environ["PATH"],
        "BROKER_URL": TEST_ENV["RUNNER_BROKER_URL"],
        "BACKEND_URL": TEST_ENV["RUNNER_RESULT_BACKEND"],
        "QUEUE": TEST_ENV["RUNNER_QUEUE"],
    }
    return run(["node", str(producer), str(path), str(TIMEOUT_S)], env)[0]


def raw_produce(path: Path, *python_flags: str) -> tuple[dict[str, Any], str]:
    return run(
        [
            sys.executable,
            *python_flags,
            str(RAW_PRODUCER),
            TEST_ENV["RUNNER_BROKER_URL"],
            TEST_ENV["RUNNER_RESULT_BACKEND"],
            TEST_ENV["RUNNER_QUEUE"],
            str(path),
            "--timeout",
            str(TIMEOUT_S),
        ]
    )


@pytest.fixture(scope="module")
def node_producer() -> Path:
    """producer.js with its locked dependencies installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm (Node.js 18 or later) are needed for the celery-node producer")
    if not (FOREIGN / "node_modules" / "celery-node").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FOREIGN, check=True, timeout=300)
    return FOREIGN / "producer.js"


def assert_judged(result: dict[str, Any]) -> None:
    assert result["contract"] == 1
    assert result["submission_id"] == "foreign-1"
    assert [(t["id"], t["verdict"]) for t in result["tests"]] == [("right", "AC"), ("wrong", "WA")]
    assert (result["verdict"], result["passed"], result["total"]) == ("WA", 1, 2)


def test_celery_node_producer_gets_the_submission_result(
    workers, node_producer: Path, tmp_path: Path
) -> None:
    workers("foreign")
    assert_judged(node_produce(node_producer, write(tmp_path, SUBMISSION)))


def test_hand_built_protocol_v2_message_without_celery_gets_the_submission_result(
    workers, tmp_path: Path
) -> None:
    workers("foreign")
    # -X importtime lists every module the producer loaded: it doubles as the recipe for
    # other languages, so a Celery or kombu import would hide a step they must take
    result, stderr = raw_produce(write(tmp_path, SUBMISSION), "-X", "importtime")
    assert_judged(result)
    loaded = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "redis" in loaded
    assert not loaded & {"celery", "kombu", "billiard", "worker"}


def test_hand_built_message_with_unknown_language_is_rejected(workers, tmp_path: Path) -> None:
    workers("foreign")
    result, _ = raw_produce(write(tmp_path, {**SUBMISSION, "language": "cobol"}))
    assert result["verdict"] == "RJ"
    assert result["error"]["code"] == "unknown_language"
    assert result["submission_id"] == "foreign-1"
    assert result["tests"] == []


def test_python_client_and_foreign_producers_give_the_same_result(
    workers, node_producer: Path, tmp_path: Path
) -> None:
    workers("foreign")
    path = write(tmp_path, SUBMISSION)
    from_node = node_produce(node_producer, path)
    from_raw, _ = raw_produce(path)
    from_python = Client().submit(SUBMISSION).result(timeout=TIMEOUT_S).model_dump(mode="json")

    def verdicts(result: dict[str, Any]) -> tuple[object, ...]:
        return (
            result["contract"],
            result["submission_id"],
            result["verdict"],
            result["passed"],
            result["total"],
            [(t["id"], t["verdict"], t["stdout"]) for t in result["tests"]],
        )

    assert verdicts(from_python) == verdicts(from_node) == verdicts(from_raw)
    assert from_python["verdict"] == Verdict.WA
