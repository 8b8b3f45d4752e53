"""The submission contract, version 1.1: what other backends send and what they get back.

The rooms: ``limits`` (a test's limits, one model whose fields the wire form and the
operator's ceilings are read from), ``wire`` (the pydantic models: the single source of the
JSON Schema files in ``docs/schema/`` and of docs/contract.md), ``decode`` (a wire object to
the ``decoded`` form the fleet works with, or :class:`~worker.errors.SubmissionRejected` with a
precise code and message; programs in ``program``, shared checks in ``fields``) and
``results`` (the ``RJ`` and ``IE`` results, the schemas). Contract 1.1 is additive: a
contract-1 submission gets the result it always got, field for field.

May import: worker.checkers, worker.compare, worker.errors, worker.languages,
worker.verdicts.

Never imports: celery, kombu, docker, redis.
"""

from worker.contract.decode import parse_problem, parse_submission
from worker.contract.decoded import (
    Checker,
    Group,
    Judging,
    Maxima,
    ProgramSpec,
    SourceFile,
    Submission,
    TestCase,
)
from worker.contract.limits import Limits
from worker.contract.results import echoed_id, internal_error, json_schemas, rejected
from worker.contract.wire import (
    CONTRACT_VERSION,
    CompileResult,
    ErrorInfo,
    GroupResult,
    ProblemIn,
    ProblemResult,
    SubmissionIn,
    SubmissionResult,
    TestResult,
)
from worker.verdicts import Verdict

__all__ = [
    "CONTRACT_VERSION",
    "Checker",
    "CompileResult",
    "ErrorInfo",
    "Group",
    "GroupResult",
    "Judging",
    "Limits",
    "Maxima",
    "ProblemIn",
    "ProblemResult",
    "ProgramSpec",
    "SourceFile",
    "Submission",
    "SubmissionIn",
    "SubmissionResult",
    "TestCase",
    "TestResult",
    "Verdict",
    "echoed_id",
    "internal_error",
    "json_schemas",
    "parse_problem",
    "parse_submission",
    "rejected",
]
