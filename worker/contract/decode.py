"""From a wire object to the decoded, validated form used inside the fleet, or a
:class:`~worker.errors.SubmissionRejected` with a precise code and message; callers turn that
into an ``RJ`` result, never an exception into the void. Programs are decoded in
:mod:`worker.contract.program`, the checks every decoder shares live in
:mod:`worker.contract.fields`."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from worker.checkers import BUILTINS
from worker.compare import Comparison
from worker.contract.decoded import (
    Checker,
    Group,
    Judging,
    Maxima,
    Submission,
    TestCase,
)
from worker.contract.fields import (
    Decode,
    check_json,
    decoder,
    json_type,
    quoted,
    shorten,
    where_of,
)
from worker.contract.limits import Limits
from worker.contract.program import helper_program, known_language, program_of
from worker.contract.wire import (
    GroupIn,
    LimitsIn,
    ProblemIn,
    ProgramIn,
    SubmissionIn,
    TestIn,
    _JudgedFields,
)
from worker.errors import SubmissionRejected

_PYDANTIC_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "literal_error": "invalid_value",
    "greater_than_equal": "invalid_value",
    "too_long": "too_long",
    "string_too_long": "too_long",
    "string_pattern_mismatch": "invalid_value",
    # a lone surrogate ("\\udc80" in JSON) in a string field is not UTF-8, as in `source`
    "string_unicode": "invalid_utf8",
    "union_tag_invalid": "unknown_checker",
    "finite_number": "invalid_value",
}


def parse_submission(raw: Any, maxima: Maxima, languages: frozenset[str]) -> Submission:
    """Validate and decode a wire submission, or raise :class:`SubmissionRejected`."""
    wire = _validate(SubmissionIn, raw)
    language = known_language(wire.language, "language", languages)
    decode = decoder(wire.encoding)
    program = program_of(wire, language, "", decode, maxima, args=wire.args, role="program")
    common: dict[str, Any] = {
        "id": wire.id,
        "program": program,
        "stop_on_first_failure": wire.stop_on_first_failure,
        "tenant": wire.tenant,
    }
    if wire.problem is not None:
        given = [name for name in _JudgedFields.model_fields if name in wire.model_fields_set]
        if wire.tests is not None or given:
            what = ", ".join(["tests", *given] if wire.tests is not None else given)
            raise SubmissionRejected(
                "conflicting_fields",
                f"problem: a submission against a problem gives no {what} (the problem's own)",
            )
        return Submission(judging=Judging((), Limits()), problem=wire.problem, **common)
    if wire.tests is None:
        raise SubmissionRejected("missing_field", "tests: Field required (or give `problem`)")
    judging = _judging(wire, wire.tests, decode, maxima, languages)
    return Submission(judging=judging, **common)


def parse_problem(
    raw: Any, maxima: Maxima, languages: frozenset[str]
) -> tuple[str | None, Judging]:
    """A problem's name and how its tests are judged, or :class:`SubmissionRejected`."""
    wire = _validate(ProblemIn, raw)
    return wire.name, _judging(wire, wire.tests, decoder(wire.encoding), maxima, languages)


def _validate(model: type[SubmissionIn] | type[ProblemIn], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise SubmissionRejected(
            "not_an_object", f"submission must be a JSON object, got {json_type(raw)}"
        )
    check_json(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        code = _PYDANTIC_CODES.get(first["type"], "wrong_type")
        message = first["msg"]
        if code == "unknown_checker":
            message = f"not a built-in checker (one of {', '.join(BUILTINS)}) nor a program"
        raise SubmissionRejected(code, f"{where_of(_visible(first['loc']))}: {message}") from None


def _visible(loc: Sequence[str | int]) -> list[str | int]:
    """A pydantic error location without the tags of tagged unions (``checker.program.x``
    is the submission's ``checker.x``)."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "checker" and parts[1] in ("program", *BUILTINS):
        del parts[1]
    return parts


def _judging(
    wire: _JudgedFields,
    raw_tests: list[TestIn],
    decode: Decode,
    maxima: Maxima,
    languages: frozenset[str],
) -> Judging:
    if not raw_tests:
        raise SubmissionRejected("no_tests", "tests: at least one test is required")
    if len(raw_tests) > maxima.tests:
        raise SubmissionRejected(
            "too_many_tests", f"tests: {len(raw_tests)} tests, at most {maxima.tests} allowed"
        )
    tests = []
    seen: set[str] = set()
    for index, test in enumerate(raw_tests):
        test_id = test.id if test.id is not None else str(index)
        if test_id in seen:
            raise SubmissionRejected(
                "duplicate_test_id", f"tests.{index}.id: {quoted(test_id)} is used twice"
            )
        seen.add(test_id)
        stdin = decode(test.stdin, f"tests.{index}.stdin")
        if len(stdin) > maxima.stdin_kb * 1024:
            raise SubmissionRejected(
                "stdin_too_large",
                f"tests.{index}.stdin: {len(stdin)} bytes, at most {maxima.stdin_kb} KB allowed",
            )
        expected = (
            None
            if test.expected_stdout is None
            else decode(test.expected_stdout, f"tests.{index}.expected_stdout")
        )
        tests.append(TestCase(test_id, stdin, expected, test.group))
    interactor = None
    if wire.interactor is not None:
        interactor = helper_program(wire.interactor, "interactor", decode, maxima, languages)
    return Judging(
        tests=tuple(tests),
        limits=_limits(wire.limits, maxima),
        checker=_checker(wire, interactor is not None, decode, maxima, languages),
        interactor=interactor,
        groups=_groups(wire.groups, tests, wire.max_score),
    )


def _checker(
    wire: _JudgedFields,
    interactive: bool,
    decode: Decode,
    maxima: Maxima,
    languages: frozenset[str],
) -> Checker:
    if wire.compare is not None and wire.checker is not None:
        raise SubmissionRejected(
            "conflicting_fields", "compare: give `checker` or `compare` (contract 1), not both"
        )
    chosen: BaseModel | None = wire.checker or wire.compare
    if isinstance(chosen, ProgramIn):
        return helper_program(chosen, "checker", decode, maxima, languages)
    if interactive and chosen is not None:
        raise SubmissionRejected(
            "conflicting_fields",
            "checker: with an interactor, the interactor judges (or a program checker after "
            "it); a built-in checker has no output to compare",
        )
    if chosen is None:
        return Comparison()
    params = chosen.model_dump(exclude_none=True)
    name = params.pop("name", None) or params.pop("mode")
    return Comparison(name, **params)


def _groups(
    given: list[GroupIn] | None, tests: Sequence[TestCase], max_score: float | None
) -> tuple[Group, ...]:
    if given is None:
        for index, test in enumerate(tests):
            if test.group is not None:
                raise SubmissionRejected(
                    "unknown_group", f"tests.{index}.group: {quoted(test.group)} names no group"
                )
        if max_score is not None:
            raise SubmissionRejected("points_mismatch", "max_score: there are no groups")
        return ()
    by_name: dict[str, GroupIn] = {}
    for index, group in enumerate(given):
        if group.name in by_name:
            raise SubmissionRejected(
                "duplicate_group", f"groups.{index}.name: {quoted(group.name)} is used twice"
            )
        if not math.isfinite(group.points):
            raise SubmissionRejected("invalid_value", f"groups.{index}.points: not finite")
        by_name[group.name] = group
    for index, test in enumerate(tests):
        if test.group is not None and test.group not in by_name:
            raise SubmissionRejected(
                "unknown_group", f"tests.{index}.group: {quoted(test.group)} names no group"
            )
    named = {test.group for test in tests if test.group is not None}
    for index, group in enumerate(given):
        if group.name not in named:
            raise SubmissionRejected(
                "empty_group", f"groups.{index}: group {quoted(group.name)} has no tests"
            )
        for dep_index, dep in enumerate(group.depends_on):
            if dep not in by_name:
                raise SubmissionRejected(
                    "unknown_group",
                    f"groups.{index}.depends_on.{dep_index}: {quoted(dep)} names no group",
                )
    _no_cycle(by_name)
    # every score the join adds up is at most this sum (each group's at most its points): a
    # finite sum keeps every score in the result a number JSON can carry
    total = sum(group.points for group in given)
    if not math.isfinite(total):
        raise SubmissionRejected(
            "invalid_value",
            f"groups: the points add up to {total} (past {sys.float_info.max:g}, the largest "
            "number a score can be)",
        )
    if max_score is not None and not math.isclose(total, max_score, rel_tol=1e-9, abs_tol=1e-9):
        raise SubmissionRejected(
            "points_mismatch",
            f"max_score: {max_score:g}, but the groups' points add up to {total:g}",
        )
    return tuple(
        Group(
            name=g.name,
            points=g.points,
            policy=g.policy,
            depends_on=tuple(g.depends_on),
            tests=tuple(i for i, t in enumerate(tests) if t.group == g.name),
        )
        for g in given
    )


def _no_cycle(groups: dict[str, GroupIn]) -> None:
    state: dict[str, str] = {}  # "open" while its dependencies are walked, then "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            loop = [*trail[trail.index(name) :], name]
            raise SubmissionRejected(
                "group_cycle", f"groups: {shorten(' -> '.join(loop))} depend on each other"
            )
        state[name] = "open"
        for dep in groups[name].depends_on:
            visit(dep, [*trail, name])
        state[name] = "done"

    for name in groups:
        visit(name, [])


def _limits(given: LimitsIn, maxima: Maxima) -> Limits:
    values = {}
    for name, field in Limits.model_fields.items():
        value = getattr(given, name)
        if value is None:
            value = field.default
        ceiling = getattr(maxima.limits, name)
        if value > ceiling:
            raise SubmissionRejected(
                "limit_too_high", f"limits.{name}: {value} is above the operator maximum {ceiling}"
            )
        values[name] = value
    return Limits(**values)
