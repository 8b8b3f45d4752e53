"""The ``runner`` command as users meet it: every expected failure is one ``runner:`` line on
stderr and the documented exit code (0 accepted, 1 not accepted, 2 refused or usage error,
3 fleet unreachable), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fleet.conftest import RUNNER, flush

pytestmark = [pytest.mark.redis]

SOURCE = "print(int(input()) + 1)\n"
TESTS = [{"id": "one", "stdin": "41", "expected_stdout": "42"}]
# the suite's own broker and backend settings would win over RUNNER_REDIS_URL: emptied
AWAY = {
    "RUNNER_REDIS_URL": "redis://127.0.0.1:1",
    "RUNNER_BROKER_URL": "",
    "RUNNER_RESULT_BACKEND": "",
}


def runner(*args: str, cwd: Path | None = None, timeout: float = 60, **env: str | None) -> Any:
    """Run ``runner ARGS`` with the suite's environment changed by ``env`` (None: unset)."""
    changed = {**os.environ, **env}
    return subprocess.run(
        [str(RUNNER), *args],
        env={k: v for k, v in changed.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def submit(files: Path, *extra: str, tests: str = "tests.json", **env: str | None) -> Any:
    """``runner submit main.py --lang python --tests TESTS EXTRA...`` from ``files``."""
    main = str(files / "main.py")
    return runner("submit", main, "--lang", "python", "--tests", str(files / tests), *extra, **env)


def one_line(done: Any, code: int) -> str:
    """The single ``runner:`` line a failed command printed, once its exit code is checked."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runner: "), done.stderr
    return str(lines[0])


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "main.py").write_text(SOURCE)
    (tmp_path / "tests.json").write_text(json.dumps(TESTS))
    (tmp_path / "broken.json").write_text('[\n  {"stdin": "1",}\n]\n')
    return tmp_path


def test_an_unreachable_redis_is_one_line_and_exit_3_at_once(files: Path) -> None:
    started = time.monotonic()
    done = submit(files, "--wait", **AWAY)
    assert "cannot reach the broker at redis://127.0.0.1:1/0" in one_line(done, 3)
    assert time.monotonic() - started < 15  # not Celery's retries
    for command in (["result", "abc"], ["status"], ["ping"], ["keys", "list"]):
        assert "cannot reach" in one_line(runner(*command, **AWAY), 3), command


def test_missing_and_malformed_files_are_named_with_line_and_column(files: Path) -> None:
    done = runner("submit", str(files / "nope.py"), "--lang", "python", "--tests", "x.json")
    assert one_line(done, 2) == f"runner: {files / 'nope.py'}: no such file"
    done = submit(files, tests="none.json")
    assert one_line(done, 2) == f"runner: {files / 'none.json'}: no such file"
    done = submit(files, tests="broken.json")
    assert one_line(done, 2).startswith(f"runner: {files / 'broken.json'}:2:17: not JSON")
    done = submit(files, tests=".")
    assert "no NAME.in files" in one_line(done, 2)
    done = submit(files, "--limits", "{cpu")
    assert one_line(done, 2).startswith("runner: --limits:1:2: not JSON")
    done = runner("problem", str(files / "broken.json"))
    assert ":2:17: not JSON" in one_line(done, 2)


def test_a_bad_setting_is_exit_2_naming_it(files: Path) -> None:
    done = runner("status", RUNNER_CONCURRENCY="many")
    assert "RUNNER_CONCURRENCY" in one_line(done, 2)
    done = runner("status", RUNNER_REDIS_URL="redis://127.0.0.1:6379/4")
    assert "names a database" in one_line(done, 2)


def test_a_refused_submission_is_exit_2_with_its_code_even_without_wait(
    files: Path, redis_db: redis.Redis
) -> None:
    done = submit(files, "--limits", '{"cpu_time_ms": 0}')
    assert one_line(done, 2).startswith("runner: refused: invalid_value: limits.cpu_time_ms")
    done = submit(files, "--limits", '{"cpu_time_ms": 0}', "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["verdict"] == "RJ"


def test_a_queue_nobody_consumes_is_said_within_seconds_and_the_submission_kept(
    files: Path, redis_db: redis.Redis
) -> None:
    flush()
    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    done = submit(files, "--wait", RUNNER_QUEUE=queue)
    line = one_line(done, 3)
    assert f"no worker consumes queue {queue!r}" in line and "runner worker" in line, line
    assert time.monotonic() - started < 30
    sid = line.split("; ", 1)[1].split(" ", 1)[0]
    pending = runner("result", sid, "--json", RUNNER_QUEUE=queue)
    assert pending.returncode == 1 and json.loads(pending.stdout)["state"].startswith("queued")
    flush()


@pytest.mark.docker
def test_result_by_id_later_and_exit_codes_by_verdict(
    files: Path, workers: Any, redis_db: redis.Redis
) -> None:
    workers("cli")
    sent = submit(files)
    assert sent.returncode == 0 and sent.stderr == "", sent.stderr
    sid = sent.stdout.strip()
    waited = runner("result", sid, "--wait")
    assert waited.returncode == 0 and "verdict AC  passed 1/1" in waited.stdout, waited.stdout
    as_json = runner("result", sid, "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["verdict"] == "AC"
    (files / "wrong.json").write_text(json.dumps([{"stdin": "1", "expected_stdout": "3"}]))
    wrong = submit(files, "--wait", "--json", tests="wrong.json")
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["verdict"] == "WA"
    pinged = runner("ping")
    assert pinged.returncode == 0 and "cli@" in pinged.stdout, pinged


def test_ping_with_no_worker_says_so(redis_db: redis.Redis) -> None:
    flush()
    done = runner("ping", "--timeout", "1")
    assert done.returncode == 1 and done.stderr.strip() == "no worker: no answer"


def test_schema_prints_to_stdout_and_writes_only_where_asked(tmp_path: Path) -> None:
    done = runner("schema", cwd=tmp_path)
    assert done.returncode == 0 and "submission.schema.json" in json.loads(done.stdout)
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory
    done = runner("schema", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        json.loads(runner("schema").stdout)
    )


def test_revoking_an_unknown_key_is_a_usage_error(redis_db: redis.Redis) -> None:
    done = runner("keys", "revoke", "000000000000")
    assert "no API key '000000000000'" in one_line(done, 2)
    done = runner("keys", "create", "bad name!")
    assert "name 'bad name!'" in one_line(done, 2)
