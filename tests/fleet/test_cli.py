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
    # not final yet: 4, never 1 (which says it was judged and not accepted)
    pending = runner("result", sid, "--json", RUNNER_QUEUE=queue)
    assert pending.returncode == 4 and json.loads(pending.stdout)["state"] == "queued"
    flush()


def test_an_id_nobody_knows_is_a_usage_error_not_a_verdict(redis_db: redis.Redis) -> None:
    line = one_line(runner("result", "UNKNOWN"), 2)
    assert line.startswith("runner: no submission 'UNKNOWN' is known"), line
    assert "expired" in line


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
    # "just run it": a test without an expected output shows what the program printed, and
    # the language comes from the file's name when --lang is left out
    (files / "run.json").write_text(json.dumps([{"id": "run", "stdin": "41"}, *TESTS]))
    ran = runner("submit", str(files / "main.py"), "--tests", str(files / "run.json"), "--wait")
    assert ran.returncode == 0, ran.stderr
    table = ran.stdout.split("TEST ", 1)[1].splitlines()
    assert table[1].startswith("run ") and table[2] == "    stdout: 42", table
    assert table[3].startswith("one ") and "stdout" not in table[4], table
    # any test's, later, with --stdout
    later = runner("result", sid, "--stdout")
    assert later.returncode == 0 and "    stdout: 42" in later.stdout, later.stdout
    pinged = runner("ping")
    assert pinged.returncode == 0 and "cli@" in pinged.stdout, pinged
    # a container's health check asks its own worker only, never whether any answers
    (name,) = (line.split(":")[0] for line in pinged.stdout.splitlines() if "cli@" in line)
    assert runner("ping", "--self", RUNNER_NODE_NAME=name).returncode == 0
    alone = runner("ping", "--self", "--timeout", "1", RUNNER_NODE_NAME="wedged@nowhere")
    assert one_line(alone, 3).startswith("runner: wedged@nowhere: no answer"), alone


def test_ping_and_status_with_no_worker_answering_are_exit_3(redis_db: redis.Redis) -> None:
    flush()
    line = one_line(runner("ping", "--timeout", "1"), 3)
    assert line == "runner: no worker answered within 1 s (start one: runner worker)"
    line = one_line(runner("ping", "-n", "NOBODY", "--timeout", "1"), 3)
    assert line.startswith("runner: NOBODY: no answer within 1 s"), line
    done = runner("status")
    assert one_line(done, 3).startswith("runner: no worker answered")
    assert done.stdout.startswith("queue ")  # what it could tell comes first


def test_version_names_the_package_and_the_contract() -> None:
    done = runner("--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("runner 0.") and "(contract 1.1)" in done.stdout


def test_a_mistyped_flag_gets_its_subcommands_usage_and_a_suggestion(files: Path) -> None:
    done = runner("submit", str(files / "main.py"), "--lang", "python", "--tset", "t.json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: runner submit "), done.stderr
    assert "did you mean --tests?" in done.stderr
    done = runner("keys", "create", "shop", "--rtae", "5")
    assert done.stderr.startswith("usage: runner keys create "), done.stderr
    assert "did you mean --rate?" in done.stderr


def test_a_reader_that_goes_away_ends_it_quietly() -> None:
    """``runner settings | head -1``: no BrokenPipeError traceback; 141 when the reader was
    gone before the last write, as the shell reports any command a closed pipe stopped."""
    done = subprocess.run(
        ["bash", "-c", f"{RUNNER} settings | head -1; echo ${{PIPESTATUS[0]}} >&2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # whether head closed the pipe before runner's last write is a race: either ends quietly
    assert done.stderr.strip() in ("0", "141"), done.stderr
    assert done.stdout.startswith("RUNNER_") and done.stdout.count("\n") == 1
    # a pipe whose reader is surely gone
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        gone = subprocess.run(
            [str(RUNNER), "settings"], stdout=write_end, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(write_end)
    assert (gone.returncode, gone.stderr) == (141, b"")


# What GitHub Actions sets on every job: a backend's CI runs runner commands beside them.
GITHUB_ACTIONS = {
    "RUNNER_OS": "Linux",
    "RUNNER_ARCH": "X64",
    "RUNNER_NAME": "GitHub Actions 2",
    "RUNNER_TEMP": "/home/runner/work/_temp",
    "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
    "RUNNER_DEBUG": "1",
    "RUNNER_ENVIRONMENT": "github-hosted",
    "RUNNER_WORKSPACE": "/home/runner/work/shop",
}


def test_settings_redact_secrets_and_leave_ci_variables_alone(redis_db: redis.Redis) -> None:
    secrets = {
        "RUNNER_REDIS_URL": "redis://:hunter2@127.0.0.1:6379",
        "RUNNER_BROKER_URL": "",
        "RUNNER_RESULT_BACKEND": "",
        "RUNNER_API_WEBHOOK_SECRET": "whsec_aHVudGVyMy1odW50ZXIzLWh1bnRlcjMtaHVudGVyMyE=",
    }
    done = runner("settings", **GITHUB_ACTIONS, **secrets)
    assert done.returncode == 0, done.stderr
    for secret in ("hunter2", "aHVudGVyMy1odW50"):
        assert secret not in done.stdout
    assert "RUNNER_REDIS_URL='redis://:***@127.0.0.1:6379'" in done.stdout
    assert "RUNNER_BROKER_URL='redis://:***@127.0.0.1:6379/0'" in done.stdout
    assert "RUNNER_API_WEBHOOK_SECRET='***'" in done.stdout
    ignored = done.stdout.strip().splitlines()[-1]
    assert ignored.startswith("ignored") and all(k in ignored for k in GITHUB_ACTIONS)
    # commands and the Python client start with CI's variables around them...
    assert one_line(runner("result", "UNKNOWN", **GITHUB_ACTIONS), 2).startswith(
        "runner: no submission"
    )
    made = subprocess.run(
        [str(RUNNER.with_name("python")), "-c", "from worker.client import Client; Client()"],
        env={**os.environ, **GITHUB_ACTIONS},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    # ...and a typo of a setting still stops them, naming the one meant
    line = one_line(runner("status", **GITHUB_ACTIONS, RUNNER_CONCURENCY="2"), 2)
    assert line == (
        "runner: unknown setting 'RUNNER_CONCURENCY': did you mean RUNNER_CONCURRENCY? "
        "(`runner settings` lists them all)"
    )


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
