"""The wire models: what backends send (``*In``) and get back. They are the single source of the
JSON Schema files in ``docs/schema/`` and of docs/contract.md's field tables; the checkers,
languages and verdicts they name come from their registries."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeAlias, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from worker.checkers import BUILTINS
from worker.contract.limits import wire_limits
from worker.languages import LANGUAGES
from worker.verdicts import CHECKER_FAILED, IE_CODES, LANGUAGE_UNAVAILABLE, MEANINGS, Verdict

CONTRACT_VERSION = "1.1"

LANGUAGE_NAMES = (
    "; ".join(
        f"{lang.name} (or {', '.join(lang.aliases)})" if lang.aliases else lang.name
        for lang in LANGUAGES.values()
    )
    + f". Any case. One no worker of the fleet can judge now (its self-test failed) is refused: "
    f"RJ {LANGUAGE_UNAVAILABLE}."
)
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"  # tenants, groups


def _absent(value: Any) -> bool:
    return value is None


# A field contract 1.1 added to a result: left out when it has nothing to say, so that a
# contract-1 submission gets the very result it got before.
def _added(description: str) -> Any:
    return Field(None, description=description, exclude_if=_absent)


class _Wire(BaseModel):
    """Input: strict, so "100" is not taken for 100 and a typo'd field is an error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Out(BaseModel):
    """Output: read back from JSON, where verdicts arrive as plain strings. No number in it may
    be infinite or NaN, which JSON cannot carry (intake refuses points that could add up to
    one); a result that would hold one is a bug, caught here rather than sent."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# its fields are Limits', each optional (worker.contract.limits)
class LimitsIn(wire_limits(_Wire)):  # type: ignore[misc]
    pass


class CompareIn(_Wire):
    """Contract 1's way of naming a built-in checker (``checker`` says the same, and more)."""

    mode: Literal[tuple(BUILTINS)] = "tokens"  # type: ignore[valid-type]
    abs_tol: float | None = Field(None, ge=0)
    rel_tol: float | None = Field(None, ge=0)


class FileIn(_Wire):
    name: str = Field(
        description="A relative path: up to 8 parts of A-Z a-z 0-9 . _ - (not . or ..) "
        "joined by /, at most 200 characters"
    )
    content: str
    encoding: Literal["utf-8", "base64"] | None = Field(
        None, description="Default: the submission's `encoding`"
    )


class _ProgramFields(_Wire):
    source: str | None = Field(None, description="The entry file's content")
    files: list[FileIn] | None = Field(
        None, description="More files (headers, modules, translation units), or all of them"
    )
    entry: str | None = Field(
        None,
        description="The file that is run (interpreted) or holds main (compiled). Default: "
        "the language's source file name (main.py, main.c, main.cpp, main.js)",
    )
    compiler_options: list[str] | None = Field(
        None, description="From the language's allow-list (docs/contract.md)"
    )


class ProgramIn(_ProgramFields):
    """A checker's or an interactor's program."""

    language: str = Field(description=LANGUAGE_NAMES)


def _builtin_model(name: str) -> type[BaseModel]:
    builtin = BUILTINS[name]
    fields: dict[str, Any] = {
        "name": (Literal[name], Field(description=builtin.summary)),
    }
    fields.update({param: (float | None, Field(None, ge=0)) for param in builtin.params})
    return create_model(f"Checker_{name}", __base__=_Wire, **fields)


def _checker_kind(value: Any) -> str:
    name = value.get("name", "program") if isinstance(value, dict) else getattr(value, "name", None)
    return name if isinstance(name, str) else "program"


BUILTIN_MODELS = {name: _builtin_model(name) for name in BUILTINS}
_CHECKERS = (
    Annotated[ProgramIn, Tag("program")],
    *(Annotated[model, Tag(name)] for name, model in BUILTIN_MODELS.items()),
)
CheckerIn: TypeAlias = Annotated[Union[_CHECKERS], Discriminator(_checker_kind)]  # type: ignore[valid-type]  # noqa: UP007


class TestIn(_Wire):
    __test__: ClassVar[bool] = False  # not a pytest class, despite the name
    id: str | None = Field(None, max_length=128, description="Echoed back; default its index")
    stdin: str = Field("", description="With an interactor: the interactor's input file")
    expected_stdout: str | None = Field(
        None,
        description="The checker's (or interactor's) answer file. Absent: the test passes when "
        "the program exits cleanly (unless a program checker decides)",
    )
    group: str | None = Field(None, description="The name of the group it belongs to")


class GroupIn(_Wire):
    name: str = Field(pattern=NAME)
    points: float = Field(ge=0, description="What the group is worth")
    policy: Literal["all", "min"] = Field(
        "all",
        description="all: its points when every test passes, else 0; min: its points times "
        "the least of its tests' scores (a checker's partial points count)",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="Groups that must get all their points, else this one's tests are SK",
    )


class _JudgedFields(_Wire):
    """What a problem holds, and a submission without ``problem``."""

    limits: LimitsIn = LimitsIn()
    compare: CompareIn | None = Field(None, description="Contract 1; default tokens")
    checker: CheckerIn | None = Field(
        None, description="A built-in checker by name, or a program (testlib protocol)"
    )
    interactor: ProgramIn | None = Field(
        None, description="Talks to the program through its stdin and stdout (C or C++)"
    )
    groups: list[GroupIn] | None = Field(None, description="Scored groups (subtasks)")
    max_score: float | None = Field(
        None, ge=0, description="When given, must equal the sum of the groups' points"
    )


class SubmissionIn(_ProgramFields, _JudgedFields):
    """A submission as sent on the wire (the one argument of the task ``runner.submit``)."""

    id: str | None = Field(None, max_length=256)
    tenant: str | None = Field(
        None,
        pattern=NAME,
        description="Who submits (a contest, a course, a customer): each tenant's tests in "
        "flight and stored test data are capped, and the fleet shares its slots fairly "
        "between tenants. Default: the tenant `default`",
    )
    language: str = Field(description=LANGUAGE_NAMES)
    args: list[str] | None = Field(None, description="The program's command-line arguments")
    tests: list[TestIn] | None = Field(None, description="Required unless `problem` is given")
    problem: str | None = Field(
        None,
        description="A registered problem's id: its tests, limits, checker, interactor and "
        "groups, none of which the submission may then give",
    )
    stop_on_first_failure: bool = False
    encoding: Literal["utf-8", "base64"] = "utf-8"


class ProblemIn(_JudgedFields):
    """A problem, registered once and judged by id (the argument of ``runner.problem``)."""

    name: str | None = Field(None, max_length=256, description="For people; not part of its id")
    tests: list[TestIn]
    encoding: Literal["utf-8", "base64"] = "utf-8"


# --- results ----------------------------------------------------------------------------------


class ErrorInfo(_Out):
    code: str = Field(
        description="With RJ, why it was refused (docs/contract.md lists the codes); with IE, "
        + "; ".join(f"{code}: {meaning}" for code, meaning in IE_CODES.items())
    )
    message: str


class CompileResult(_Out):
    exit_code: int
    output: str
    output_truncated: bool = False
    time_ms: int
    cached: bool = False


class TestResult(_Out):
    __test__: ClassVar[bool] = False  # not a pytest class, despite the name
    id: str
    verdict: Verdict = Field(description="; ".join(f"{v}: {m}" for v, m in MEANINGS.items()))
    cpu_time_ms: int = 0
    wall_time_ms: int = 0
    memory_kb: int = 0
    exit_code: int | None = None
    signal: str | None = Field(None, description="Signal name, e.g. SIGSEGV")
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    message: str = ""
    score: float | None = _added("Its fraction of its points, 0 to 1 (scored tests)")
    group: str | None = _added("Its group")
    # Only a problem's own program can fail this way, and contract 1 has none: a contract-1
    # result never carries it. An IE test without it is the fleet's fault (internal_error).
    error_code: Literal[CHECKER_FAILED] | None = _added(  # type: ignore[valid-type]
        f"With IE only, whose fault it is: {CHECKER_FAILED}, {IE_CODES[CHECKER_FAILED]}; "
        "absent when the fleet failed"
    )


class GroupResult(_Out):
    name: str
    verdict: Verdict = Field(
        description="AC with all its points, SK when a group it depends "
        "on did not pass, else the verdict of its first test that failed"
    )
    score: float
    max_score: float
    tests: list[str]


class ProblemResult(_Out):
    """The Celery result of ``runner.problem``."""

    problem: str | None = Field(description="The id to submit against; null when refused")
    name: str | None = None
    tests: int = Field(description="Tests registered")
    error: ErrorInfo | None = Field(None, description="Why it was refused (RJ codes)")


class SubmissionResult(_Out):
    """The Celery result of ``runner.submit``."""

    contract: Literal[1] = 1
    submission_id: str | None
    verdict: Verdict
    passed: int
    total: int
    compile: CompileResult | None = None
    tests: list[TestResult]
    max_cpu_time_ms: int = 0
    max_memory_kb: int = 0
    error: ErrorInfo | None = None
    score: float | None = _added("Points scored: the sum of the groups' (with groups)")
    max_score: float | None = _added("Points to be had: the sum of the groups' points")
    groups: list[GroupResult] | None = _added("Each group's result (with groups)")
