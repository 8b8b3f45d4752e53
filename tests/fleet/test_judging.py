"""Contract 1.1 end to end: real Redis, a real worker, real Docker. Checkers, scored groups,
interactive problems and registered problems through the Python client and through the one
task a foreign backend sends; every new bad input an RJ or CE with its code, nothing left
half-run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import TEST_ENV
from worker.client import Client
from worker.keyspace import ADMITTED_TESTS as TOTAL

pytestmark = [pytest.mark.docker, pytest.mark.redis]

EXAMPLES = Path(__file__).parents[2] / "examples"


def example(name: str, *files: str) -> list[dict[str, str]]:
    return [{"name": f, "content": (EXAMPLES / name / f).read_text()} for f in files]


PAIR_CHECKER = {
    "language": "cpp",
    "files": example("any-pair-checker", "check.cpp", "testlib_lite.h"),
    "entry": "check.cpp",
}
INTERACTOR = {
    "language": "cpp",
    "source": (EXAMPLES / "guess-interactive" / "interactor.cpp").read_text(),
}
GUESSER = (EXAMPLES / "guess-interactive" / "main.py").read_text()


def pair(n: int, answer: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(n), "stdin": f"{n}\n", "expected_stdout": answer, **extra}


@pytest.fixture
def client(shared_worker: Any) -> Client:
    return Client()


def left_behind() -> list[str]:
    """Run state a finished submission must not leave: its keys, or a place in admission."""
    backend = redis.Redis.from_url(TEST_ENV["RUNNER_RESULT_BACKEND"])
    keys = [k.decode() for k in backend.keys("runner:run:*")]
    return keys + ([] if int(backend.get(TOTAL) or 0) == 0 else ["tests in flight"])


def test_a_cpp_checker_groups_and_partial_scores_through_the_client(client: Client) -> None:
    submission = {
        "language": "python",
        "source": "n = int(input())\nprint(1, n - 1) if n < 100 else print(n, 0)",
        "tests": [
            pair(7, "3 4", group="small"),
            pair(9, "4 5", group="small"),
            pair(1000, "1 999", group="big"),
            pair(2000, "1 1999", group="big"),
            pair(3000, "1 2999", group="harder"),
        ],
        "checker": PAIR_CHECKER,
        "groups": [
            {"name": "small", "points": 30},
            {"name": "big", "points": 50},
            {"name": "harder", "points": 20, "depends_on": ["big"]},
        ],
        "max_score": 100,
    }
    result = client.submit(submission).result(timeout=180)
    assert [t.verdict for t in result.tests] == ["AC", "AC", "WA", "SK", "SK"]
    assert "not both positive" in result.tests[2].message
    assert [(g.name, g.verdict, g.score) for g in result.groups or []] == [
        ("small", "AC", 30.0),
        ("big", "WA", 0.0),
        ("harder", "SK", 0.0),
    ]
    assert (result.verdict, result.score, result.max_score) == ("WA", 30.0, 100.0)
    assert left_behind() == []


def test_an_interactive_game_won_lost_and_hung_through_the_one_task(client: Client) -> None:
    tests = [
        {"id": "win", "stdin": "123456789 30\n"},
        {"id": "stingy", "stdin": "987654321 5\n"},
    ]
    won_or_lost = {
        "language": "python",
        "source": GUESSER,
        "tests": tests,
        "interactor": INTERACTOR,
    }
    result = client.send(won_or_lost).result(timeout=180)
    assert [t.verdict for t in result.tests] == ["AC", "WA"], result
    assert "more than 5 queries" in result.tests[1].message
    silent = {
        **won_or_lost,
        "source": "import time\ntime.sleep(60)",
        "limits": {"wall_time_ms": 1500},
    }
    hung = client.send(silent).result(timeout=180)
    assert [t.verdict for t in hung.tests] == ["TLE", "TLE"]
    assert hung.tests[0].wall_time_ms >= 1500


def test_a_registered_problem_is_judged_by_id_from_either_path(client: Client) -> None:
    answer = client.register_problem(
        {
            "name": "any pair",
            "tests": [pair(7, "3 4"), pair(50, "25 25")],
            "checker": PAIR_CHECKER,
        }
    )
    assert answer.error is None and answer.problem and answer.tests == 2
    program = {"language": "python", "source": "n = int(input())\nprint(n // 2, n - n // 2)"}
    by_client = client.submit({**program, "problem": answer.problem}).result(timeout=120)
    by_task = client.send({**program, "problem": answer.problem}).result(timeout=120)
    assert by_client.verdict == by_task.verdict == "AC"
    assert [
        t.model_dump(exclude={"cpu_time_ms", "wall_time_ms", "memory_kb"}) for t in by_client.tests
    ] == [t.model_dump(exclude={"cpu_time_ms", "wall_time_ms", "memory_kb"}) for t in by_task.tests]


BAD = {"language": "python", "source": "print(1)", "tests": [{"stdin": "1"}]}


@pytest.mark.parametrize(
    ("changes", "verdict", "code"),
    [
        ({"checker": {"language": "cpp", "source": "int main( {"}}, "RJ", "checker_compile_error"),
        ({"interactor": {"language": "c", "source": "nope"}}, "RJ", "interactor_compile_error"),
        ({"checker": {"language": "fortran", "source": ""}}, "RJ", "unknown_language"),
        ({"files": [{"name": "../escape.py", "content": ""}]}, "RJ", "bad_file_name"),
        ({"source": None, "files": [{"name": "lib.py", "content": ""}]}, "RJ", "missing_entry"),
        ({"tests": [{"group": "a"}, {"group": "b"}],
          "groups": [{"name": "a", "points": 1, "depends_on": ["b"]},
                     {"name": "b", "points": 1, "depends_on": ["a"]}]}, "RJ", "group_cycle"),
        ({"tests": [{"group": "a"}], "groups": [{"name": "a", "points": 5}], "max_score": 10},
         "RJ", "points_mismatch"),
        ({"tests": None, "problem": "p" + "0" * 40}, "RJ", "unknown_problem"),
        ({"language": "cpp", "source": "int main() { syntax error }"}, "CE", None),
        ({"compiler_options": ["-fplugin=/tmp/x.so"]}, "RJ", "compiler_option_not_allowed"),
    ],
)  # fmt: skip
def test_every_new_bad_input_is_refused_end_to_end_with_nothing_half_run(
    client: Client, changes: dict[str, Any], verdict: str, code: str | None
) -> None:
    submission = {k: v for k, v in {**BAD, **changes}.items() if v is not None}
    for handle in (client.submit(submission), client.send(submission)):
        result = handle.result(timeout=180)
        assert result.verdict == verdict, result
        assert (result.error.code if result.error else None) == code
    assert left_behind() == []
