"""The join's decisions with groups: short-circuit inside a group, dependencies, the two
policies, partial points, and the verdict keeping contract 1's meaning."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.unit.fleet import parsed
from worker.contract import ProgramSpec, TestResult, Verdict
from worker.data.storage import stored_program
from worker.messages import RunMeta, StoredProgram, TestOutcome
from worker.pipeline.scoring import assemble, marks, skip_reason
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

    def store(program: ProgramSpec, static: bool) -> StoredProgram:
        return stored_program(program, {}, static)

    return meta_of(
        submission, "r", store(submission.program, False), judging_of(submission.judging, store)
    )


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


def _worker_side(m: RunMeta, order: list[int], results: list[TestResult]) -> list[dict[str, Any]]:
    """What test tasks report when they run in ``order``: each first asks whether the join will
    skip it (the marks earlier-finished tests left), and leaves its own marks when it ran."""
    lowest: dict[str, int] = {}
    parts = []
    for index in order:
        reason = skip_reason(m, index, lowest)
        if reason:
            parts.append(TestOutcome(index=index, skipped=reason).encode())
            continue
        parts.append(TestOutcome(index=index, result=results[index]).encode())
        for mark in marks(m, index, results[index]):
            lowest[mark] = min(lowest.get(mark, index), index)
    return parts


def test_a_test_workers_skip_is_one_the_join_skips_whatever_the_groups_and_order() -> None:
    """Workers skip a test only when the join would make it SK anyway (a test skipped that the
    join counts would be an IE of ours): both decide from scoring's one rule. Checked over random
    groups (points 0 included), policies, dependencies, results and orders of running."""
    rng = random.Random(20)
    results_pool = [(AC, None), (WA, None), (WA, 0.5), (WA, 1.0), (TLE, None)]
    for _ in range(3000):
        count = rng.randint(1, 3)
        groups = [
            {
                "name": f"g{g}",
                "points": rng.choice([0, 10]),
                "policy": rng.choice(["all", "min"]),
                "depends_on": [f"g{d}" for d in range(g) if rng.random() < 0.5],
            }
            for g in range(count)
        ]
        tests = [rng.choice([None, *(g["name"] for g in groups)]) for _ in range(rng.randint(1, 6))]
        used = {t for t in tests if t}
        groups = [g for g in groups if g["name"] in used]
        for g in groups:
            g["depends_on"] = [d for d in g["depends_on"] if d in used]
        m = meta(groups, tests, stop_on_first_failure=rng.random() < 0.3)
        results = [
            TestResult(id=f"t{i}", verdict=v, score=s)
            for i, (v, s) in enumerate(rng.choice(results_pool) for _ in tests)
        ]
        ids = [f"t{i}" for i in range(len(tests))]
        order = rng.sample(range(len(tests)), len(tests))
        every = [TestOutcome(index=i, result=r).encode() for i, r in enumerate(results)]
        assert assemble(m, ids, None, _worker_side(m, order, results)) == assemble(
            m, ids, None, every
        ), (groups, tests, results, order)


def test_a_group_worth_nothing_does_not_skip_the_groups_that_depend_on_it() -> None:
    m = meta(
        [{"name": "a", "points": 0}, {"name": "b", "points": 10, "depends_on": ["a"]}],
        ["a", "b"],
    )
    results = [TestResult(id="t0", verdict=WA), TestResult(id="t1", verdict=AC)]
    joined = assemble(m, ["t0", "t1"], None, _worker_side(m, [0, 1], results))
    assert [t.verdict for t in joined.tests] == [WA, AC]
    assert joined.score == 10.0


def test_a_group_named_like_a_mark_of_the_run_is_only_a_group() -> None:
    """A failing test of a group named ``cancelled`` ends its group, not the submission (the
    API's cancel leaves that mark in the same hash)."""
    m = meta(
        [{"name": "cancelled", "points": 10}, {"name": "b", "points": 5}], ["cancelled"] * 2 + ["b"]
    )
    results = [TestResult(id=f"t{i}", verdict=v) for i, v in enumerate([WA, AC, AC])]
    joined = assemble(m, ["t0", "t1", "t2"], None, _worker_side(m, [0, 1, 2], results))
    assert [t.verdict for t in joined.tests] == [WA, SK, AC]
    assert joined.verdict == WA and joined.error is None
