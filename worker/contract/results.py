"""The results the fleet writes itself, without judging: ``RJ`` and ``IE``; and the JSON
Schema of the wire models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from worker.contract.wire import (
    CONTRACT_VERSION,
    ErrorInfo,
    ProblemIn,
    ProblemResult,
    SubmissionIn,
    SubmissionResult,
)
from worker.errors import SubmissionRejected
from worker.verdicts import INTERNAL_ERROR, Verdict


def rejected(submission_id: Any, exc: SubmissionRejected) -> SubmissionResult:
    """The ``RJ`` result for a submission that broke the contract."""
    return _unjudged(submission_id, Verdict.RJ, ErrorInfo(code=exc.code, message=exc.message))


def internal_error(submission_id: Any, message: str) -> SubmissionResult:
    """The ``IE`` result for a submission the fleet failed to check: a fault of ours."""
    return _unjudged(submission_id, Verdict.IE, ErrorInfo(code=INTERNAL_ERROR, message=message))


def echoed_id(submission_id: Any) -> str | None:
    """A submission's ``id`` as a result echoes it: only a string, and only valid UTF-8, which
    every backend can read back (a lone surrogate would break strict JSON parsers)."""
    if not isinstance(submission_id, str):
        return None
    try:
        submission_id.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return submission_id


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
    models: tuple[tuple[str, type[BaseModel], str], ...] = (
        ("submission", SubmissionIn, "validation"),
        ("problem", ProblemIn, "validation"),
        ("result", SubmissionResult, "serialization"),
        ("problem-result", ProblemResult, "serialization"),
    )
    for name, model, mode in models:
        schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://code-runner-fleet/schema/v{CONTRACT_VERSION}/{name}.schema.json"
        schemas[f"{name}.schema.json"] = schema
    return schemas
