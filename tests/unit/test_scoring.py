"""The join's decisions with groups: short-circuit inside a group, dependencies, the two
policies, partial points, and the verdict keeping contract 1's meaning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.fleet import parsed
from worker.contract import TestResult, Verdict
from worker.data.storage import stored_program
from worker.messages import RunMeta, TestOutcome
from worker.pipeline.scoring import assemble
from worker.producer.workflow import judging_of, meta_of


def meta(groups: list[dict[str, Any]], tests: list[str | None], **extra: Any) -> RunMeta:
    raw = {
        "language": "python",
        "source": "print(1)",
        "tests": [{"id": f"t{i}", **({"group": g} if g else {})} for i, g in enumerate(tests)],
        "groups": groups,
        **extra,
    }
    submission = parsed(raw)
    program = stored_program(submission.program, {})
    return meta_of(submission, "r", program, judging_of(submission.judging))


def outcome(index: int, verdict: Verdict, score: float | None = None) -> dict[str, Any]:
    result = TestResult(id=f"t{index}", verdict=verdict, score=score)
    return TestOutcome(index=index, result=result).encode()


def judge(m: RunMeta, verdicts: list[Any]) -> Any:
    parts = [outcome(i, *(v if isinstance(v, tuple) else (v,))) for i, v in enumerate(verdicts)]
    return assemble(m, [f"t{i}" for i in range(len(verdicts))], None, parts)


AC, WA, TLE, SK = Verdict.AC, Verdict.WA, Verdict.TLE, Verdict.SK


def test_a_failure_skips_the_rest_of_its_group_and_the_groups_that_depend_on_it() -> None:
    m = meta(
        [
            {"name": "a", "points": 30},
            {"name": "b", "points": 70, "depends_on": ["a"]},
            {"name": "c", "points": 0},
        ],
        ["a", "a", "a", "b", "b", "c"],
    )
    result = judge(m, [AC, WA, AC, AC, AC, AC])
    assert [t.verdict for t in result.tests] == [AC, WA, SK, SK, SK, AC]
    assert [t.group for t in result.tests] == ["a", "a", "a", "b", "b", "c"]
    assert [(g.name, g.verdict, g.score) for g in result.groups] == [
        ("a", WA, 0.0),
        ("b", SK, 0.0),
        ("c", AC, 0.0),
    ]
    assert (result.score, result.max_score, result.verdict) == (0.0, 100.0, WA)
    assert result.tests[2].message == "skipped after test 't1' of its group failed"


def test_groups_that_pass_score_their_points_and_a_later_group_fails_alone() -> None:
    m = meta(
        [{"name": "a", "points": 40}, {"name": "b", "points": 60, "depends_on": ["a"]}],
        ["a", "a", "b", "b"],
    )
    result = judge(m, [AC, AC, AC, TLE])
    assert [(g.name, g.verdict, g.score) for g in result.groups] == [
        ("a", AC, 40.0),
        ("b", TLE, 0.0),
    ]
    assert (result.score, result.verdict, result.passed) == (40.0, TLE, 3)


def test_min_policy_takes_the_least_partial_score_and_does_not_stop_at_partial() -> None:
    """Partial points (a checker's) are WA with a score: an "all" group gets nothing for them,
    a "min" group its points times the least; only a test scoring nothing ends a min group."""
    m = meta(
        [{"name": "m", "points": 50, "policy": "min"}, {"name": "x", "points": 50}],
        ["m", "m", "m", "x"],
    )
    result = judge(m, [AC, (WA, 0.5), (WA, 0.25), (WA, 0.5)])
    assert [t.verdict for t in result.tests] == [AC, WA, WA, WA]
    assert [t.score for t in result.tests] == [None, 0.5, 0.25, 0.5]
    assert [(g.name, g.score) for g in result.groups] == [("m", 12.5), ("x", 0.0)]
    assert result.score == 12.5
    nothing = judge(m, [AC, WA, AC, AC])  # scored nothing: the rest of the group is SK
    assert [t.verdict for t in nothing.tests[:3]] == [AC, WA, SK]


def test_tests_outside_groups_count_for_the_verdict_but_score_nothing() -> None:
    m = meta([{"name": "a", "points": 10}], [None, "a"])
    result = judge(m, [WA, AC])
    assert (result.verdict, result.score, result.max_score) == (WA, 10.0, 10.0)
    assert result.tests[0].group is None


def test_a_group_whose_dependency_got_partial_points_is_skipped() -> None:
    m = meta(
        [
            {"name": "a", "points": 10, "policy": "min"},
            {"name": "b", "points": 10, "depends_on": ["a"]},
        ],
        ["a", "b"],
    )
    result = judge(m, [(WA, 0.9), AC])
    assert [g.verdict for g in result.groups] == [WA, SK]
    assert result.score == pytest.approx(9.0)


def test_the_same_reports_in_any_order_or_repeated_give_the_same_result() -> None:
    m = meta([{"name": "a", "points": 1}, {"name": "b", "points": 2}], ["a", "b", "b"])
    parts = [outcome(2, AC), outcome(0, WA), outcome(1, AC), outcome(0, AC)]
    ids = ["t0", "t1", "t2"]
    first = assemble(m, ids, None, parts)
    again = assemble(m, ids, None, list(reversed(parts[:3])))
    assert first == again
    assert [g.score for g in first.groups] == [0.0, 2.0]


def test_points_near_a_doubles_range_score_a_result_that_is_json() -> None:
    """Intake refuses points whose sum is infinite; any it takes add up to a finite score."""
    m = meta([{"name": "a", "points": 8e307}, {"name": "b", "points": 8e307}], ["a", "b"])
    result = judge(m, [AC, AC])
    assert (result.score, result.max_score) == (1.6e308, 1.6e308)
    assert json.loads(json.dumps(result.model_dump(mode="json"), allow_nan=False))
