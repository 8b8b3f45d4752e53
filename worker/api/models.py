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
    state: str = Field(description="waiting (not final yet), pending, delivered or failed")
    attempts: int
    last: str = Field(description="the last call's outcome, e.g. HTTP 200")


class SubmissionStatus(BaseModel):
    id: str
    state: str = Field(description="queued, running or done")
    total: int | None = Field(description="tests in the submission, when known")
    finished: int = Field(description="tests finished so far")
    tests: list[dict[str, Any]] = Field(
        description="{index, result} of each test finished so far, while not done (then the "
        "result has every test)"
    )
    result: SubmissionResult | None = Field(description="the final result, once done")
    webhook: WebhookStatus | None


class ErrorBody(BaseModel):
    error: dict[str, str] = Field(description="{code, message}")
