"""The decoded, validated form of a submission the fleet works with: frozen values, built only
by :mod:`worker.contract.decode` from a wire object that passed every check. A concept a run's
messages carry too is a pydantic model they share (:mod:`worker.messages`): :class:`Group` and
:class:`~worker.contract.limits.Limits` as they are, a program's fields as :class:`Source`
(sent with its files by reference), a test's as :class:`Test` (sent with its data inline or by
reference)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from worker.compare import Comparison
from worker.contract.limits import Limits, ceilings


@dataclass(frozen=True)
class Maxima:
    """Operator ceilings and additions a submission may not exceed (from Settings)."""

    limits: Limits = field(default_factory=ceilings)  # each limit's ceiling
    tests: int = 200
    source_kb: int = 256
    stdin_kb: int = 16_384
    files: int = 64
    args: int = 32
    # (language, option) pairs the operator allows besides each language's own allow-list
    extra_options: frozenset[tuple[str, str]] = frozenset()


Data = TypeVar("Data")


class Test(BaseModel, Generic[Data]):
    """One test, whichever stage holds it: the stage is the type of its data, bytes in hand
    once decoded (:class:`TestCase`), inline or by reference in a run's messages and a
    registered problem (:class:`worker.messages.TestSpec`, whose JSON names the answer
    ``expected``: what stored problems hold)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    __test__: ClassVar[bool] = False  # not a pytest class, despite the name
    id: str
    stdin: Data
    expected_stdout: Data | None = Field(alias="expected")  # the checker's answer file
    group: str | None = None


class TestCase(Test[bytes]):
    """A test as decoded: its input and answer in hand."""

    def __init__(
        self, id: str, stdin: bytes, expected_stdout: bytes | None, group: str | None = None
    ) -> None:
        # positional too, as the package has always taken it (worker.TestCase, with worker.Judge)
        super().__init__(id=id, stdin=stdin, expected_stdout=expected_stdout, group=group)


@dataclass(frozen=True)
class SourceFile:
    name: str
    data: bytes


File = TypeVar("File")


class Source(BaseModel, Generic[File]):
    """A program to compile once and run (the contestant's, a checker or an interactor) before
    it is built, whichever stage holds it: the stage is the type of its files, each one's bytes
    in hand (:class:`ProgramSpec`) or by reference (:class:`worker.messages.StoredProgram`).
    Once built it is another thing (:mod:`worker.programs` says why)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str] = "program"  # as a checker (worker.kinds)
    language: str
    files: tuple[File, ...]  # the entry among them, first
    entry: str
    options: tuple[str, ...] = ()


class ProgramSpec(Source[SourceFile]):
    """A program as decoded: its files' bytes, and the arguments it is run with."""

    args: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(len(f.data) for f in self.files)


class Group(BaseModel):
    """A scored group of tests, as decoded and as a run's messages carry it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    points: float
    policy: str  # "all" or "min"
    depends_on: tuple[str, ...]
    tests: tuple[int, ...]  # indices, in order


Checker: TypeAlias = "Comparison | ProgramSpec"  # a built-in comparison, or a program


@dataclass(frozen=True)
class Judging:
    """How a submission's tests are judged: its own, or a registered problem's."""

    tests: tuple[TestCase, ...]
    limits: Limits
    checker: Checker = field(default_factory=Comparison)
    interactor: ProgramSpec | None = None
    groups: tuple[Group, ...] = ()


@dataclass(frozen=True)
class Submission:
    id: str | None
    program: ProgramSpec
    judging: Judging
    stop_on_first_failure: bool = False
    tenant: str | None = None
    problem: str | None = None  # judging comes from this registered problem

    @property
    def language(self) -> str:
        return self.program.language

    @property
    def tests(self) -> tuple[TestCase, ...]:
        return self.judging.tests
