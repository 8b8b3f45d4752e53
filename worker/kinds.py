"""The kinds of checker: a registry keyed by kind (:data:`KINDS`) whose entries hold what each
kind does at every stage of a run, so that no stage tells the kinds apart by their types.

``builtin``
    A comparison of :mod:`worker.compare`, run in the worker on raw bytes: sent as a
    :class:`~worker.messages.BuiltinChecker`, nothing to store or compile; it judges the
    program's output against the expected one (after an interactor, which judged already,
    nothing is left for it).
``program``
    The problem setter's own program (testlib's protocol, :mod:`worker.checkers`): its files
    sent by reference (:class:`~worker.messages.StoredProgram`), compiled like the contestant's,
    run in a sandbox job of its own to judge each test (an interactor's output too).

A checker at each stage (decoded, sent, built to run) names its kind (``kind``); an interactor
is always a program.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from worker.checkers import Judgement, judge_builtin
from worker.compare import CompareMode, Comparison
from worker.contract import Judging, ProgramSpec, Verdict
from worker.messages import BuiltinChecker, JudgingMsg, RunMeta, StoredProgram
from worker.programs import Program


class Referee(Protocol):
    """What judging by a program needs: a sandbox job that runs it on one test's files."""

    def check(
        self, checker: Program, input_: bytes, output: bytes, answer: bytes | None
    ) -> Judgement: ...


Decoded = TypeVar("Decoded", Comparison, ProgramSpec)
Sent = TypeVar("Sent", BuiltinChecker, StoredProgram)
Built = TypeVar("Built", Comparison, Program)
Store = Callable[[ProgramSpec], StoredProgram]  # its files by reference, for the messages
Build = Callable[[StoredProgram], Program]  # compiled, or from the cache


class Kind(ABC, Generic[Decoded, Sent, Built]):
    name: str

    @abstractmethod
    def sent(self, checker: Decoded, store: Store) -> Sent:
        """The checker as a run's messages carry it."""

    @abstractmethod
    def source(self, checker: Decoded) -> ProgramSpec | None:
        """The program to store and compile, if any (as decoded)."""

    @abstractmethod
    def program(self, checker: Sent) -> StoredProgram | None:
        """The program to compile, if any (as sent)."""

    @abstractmethod
    def built(self, checker: Sent, build: Build) -> Built:
        """The checker ready to judge a test."""

    @abstractmethod
    def judge(
        self, checker: Built, referee: Referee, input_: bytes, output: bytes, answer: bytes | None
    ) -> Judgement:
        """A test's judgement from the program's output (it ended within its limits)."""

    @abstractmethod
    def after_interactor(
        self, checker: Built, referee: Referee, input_: bytes, output: bytes, answer: bytes | None
    ) -> Judgement | None:
        """A test's judgement of an interactor's ``output`` once it accepted; None: the
        interactor's stands."""

    @abstractmethod
    def identity(self, checker: Decoded) -> list[object]:
        """What a registered problem's id hashes of it (:func:`worker.data.problems.problem_id`)."""


class _Builtin(Kind[Comparison, BuiltinChecker, Comparison]):
    name = "builtin"

    def sent(self, checker: Comparison, store: Store) -> BuiltinChecker:
        return BuiltinChecker(
            name=str(checker.mode), abs_tol=checker.abs_tol, rel_tol=checker.rel_tol
        )

    def source(self, checker: Comparison) -> None:
        return None

    def program(self, checker: BuiltinChecker) -> None:
        return None

    def built(self, checker: BuiltinChecker, build: Build) -> Comparison:
        return Comparison(CompareMode(checker.name), checker.abs_tol, checker.rel_tol)

    def judge(
        self,
        checker: Comparison,
        referee: Referee,
        input_: bytes,
        output: bytes,
        answer: bytes | None,
    ) -> Judgement:
        if answer is None:  # nothing to compare with: a clean exit passes
            return Judgement(Verdict.AC, 1.0, "")
        return judge_builtin(answer, output, checker)

    def after_interactor(
        self,
        checker: Comparison,
        referee: Referee,
        input_: bytes,
        output: bytes,
        answer: bytes | None,
    ) -> None:
        return None

    def identity(self, checker: Comparison) -> list[object]:
        return [repr(checker)]


class _Program(Kind[ProgramSpec, StoredProgram, Program]):
    name = "program"

    def sent(self, checker: ProgramSpec, store: Store) -> StoredProgram:
        return store(checker)

    def source(self, checker: ProgramSpec) -> ProgramSpec:
        return checker

    def program(self, checker: StoredProgram) -> StoredProgram:
        return checker

    def built(self, checker: StoredProgram, build: Build) -> Program:
        return build(checker)

    def judge(
        self, checker: Program, referee: Referee, input_: bytes, output: bytes, answer: bytes | None
    ) -> Judgement:
        return referee.check(checker, input_, output, answer)

    def after_interactor(
        self, checker: Program, referee: Referee, input_: bytes, output: bytes, answer: bytes | None
    ) -> Judgement:
        return self.judge(checker, referee, input_, output, answer)

    def identity(self, checker: ProgramSpec) -> list[object]:
        files: list[object] = [part for f in checker.files for part in (f.name, f.data)]
        return [checker.language, checker.entry, *checker.options, *files]


KINDS: dict[str, Kind[Any, Any, Any]] = {kind.name: kind for kind in (_Builtin(), _Program())}
# a checker at any stage
CheckerForm = Comparison | ProgramSpec | BuiltinChecker | StoredProgram | Program


def kind_of(checker: CheckerForm) -> Kind[Any, Any, Any]:
    return KINDS[checker.kind]


def sources(judging: Judging) -> dict[str, ProgramSpec]:
    """A decoded judging's programs to store and compile, by role (checker, interactor)."""
    found = {"checker": kind_of(judging.checker).source(judging.checker)}
    found["interactor"] = judging.interactor
    return {role: program for role, program in found.items() if program is not None}


def programs(judging: JudgingMsg) -> dict[str, StoredProgram]:
    """A sent judging's programs to compile, by role (checker, interactor)."""
    found = {"checker": kind_of(judging.checker).program(judging.checker)}
    found["interactor"] = judging.interactor
    return {role: program for role, program in found.items() if program is not None}


def run_programs(meta: RunMeta) -> list[tuple[str, StoredProgram]]:
    """A run's programs to compile, by role: the contestant's first, then its checker and
    interactor when they are programs."""
    return [("program", meta.program), *programs(meta.judging).items()]
