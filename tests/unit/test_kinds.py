"""The checker kinds' registry: every form of a checker names a registered kind, and each kind
does at every stage what its entry says."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.fleet import parsed
from worker import kinds
from worker.compare import CompareMode, Comparison
from worker.contract import ProgramSpec
from worker.data.storage import stored_program
from worker.messages import BuiltinChecker, StoredProgram
from worker.producer.workflow import judging_of
from worker.programs import Program

PROGRAM = {"language": "c", "source": "int main(void) { return 0; }\n"}


def store(program: ProgramSpec, static: bool) -> StoredProgram:
    return stored_program(program, {}, static)


def judged(**fields: Any) -> dict[str, Any]:
    return {"language": "python", "source": "print(1)", "tests": [{"stdin": "1"}], **fields}


@pytest.mark.parametrize("form", [Comparison, ProgramSpec, BuiltinChecker, StoredProgram, Program])
def test_every_form_of_a_checker_names_a_registered_kind(form: type) -> None:
    assert form.kind in kinds.KINDS


def test_a_builtin_comparison_is_the_same_once_sent_and_built() -> None:
    comparison = Comparison(CompareMode.FLOAT, 0.5, 0.25)
    kind = kinds.kind_of(comparison)
    sent = kind.sent(comparison, lambda program: pytest.fail("a comparison stores nothing"))
    assert kind.program(sent) is None
    assert kind.built(sent, lambda program: pytest.fail("nor compiles anything")) == comparison


@pytest.mark.parametrize(
    ("fields", "roles"),
    [
        ({}, []),
        ({"checker": {"name": "lines"}}, []),
        ({"checker": PROGRAM}, ["checker"]),
        ({"interactor": PROGRAM}, ["interactor"]),
        ({"interactor": PROGRAM, "checker": PROGRAM}, ["checker", "interactor"]),
    ],
)
def test_the_programs_to_compile_are_the_program_kinds(
    fields: dict[str, Any], roles: list[str]
) -> None:
    judging = parsed(judged(**fields)).judging
    assert list(kinds.sources(judging)) == roles
    sent = judging_of(judging, store)
    assert list(kinds.programs(sent)) == roles
    assert all(p.static == (role == "interactor") for role, p in kinds.programs(sent).items())
