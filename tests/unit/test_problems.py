"""Problems as data: registered once on a worker (checker compiled there), judged by id, their
data kept while runs come and go; every bad registration or reference refused precisely."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from tests.unit.fleet import judged, start_runtime
from worker.data.storage import digest
from worker.keyspace import DATA, KEPT, PROBLEM
from worker.pipeline import runtime
from worker.pipeline.tasks import register_problem, submit

CHECKER = """
import sys
out, ans = open(sys.argv[2]).read().split(), open(sys.argv[3]).read().split()
sys.exit(0 if sorted(out) == sorted(ans) else 1)
"""


@pytest.fixture
def local() -> Iterator[runtime.Runtime]:
    yield start_runtime(fakeredis.FakeServer(), script=None, inline_data_kb="1")
    runtime.install(None)


def problem(**extra: Any) -> dict[str, Any]:
    tests = [
        {"id": "small", "stdin": "2 1", "expected_stdout": "1 2", "group": "g1"},
        {"id": "big", "stdin": "9 " * 1000, "expected_stdout": "9 " * 1000, "group": "g2"},
    ]
    return {
        "name": "sort",
        "tests": tests,
        "checker": {"language": "python", "source": CHECKER},
        "groups": [
            {"name": "g1", "points": 30},
            {"name": "g2", "points": 70, "depends_on": ["g1"]},
        ],
        "limits": {"cpu_time_ms": 1000},
        **extra,
    }


SORT = "print(*sorted(input().split()))"


def register(raw: dict[str, Any]) -> dict[str, Any]:
    return register_problem.apply(args=(raw,)).get()  # type: ignore[no-any-return]


def test_a_registered_problem_judges_submissions_by_id(local: runtime.Runtime) -> None:
    answer = register(problem())
    assert answer["error"] is None and answer["tests"] == 2 and answer["name"] == "sort"
    pid = answer["problem"]
    assert register(problem(name="another name"))["problem"] == pid  # same content, same id
    out = judged(local, {"language": "python", "source": SORT, "problem": pid})
    assert (out["verdict"], out["score"], out["max_score"]) == ("AC", 100.0, 100.0)
    wrong = judged(local, {"language": "python", "source": "print(0)", "problem": pid})
    assert [t["verdict"] for t in wrong["tests"]] == ["WA", "SK"]
    assert wrong["score"] == 0.0


def test_a_problems_data_is_stored_once_and_kept_after_its_runs(local: runtime.Runtime) -> None:
    pid = register(problem())["problem"]
    redis = local.redis
    record = redis.get(PROBLEM + pid)
    assert record is not None and 0 < redis.ttl(PROBLEM + pid) <= local.settings.problem_expires_s
    big = DATA + digest(("9 " * 1000).encode())  # the 2000-byte input (and answer)
    for _ in range(2):
        judged(local, {"language": "python", "source": SORT, "problem": pid})
    assert redis.ttl(big) > local.settings.result_expires_s  # a run's end did not shorten it
    assert redis.zscore(KEPT, big.removeprefix(DATA)) is not None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"checker": {"language": "python", "source": "def f(:"}}, "checker_compile_error"),
        ({"interactor": {"language": "c", "source": "int main( {"}}, "interactor_compile_error"),
        ({"groups": [{"name": "g1", "points": 1, "depends_on": ["g2"]},
                     {"name": "g2", "points": 1, "depends_on": ["g1"]}]}, "group_cycle"),
        ({"max_score": 7}, "points_mismatch"),
        ({"checker": {"language": "cobol", "source": ""}}, "unknown_language"),
        ({"tests": []}, "no_tests"),
        # points whose sum is no finite number: the score would be Infinity, which is no JSON
        ({"groups": [{"name": "g1", "points": 1e308}, {"name": "g2", "points": 1e308}]},
         "invalid_value"),
        # an option exec cannot even pass (E2BIG) was IE, for a checker and an interactor alike
        ({"checker": {"language": "cpp", "source": "int main() {}",
                      "compiler_options": ["-D" + "X" * 200_000]}}, "compiler_option_not_allowed"),
        ({"interactor": {"language": "c", "source": "int main(void) {}",
                         "compiler_options": ["-DX=1"] * 17}}, "too_many_options"),
    ],
)  # fmt: skip
def test_a_bad_problem_is_refused_with_its_code_and_nothing_stored(
    local: runtime.Runtime, change: dict[str, Any], code: str
) -> None:
    answer = register(problem(**change))
    assert (answer["problem"], answer["error"]["code"]) == (None, code)
    assert local.redis.keys(PROBLEM + "*") == []


def test_submissions_naming_an_unknown_problem_or_overriding_one_are_rejected(
    local: runtime.Runtime,
) -> None:
    unknown = submit.apply(args=({"language": "python", "source": SORT, "problem": "p0"},)).get()
    assert (unknown["verdict"], unknown["error"]["code"]) == ("RJ", "unknown_problem")
    # the id is quoted, 200 characters of it at most, however long it is
    huge = {"language": "python", "source": SORT, "problem": "p" * 100_000}
    unknown = submit.apply(args=(huge,)).get()
    assert unknown["error"]["code"] == "unknown_problem"
    message = unknown["error"]["message"]
    assert message.startswith("problem: 'ppp") and "p" * 200 not in message
    assert len(message) < 400
    pid = register(problem())["problem"]
    both = {"language": "python", "source": SORT, "problem": pid, "limits": {"cpu_time_ms": 9}}
    out = submit.apply(args=(both,)).get()
    assert (out["verdict"], out["error"]["code"]) == ("RJ", "conflicting_fields")
