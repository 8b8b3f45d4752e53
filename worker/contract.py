"""The submission contract, version 1: what other backends send and what they get back.

The wire models (:class:`SubmissionIn`, :class:`SubmissionResult` and their parts) are the
single source of the JSON Schema files in ``docs/schema/`` and of ``docs/contract.md``.
:func:`parse_submission` turns a wire object into a decoded :class:`Submission` (bytes, limits
filled in) or raises :class:`~worker.errors.SubmissionRejected` with a precise code and message;
callers turn that into an ``RJ`` result, never an exception into the void.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.compare import CompareMode, Comparison
from worker.errors import SubmissionRejected

CONTRACT_VERSION = 1


class Verdict(enum.StrEnum):
    AC = "AC"  # accepted
    WA = "WA"  # wrong answer
    TLE = "TLE"  # CPU or wall time limit exceeded
    MLE = "MLE"  # memory limit exceeded (peak over the limit, or killed by the memory cgroup)
    OLE = "OLE"  # output limit exceeded
    RE = "RE"  # runtime error: non-zero exit or killed by a signal
    CE = "CE"  # compile error (also Python and JavaScript syntax errors)
    IE = "IE"  # internal error of the judge: not the submission's fault
    SK = "SK"  # skipped after an earlier failure (stop_on_first_failure)
    RJ = "RJ"  # rejected: the submission breaks the contract


# Contract defaults (documented in docs/contract.md); operators set the maxima (Settings).
DEFAULT_CPU_TIME_MS = 2000
DEFAULT_WALL_TIME_MS = 5000
DEFAULT_MEMORY_MB = 256
DEFAULT_OUTPUT_KB = 1024
DEFAULT_PROCESSES = 8


class _Wire(BaseModel):
    """Input: strict, so "100" is not taken for 100 and a typo'd field is an error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Out(BaseModel):
    """Output: read back from JSON, where verdicts arrive as plain strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsIn(_Wire):
    cpu_time_ms: int | None = Field(
        None, ge=1, description=f"CPU time, default {DEFAULT_CPU_TIME_MS}"
    )
    wall_time_ms: int | None = Field(
        None, ge=1, description=f"Wall-clock time, default {DEFAULT_WALL_TIME_MS}"
    )
    memory_mb: int | None = Field(
        None, ge=1, description=f"Peak memory, default {DEFAULT_MEMORY_MB}"
    )
    output_kb: int | None = Field(
        None, ge=1, description=f"Standard output, default {DEFAULT_OUTPUT_KB}"
    )
    processes: int | None = Field(
        None, ge=1, description=f"Processes and threads, default {DEFAULT_PROCESSES}"
    )


class CompareIn(_Wire):
    mode: Literal["tokens", "exact", "lines", "float"] = "tokens"
    abs_tol: float | None = Field(None, ge=0)
    rel_tol: float | None = Field(None, ge=0)


class TestIn(_Wire):
    __test__: ClassVar[bool] = False  # not a pytest class, despite the name
    id: str | None = Field(None, max_length=128, description="Echoed back; default its index")
    stdin: str = ""
    expected_stdout: str | None = Field(
        None, description="Absent: the test passes when the program exits cleanly"
    )


class SubmissionIn(_Wire):
    """A submission as sent on the wire (the one argument of the task ``runner.submit``)."""

    id: str | None = Field(None, max_length=256)
    tenant: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Who submits (a contest, a course, a customer): each tenant's tests in "
        "flight and stored test data are capped, so one tenant's flood does not stall others. "
        "Default: the tenant `default`",
    )
    language: str = Field(description="python, c, cpp or javascript")
    source: str
    tests: list[TestIn]
    limits: LimitsIn = LimitsIn()
    compare: CompareIn = CompareIn()
    stop_on_first_failure: bool = False
    encoding: Literal["utf-8", "base64"] = "utf-8"


class ErrorInfo(_Out):
    code: str
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
    verdict: Verdict
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


# ---------------------------------------------------------------------------------------------
# Decoded, validated form used inside the fleet.


@dataclass(frozen=True)
class Limits:
    cpu_time_ms: int = DEFAULT_CPU_TIME_MS
    wall_time_ms: int = DEFAULT_WALL_TIME_MS
    memory_mb: int = DEFAULT_MEMORY_MB
    output_kb: int = DEFAULT_OUTPUT_KB
    processes: int = DEFAULT_PROCESSES


@dataclass(frozen=True)
class Maxima:
    """Operator ceilings a submission may not exceed (from Settings)."""

    cpu_time_ms: int = 10_000
    wall_time_ms: int = 30_000
    memory_mb: int = 512
    output_kb: int = 16_384
    processes: int = 64
    tests: int = 200
    source_kb: int = 256
    stdin_kb: int = 16_384


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class, despite the name
    id: str
    stdin: bytes
    expected_stdout: bytes | None


@dataclass(frozen=True)
class Submission:
    id: str | None
    language: str
    source: bytes
    tests: tuple[TestCase, ...]
    limits: Limits
    comparison: Comparison
    stop_on_first_failure: bool
    tenant: str | None = None


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
}

# How much of a field path a message quotes: a path deep into a nested value, or a field name
# megabytes long, must not make the message itself huge.
_SHOWN = 200

# A path as (key, parent path), built while walking a submission: extending it costs the same
# at any depth, so a value nested a million deep is walked in linear time.
_Path: TypeAlias = "tuple[str | int, _Path] | None"


def parse_submission(raw: Any, maxima: Maxima, languages: frozenset[str]) -> Submission:
    """Validate and decode a wire submission, or raise :class:`SubmissionRejected`."""
    if not isinstance(raw, dict):
        raise SubmissionRejected(
            "not_an_object", f"submission must be a JSON object, got {_json_type(raw)}"
        )
    _check_json(raw)
    try:
        wire = SubmissionIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        code = _PYDANTIC_CODES.get(first["type"], "wrong_type")
        raise SubmissionRejected(code, f"{_where(first['loc'])}: {first['msg']}") from None
    if wire.language not in languages:
        raise SubmissionRejected(
            "unknown_language",
            f"language {wire.language!r} is not one of {', '.join(sorted(languages))}",
        )
    if not wire.tests:
        raise SubmissionRejected("no_tests", "tests: at least one test is required")
    if len(wire.tests) > maxima.tests:
        raise SubmissionRejected(
            "too_many_tests", f"tests: {len(wire.tests)} tests, at most {maxima.tests} allowed"
        )
    decode = _decoder(wire.encoding)
    source = decode(wire.source, "source")
    if len(source) > maxima.source_kb * 1024:
        raise SubmissionRejected(
            "source_too_large",
            f"source: {len(source)} bytes, at most {maxima.source_kb} KB allowed",
        )
    tests = []
    seen: set[str] = set()
    for index, test in enumerate(wire.tests):
        test_id = test.id if test.id is not None else str(index)
        if test_id in seen:
            raise SubmissionRejected(
                "duplicate_test_id", f"tests.{index}.id: {test_id!r} is used twice"
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
        tests.append(TestCase(test_id, stdin, expected))
    given = {"abs_tol": wire.compare.abs_tol, "rel_tol": wire.compare.rel_tol}
    tolerances = {name: value for name, value in given.items() if value is not None}
    return Submission(
        id=wire.id,
        language=wire.language,
        source=source,
        tests=tuple(tests),
        limits=_limits(wire.limits, maxima),
        comparison=Comparison(CompareMode(wire.compare.mode), **tolerances),
        stop_on_first_failure=wire.stop_on_first_failure,
        tenant=wire.tenant,
    )


def _limits(given: LimitsIn, maxima: Maxima) -> Limits:
    values = {}
    for name, default in Limits.__dataclass_fields__.items():
        value = getattr(given, name)
        if value is None:
            value = default.default
        ceiling = getattr(maxima, name)
        if value > ceiling:
            raise SubmissionRejected(
                "limit_too_high", f"limits.{name}: {value} is above the operator maximum {ceiling}"
            )
        values[name] = value
    return Limits(**values)


def _check_json(raw: dict[str, Any]) -> None:
    """Reject, wherever they are (known fields or not), what JSON cannot carry but Python's
    decoder lets through: non-finite numbers (``1e999``, ``Infinity``, ``NaN``) and field
    names that are not UTF-8. The models would misname the first (an infinite limit is "not a
    valid integer", NaN in an unknown field "not permitted") and cannot place the second."""
    # A loop over a stack of containers, not recursion: nesting has no bound here. Scalars are
    # checked in place, so a long array costs a few type tests per element.
    pending: list[tuple[dict[Any, Any] | list[Any], _Path]] = [(raw, None)]
    while pending:
        container, path = pending.pop()
        nested: list[tuple[dict[Any, Any] | list[Any], _Path]] = []
        if isinstance(container, dict):
            for key in container:
                if isinstance(key, str) and not _is_utf8(key):
                    raise SubmissionRejected(
                        "invalid_utf8",
                        f"{_spell(path)}: field name {_shorten(repr(key))} is not valid UTF-8",
                    )
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in items:
            if isinstance(value, dict | list):
                nested.append((value, (key, path)))
            elif isinstance(value, float) and not math.isfinite(value):
                raise SubmissionRejected(
                    "invalid_value",
                    f"{_spell((key, path))}: {value} is not a finite number "
                    "(JSON has no infinity or NaN)",
                )
            # Only Python's unbounded ints hold such a number: other languages' JSON parsers
            # read it as a double, so as infinity; and str() of it fails past 4300 digits.
            elif isinstance(value, int) and abs(value) > sys.float_info.max:
                raise SubmissionRejected(
                    "invalid_value",
                    f"{_spell((key, path))}: an integer of {value.bit_length()} bits is not a "
                    "finite number (beyond the range of a double)",
                )
        pending.extend(reversed(nested))  # the first nested value is looked at first


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _spell(path: _Path) -> str:
    parts: list[str | int] = []
    while path is not None:
        key, path = path
        parts.append(key)
    return _where(reversed(parts))


def _where(loc: Iterable[str | int]) -> str:
    """A field path as messages show it, e.g. ``tests.0.stdin``; ``submission`` for the whole."""
    return _shorten(".".join(str(part) for part in loc) or "submission")


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type: backends in any language read the message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _decoder(encoding: str) -> Callable[[str, str], bytes]:
    def utf8(text: str, where: str) -> bytes:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # lone surrogates survive JSON decoding but are not UTF-8
            raise SubmissionRejected("invalid_utf8", f"{where}: not valid UTF-8") from None

    def b64(text: str, where: str) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SubmissionRejected("invalid_base64", f"{where}: not valid base64") from None

    return b64 if encoding == "base64" else utf8


def rejected(submission_id: Any, exc: SubmissionRejected) -> SubmissionResult:
    """The ``RJ`` result for a submission that broke the contract."""
    return _unjudged(submission_id, Verdict.RJ, ErrorInfo(code=exc.code, message=exc.message))


def internal_error(submission_id: Any, message: str) -> SubmissionResult:
    """The ``IE`` result for a submission the fleet failed to check: a fault of ours."""
    return _unjudged(submission_id, Verdict.IE, ErrorInfo(code="internal_error", message=message))


def echoed_id(submission_id: Any) -> str | None:
    """A submission's ``id`` as a result echoes it: only a string, and only valid UTF-8, which
    every backend can read back (a lone surrogate would break strict JSON parsers)."""
    return submission_id if isinstance(submission_id, str) and _is_utf8(submission_id) else None


def _unjudged(submission_id: Any, verdict: Verdict, error: ErrorInfo) -> SubmissionResult:
    return SubmissionResult(
        submission_id=echoed_id(submission_id),
        verdict=verdict,
        passed=0,
        total=0,
        tests=[],
        error=error,
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of the wire models by file name (docs/schema/ holds them; a test checks)."""
    schemas = {}
    for name, model in (("submission", SubmissionIn), ("result", SubmissionResult)):
        schema = model.model_json_schema(
            mode="validation" if model is SubmissionIn else "serialization"
        )
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://code-runner-fleet/schema/v{CONTRACT_VERSION}/{name}.schema.json"
        schemas[f"{name}.schema.json"] = schema
    return schemas
