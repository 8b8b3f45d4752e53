"""The API's own request and response models, beside the contract's: the OpenAPI document is
generated from them (the submission's own fields come from :mod:`worker.contract`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from worker.contract import SubmissionIn, SubmissionResult


class ApiSubmission(SubmissionIn):
    """A submission as contract 1.1 has it, plus where to POST the result when it is final."""

    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL the final result is POSTed to, signed (docs/api.md); public "
        "addresses only unless the operator allows others.",
    )


class WebhookStatus(BaseModel):
    url: str
    id: str = Field(description="its webhook-id: msg_ and the submission id, on every attempt")
    state: str = Field(description="waiting (not final yet), pending, delivered or failed")
    attempts: int
    last: str = Field(description="the last call's outcome, e.g. HTTP 200")


class SubmissionStatus(BaseModel):
    id: str
    state: str = Field(
        description="queued, running, done, or expired (final, its result no longer kept "
        "while its webhook's state still is)"
    )
    total: int | None = Field(description="tests in the submission, when known")
    finished: int = Field(description="tests finished so far")
    tests: list[dict[str, Any]] = Field(
        description="{index, result} of each test finished so far, while not done (then the "
        "result has every test)"
    )
    result: SubmissionResult | None = Field(description="the final result, once done")
    webhook: WebhookStatus | None


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. rate_limited (docs/api.md)")
    message: str = Field(description="for people: what was refused and why")


class ErrorBody(BaseModel):
    error: ErrorDetail


class SubmissionAccepted(BaseModel):
    """What POST answers at once: where to follow the submission."""

    id: str
    state: str = Field(description="queued")
    status_url: str
    events_url: str


class BatchItem(BaseModel):
    """One submission of a batch: accepted (its id and links), or refused as the single route
    would have refused it (its status, and the error, or the RJ result for a 422)."""

    status: int = Field(description="202, or the status POST /v1/submissions would answer")
    id: str | None = None
    state: str | None = None
    status_url: str | None = None
    events_url: str | None = None
    error: ErrorDetail | None = None
    result: SubmissionResult | None = Field(None, description="the RJ result of a 422")


class BatchAnswer(BaseModel):
    submissions: list[BatchItem] = Field(description="in the order sent")


class SubmissionSummary(BaseModel):
    id: str
    state: str = Field(description="queued, running or done")
    created_ms: int = Field(description="when it was accepted, unix milliseconds")
    verdict: str | None = Field(description="once done")
    passed: int | None
    total: int | None
    status_url: str


class SubmissionPage(BaseModel):
    submissions: list[SubmissionSummary] = Field(description="newest first")
    next: str | None = Field(description="the next page's URL, null on the last page")


class LimitRange(BaseModel):
    default: int
    max: int = Field(description="the operator's ceiling (RUNNER_MAX_*)")


class CompilerOptions(BaseModel):
    standards: list[str] = Field(description="what -std= may name")
    patterns: list[str] = Field(description="regular expressions a whole option may match")
    operator: list[str] = Field(description="exact options the operator allows besides")
    max_options: int
    max_option_chars: int


class LanguageInfo(BaseModel):
    name: str = Field(description="what `language` names it by")
    aliases: list[str] = Field(description="other names `language` may give, any case")
    display: str
    version: str
    source_file: str = Field(description="where a lone `source` is written")
    sources: list[str] = Field(description="suffixes of its source files")
    compiled: bool = Field(description="a compile step builds a program before the tests")
    syntax_checked: bool = Field(
        description="its sources are syntax-checked once before the tests (a syntax error is "
        "CE), but nothing is compiled"
    )
    compiler_options: CompilerOptions | None = Field(
        description="what `compiler_options` may hold; null: the language takes none"
    )
    limits: dict[str, LimitRange] = Field(
        description="each of the submission's `limits`: its default and the operator's ceiling"
    )
    max_tests: int
    max_source_kb: int
    max_stdin_kb: int
    max_files: int
    healthy: bool | None = Field(
        description="whether a worker of the fleet can judge it now (its self-test passed "
        "there); null when no worker has said lately (a fleet starting)"
    )
    unavailable: str | None = Field(
        description="when no worker can: why (its submissions are refused with RJ "
        "language_unavailable)"
    )
