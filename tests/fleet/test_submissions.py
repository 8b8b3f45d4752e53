"""Submissions end to end: real Redis, real worker processes, real Docker."""

from __future__ import annotations

import base64
import json
import time

import pytest
import redis

from tests.conftest import TEST_ENV
from worker.client import Client
from worker.contract import Verdict

pytestmark = [pytest.mark.docker, pytest.mark.redis]

SUM = {
    "python": "a, b = map(int, input().split())\nprint(a + b)\n",
    "c": '#include <stdio.h>\nint main(){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);}\n',
    "cpp": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}\n",
    "javascript": "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/)"
    ".map(Number);\nconsole.log(a + b);\n",
}
TESTS = [
    {"id": "small", "stdin": "1 2\n", "expected_stdout": "3\n"},
    {"id": "wrong", "stdin": "2 2\n", "expected_stdout": "5\n"},
    {"id": "big", "stdin": "1000000 2000000", "expected_stdout": "3000000"},
]

# One program whose verdict depends on its input: every verdict in one submission.
PY_BEHAVIOURS = """
import os, signal, sys, time
what = sys.stdin.readline().strip()
if what == "ok": print(42)
elif what == "wrong": print(41)
elif what == "spin":
    while True: pass
elif what == "sleep": time.sleep(30)
elif what == "hog": x = b"x" * (600 * 1024 * 1024)
elif what == "flood":
    while True: print("y" * 1000)
elif what == "crash": os.kill(os.getpid(), signal.SIGSEGV)
elif what == "exit": sys.exit(3)
elif what == "quiet": pass
"""
BEHAVIOUR_TESTS = [
    ("ok", "42", "AC"),
    ("wrong", "42", "WA"),
    ("spin", "42", "TLE"),
    ("sleep", "42", "TLE"),
    ("hog", "42", "MLE"),
    ("flood", "42", "OLE"),
    ("crash", "42", "RE"),
    ("exit", "42", "RE"),
    ("quiet", None, "AC"),
]


@pytest.mark.parametrize("lang", list(SUM))
def test_each_language_judges_several_tests_in_order(
    shared_worker, client: Client, lang: str
) -> None:
    sub = {"id": f"sub-{lang}", "language": lang, "source": SUM[lang], "tests": TESTS}
    result = client.submit(sub).result(timeout=120)
    assert result.submission_id == f"sub-{lang}"
    assert [t.id for t in result.tests] == ["small", "wrong", "big"]
    assert [t.verdict for t in result.tests] == [Verdict.AC, Verdict.WA, Verdict.AC]
    assert (result.verdict, result.passed, result.total) == (Verdict.WA, 2, 3)
    assert result.compile is not None and result.compile.exit_code == 0


def test_per_test_results_reach_the_join_without_being_stored_one_by_one(
    shared_worker, client: Client
) -> None:
    backend = redis.Redis.from_url(TEST_ENV["RUNNER_RESULT_BACKEND"])
    before = set(backend.scan_iter("celery-task-meta-*"))
    sub = {"language": "python", "source": SUM["python"], "tests": TESTS}
    result = client.submit(sub).result(timeout=120)
    assert [t.verdict for t in result.tests] == [Verdict.AC, Verdict.WA, Verdict.AC]
    stored = [
        json.loads(backend.get(k) or b"{}")
        for k in set(backend.scan_iter("celery-task-meta-*")) - before
    ]
    assert stored, "the submission's own result is stored"
    assert not [m for m in stored if isinstance(m.get("result"), dict) and "index" in m["result"]]


def test_every_verdict_end_to_end_in_one_submission(shared_worker, client: Client) -> None:
    tests = [
        {"id": what, "stdin": what + "\n", **({"expected_stdout": exp} if exp else {})}
        for what, exp, _ in BEHAVIOUR_TESTS
    ]
    limits = {"cpu_time_ms": 500, "wall_time_ms": 1500, "memory_mb": 128, "output_kb": 64}
    sub = {"language": "python", "source": PY_BEHAVIOURS, "tests": tests, "limits": limits}
    result = client.submit(sub).result(timeout=120)
    assert [(t.id, t.verdict) for t in result.tests] == [(w, v) for w, _, v in BEHAVIOUR_TESTS]
    by_id = {t.id: t for t in result.tests}
    assert by_id["crash"].signal == "SIGSEGV"
    assert by_id["exit"].exit_code == 3
    assert by_id["hog"].memory_kb >= 128 * 1024
    assert result.verdict == Verdict.WA  # the first failure in submission order
    assert result.max_cpu_time_ms >= 500


def test_compile_error_is_ce_with_compiler_output(shared_worker, client: Client) -> None:
    sub = {"language": "c", "source": "int main( {", "tests": TESTS}
    result = client.submit(sub).result(timeout=120)
    assert result.verdict == Verdict.CE
    assert result.compile is not None and "error" in result.compile.output
    assert [t.verdict for t in result.tests] == [Verdict.SK] * 3


def test_stop_on_first_failure_skips_the_rest(shared_worker, client: Client) -> None:
    sub = {
        "language": "python",
        "source": SUM["python"],
        "tests": TESTS,
        "stop_on_first_failure": True,
    }
    result = client.submit(sub).result(timeout=120)
    assert [t.verdict for t in result.tests] == [Verdict.AC, Verdict.WA, Verdict.SK]


def test_repeat_submission_reuses_the_compiled_program(shared_worker, client: Client) -> None:
    sub = {"language": "cpp", "source": SUM["cpp"] + "// repeat\n", "tests": TESTS[:1]}
    first = client.submit(sub).result(timeout=120)
    second = client.submit(sub).result(timeout=120)
    assert first.compile is not None and second.compile is not None
    assert (first.compile.cached, second.compile.cached) == (False, True)


def test_base64_submission_with_binary_output(shared_worker, client: Client) -> None:
    source = b"import sys\nsys.stdout.buffer.write(bytes(range(256)))\n"
    sub = {
        "language": "python",
        "encoding": "base64",
        "source": base64.b64encode(source).decode(),
        "tests": [{"stdin": "", "expected_stdout": base64.b64encode(bytes(range(256))).decode()}],
        "compare": {"mode": "exact"},
    }
    assert client.submit(sub).result(timeout=120).verdict == Verdict.AC


def test_both_enqueue_paths_give_the_same_result(shared_worker, client: Client) -> None:
    sub = {"id": "same", "language": "python", "source": SUM["python"], "tests": TESTS}
    here = client.submit(sub).result(timeout=120)
    there = client.send(sub).result(timeout=120)
    strip = {
        "tests": {"__all__": {"cpu_time_ms", "wall_time_ms", "memory_kb"}},
        "max_cpu_time_ms": True,
        "max_memory_kb": True,
        "compile": True,
    }
    assert here.model_dump(exclude=strip) == there.model_dump(exclude=strip)


INF, NAN = float("inf"), float("nan")
RJ_CASES = [
    ({"language": "cobol", "source": "", "tests": [{}]}, "unknown_language"),
    ({"source": "x", "tests": [{}]}, "missing_field"),
    ({"language": "python", "source": 7, "tests": [{}]}, "wrong_type"),
    ({"language": "python", "source": "x", "tests": [{}], "colour": 1}, "unknown_field"),
    ({"language": "python", "source": "x", "tests": []}, "no_tests"),
    ({"language": "python", "source": "x", "tests": [{}] * 201}, "too_many_tests"),
    ({"language": "python", "source": "x" * 300_000, "tests": [{}]}, "source_too_large"),
    (
        {"language": "python", "source": "x", "tests": [{"stdin": "x" * 17_000_000}]},
        "stdin_too_large",
    ),
    (
        {"language": "python", "source": "x", "tests": [{}], "limits": {"memory_mb": 4096}},
        "limit_too_high",
    ),
    ({"language": "python", "source": "%%", "tests": [{}], "encoding": "base64"}, "invalid_base64"),
    ("not an object", "not_an_object"),
]


@pytest.mark.parametrize(("sub", "code"), RJ_CASES, ids=[c for _, c in RJ_CASES])
def test_invalid_submission_sent_by_name_gets_rj(
    shared_worker, client: Client, sub: object, code: str
) -> None:
    result = client.send(sub).result(timeout=60)
    assert result.verdict == Verdict.RJ
    assert result.error is not None and result.error.code == code


@pytest.mark.parametrize(
    ("sub", "code", "message"),
    [
        (None, "not_an_object", "submission must be a JSON object, got null"),
        (
            {"language": "python", "source": "x", "tests": [{}], "compare": {"abs_tol": INF}},
            "invalid_value",
            "compare.abs_tol: inf is not a finite number",
        ),
        (
            {"language": "python", "source": "x", "tests": [{"stdin": -INF}]},
            "invalid_value",
            "tests.0.stdin: -inf is not a finite number",
        ),
        (
            {"language": "python", "source": "x", "tests": [{}], "limits": {"memory_mb": NAN}},
            "invalid_value",
            "limits.memory_mb: nan is not a finite number",
        ),
    ],
    ids=["null", "infinite-tolerance", "infinite-stdin", "nan-limit"],
)
def test_null_and_non_finite_numbers_sent_by_name_get_rj(
    shared_worker, client: Client, sub: object, code: str, message: str
) -> None:
    # Celery's JSON writes these as Infinity, -Infinity and NaN, which the worker's json reads
    # back as floats, as it reads 1e999: the task used to fail and leave no result
    result = client.send(sub).result(timeout=60)
    assert result.verdict == Verdict.RJ
    assert result.error is not None and result.error.code == code
    assert result.error.message.startswith(message)


def test_invalid_utf8_sent_raw_gets_rj(shared_worker, client: Client) -> None:
    # JSON can carry a lone surrogate, which is not UTF-8: a backend's bug must not crash us
    result = client.send({"language": "python", "source": "\udc80", "tests": [{}]}).result(
        timeout=60
    )
    assert result.error is not None and result.error.code == "invalid_utf8"


def test_undecodable_message_is_dropped_and_the_worker_goes_on(
    shared_worker, client: Client
) -> None:
    broker = redis.Redis.from_url(TEST_ENV["RUNNER_BROKER_URL"])
    queue = TEST_ENV["RUNNER_QUEUE"]
    envelope = {
        "body": base64.b64encode(b"{not json").decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "runner.submit", "id": "bad-1"},
        "properties": {
            "delivery_tag": "bad-tag",
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": queue},
        },
    }
    broker.lpush(queue, json.dumps(envelope))
    broker.lpush(queue, b"\xff\xfe total garbage")
    sub = {"language": "python", "source": SUM["python"], "tests": TESTS[:1]}
    assert client.submit(sub).result(timeout=60).verdict == Verdict.AC
    assert broker.llen(queue) == 0
    # nothing waits to be redelivered: not the bad message, not the good ones once acked
    deadline = time.monotonic() + 10
    while broker.hlen("unacked") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert broker.hgetall("unacked") == {}
