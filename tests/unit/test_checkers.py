"""Checkers: testlib's exit codes read as the protocol says, and program checkers judging real
tests end to end through the tasks (fake pool: local processes, no Docker)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from tests.unit.fleet import judged, start_runtime, sub
from worker.checkers import judge_testlib
from worker.contract import Verdict
from worker.errors import SandboxError
from worker.pipeline import runtime
from worker.sandbox.fake import report
from worker.sandbox.protocol import Job, RunReport


@pytest.mark.parametrize(
    ("code", "sig", "killed", "stderr", "verdict", "fraction", "message"),
    [
        (0, None, "none", b"ok 3 numbers", Verdict.AC, 1.0, "ok 3 numbers"),
        (1, None, "none", b"wrong answer 2nd differs", Verdict.WA, 0.0, "wrong answer 2nd"),
        (2, None, "none", b"bad format", Verdict.WA, 0.0, "presentation error: bad format"),
        (4, None, "none", b"extra", Verdict.WA, 0.0, "presentation error"),
        (8, None, "none", b"", Verdict.WA, 0.0, "unexpected end of output"),
        (3, None, "none", b"FAIL answer is wrong", Verdict.IE, 0.0, "checker failed: FAIL"),
        (7, None, "none", b"points 0.25 a quarter", Verdict.WA, 0.25, "points 0.25"),
        (7, None, "none", b"points 1 all", Verdict.AC, 1.0, "points 1"),
        (7, None, "none", b"points 1.5", Verdict.IE, 0.0, "outside [0, 1]"),
        (7, None, "none", b"no points here", Verdict.IE, 0.0, "expected 'points X'"),
        (5, None, "none", b"", Verdict.IE, 0.0, "exited with code 5"),
        (-1, "SIGSEGV", "none", b"", Verdict.IE, 0.0, "killed by SIGSEGV"),
        (-1, "SIGKILL", "cpu", b"", Verdict.IE, 0.0, "exceeded its cpu limit"),
    ],
)
def test_testlib_exit_codes(
    code: int,
    sig: str | None,
    killed: str,
    stderr: bytes,
    verdict: Verdict,
    fraction: float,
    message: str,
) -> None:
    judged_ = judge_testlib("checker", code, sig, killed, stderr)
    assert (judged_.verdict, judged_.fraction) == (verdict, fraction)
    assert message in judged_.message


# A checker accepting any order of the expected numbers, giving partial points for half, and
# failing (testlib's FAIL) when the answer file itself is malformed.
PERMUTATION = """
import sys
inp, out, ans = (open(p).read().split() for p in sys.argv[1:4])
if not ans:
    sys.stderr.write("FAIL the answer file is empty")
    sys.exit(3)
if sorted(out) == sorted(ans):
    sys.stderr.write("ok same numbers")
    sys.exit(0)
common = len(set(out) & set(ans))
if common * 2 >= len(ans):
    sys.stderr.write(f"points {common / len(ans)} {common} of {len(ans)}")
    sys.exit(7)
sys.stderr.write(f"wrong answer {common} of {len(ans)} right")
sys.exit(1)
"""


@pytest.fixture
def local() -> Iterator[runtime.Runtime]:
    """Jobs run as local processes: real programs, real checkers, no isolation."""
    yield start_runtime(fakeredis.FakeServer(), script=None)
    runtime.install(None)


def with_checker(source: str, tests: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "language": "python",
        "source": "import sys\nprint(sys.stdin.read().strip())",
        "tests": [
            {"id": f"t{i}", "stdin": s, "expected_stdout": e} for i, (s, e) in enumerate(tests)
        ],
        "checker": {"language": "python", "source": source},
        **extra,
    }


def test_a_python_checker_judges_ac_wa_and_partial_points(local: runtime.Runtime) -> None:
    raw = with_checker(
        PERMUTATION,
        [("3 1 2", "1 2 3"), ("1 2 9", "1 2 3 4"), ("7 8", "1 2 3")],
        groups=[{"name": "all", "points": 10, "policy": "min"}],
    )
    for test in raw["tests"]:
        test["group"] = "all"
    out = judged(local, raw)
    assert [t["verdict"] for t in out["tests"]] == ["AC", "WA", "WA"]
    assert out["tests"][1]["score"] == 0.5 and "2 of 4" in out["tests"][1]["message"]
    assert "wrong answer 0 of 3" in out["tests"][2]["message"]
    assert (out["verdict"], out["score"], out["max_score"]) == ("WA", 0.0, 10.0)


def test_a_checker_that_fails_is_ie_never_the_contestants_wa(local: runtime.Runtime) -> None:
    """Nor the fleet's: error code checker_failed, not internal_error, so that a backend can
    tell a problem to fix from a fleet at fault."""
    out = judged(local, with_checker(PERMUTATION, [("1", "")]))
    assert out["verdict"] == "IE"
    assert out["tests"][0]["message"] == "checker failed: FAIL the answer file is empty"
    assert (out["error"]["code"], out["tests"][0]["error_code"]) == ("checker_failed",) * 2
    assert out["error"]["message"] == out["tests"][0]["message"]
    crash = judged(local, with_checker("import os\nos.abort()", [("1", "1")]))
    assert crash["tests"][0]["verdict"] == "IE"
    assert "checker killed by SIGABRT" in crash["tests"][0]["message"]
    assert (crash["error"]["code"], crash["tests"][0]["error_code"]) == ("checker_failed",) * 2


@pytest.mark.parametrize(
    ("code", "verdict", "error_code"),
    [
        (0, Verdict.AC, None),
        (1, Verdict.WA, None),
        (3, Verdict.IE, "checker_failed"),
        (9, Verdict.IE, "checker_failed"),
    ],
)
def test_the_code_of_a_checkers_failure_is_checker_failed(
    code: int, verdict: Verdict, error_code: str | None
) -> None:
    judged_ = judge_testlib("interactor", code, None, "none", b"")
    assert (judged_.verdict, judged_.code) == (verdict, error_code)


def test_a_checker_the_sandbox_could_not_run_is_the_fleets_internal_error() -> None:
    def script(image: str, job: Job) -> RunReport:
        if job.argv[-3:] == ("input", "output", "answer"):
            raise SandboxError("engine gone")
        return report(stdout=job.stdin)

    rt = start_runtime(fakeredis.FakeServer(), script=script)
    try:
        out = judged(rt, with_checker(PERMUTATION, [("1", "1")]))
    finally:
        runtime.install(None)
    assert out["verdict"] == "IE" and "checker could not run" in out["tests"][0]["message"]
    assert out["error"]["code"] == "internal_error"
    assert "error_code" not in out["tests"][0]


def test_a_checker_runs_only_for_a_program_that_ended_cleanly(local: runtime.Runtime) -> None:
    raw = with_checker(PERMUTATION, [("1", "1")])
    raw["source"] = "import sys\nsys.exit(3)"
    out = judged(local, raw)
    assert (out["tests"][0]["verdict"], out["tests"][0]["message"]) == ("RE", "exited with code 3")


def test_the_program_gets_its_args_and_several_files(local: runtime.Runtime) -> None:
    raw = sub(1, stdin="x")
    raw.update(
        source="import sys, helper\nprint(helper.shout(sys.argv[1:]))",
        files=[{"name": "helper.py", "content": "def shout(a):\n    return '-'.join(a).upper()"}],
        args=["a", "b c"],
    )
    raw["tests"][0]["expected_stdout"] = "A-B C"
    assert judged(local, raw)["verdict"] == "AC"


def test_a_checker_that_does_not_compile_refuses_the_submission_with_nothing_run(
    local: runtime.Runtime,
) -> None:
    out = judged(local, with_checker("def broken(:\n", [("1", "1"), ("2", "2")]))
    assert (out["verdict"], out["total"], out["tests"]) == ("RJ", 0, [])
    assert out["error"]["code"] == "checker_compile_error"
    assert "checker: compilation failed (python)" in out["error"]["message"]
    assert "SyntaxError" in out["error"]["message"]
