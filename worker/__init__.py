"""Code-judging worker fleet: pooled, hardened Docker sandboxes behind Celery.

The rooms are packages, in layers: ``contract`` (what backends send and get back),
``producer`` (intake, admission, the canvas), ``queue`` (broker transport, fair queue, result
backend), ``pipeline`` (a run on a worker: tasks, compiling, the join's scoring, events,
runtime), ``judging`` (verdicts from sandbox runs), ``data`` (what Redis keeps: test data,
problems, compiled programs, languages available), ``sandbox`` (containers, supervisor
protocol, pools, fake pool), ``languages`` (the registry), ``images`` (catalogue, offline base,
BuildKit builds), ``keyspace`` (every Redis key and script), ``api`` (the HTTP API: ``runner
api``) and ``cli`` (the ``runner`` command). Each package's docstring says what it owns and
what it may import. Under them, the ground floor: ``client`` (the Python producer), ``app``
(the Celery app), ``settings``, ``redis_access`` (every Redis client's user, password and TLS),
``errors``, ``logs``, ``metrics``, ``outages``, ``messages``, ``programs`` and the registries
``checkers``, ``verdicts``, ``compare``.

Importing the package loads neither Celery, kombu nor Docker: the names that need them (the
producer's ``Client`` and ``Handle``, the worker's ``Judge``, ``open_pools``, ``FakePool``)
load their modules when first used, so a backend reading only the contract pays for none.
"""

from typing import TYPE_CHECKING, Any

from worker.checkers import BUILTINS
from worker.compare import CompareMode, Comparison, compare
from worker.contract import (
    CONTRACT_VERSION,
    Limits,
    Maxima,
    ProblemIn,
    ProblemResult,
    ProgramSpec,
    Submission,
    SubmissionIn,
    SubmissionResult,
    TestCase,
    TestResult,
    Verdict,
    parse_problem,
    parse_submission,
)
from worker.errors import (
    BaseImageError,
    BrokerError,
    ImageError,
    PoolClosed,
    ProtocolError,
    RunnerError,
    SandboxError,
    SandboxTimeout,
    SettingsError,
    SubmissionRejected,
)
from worker.languages import LANGUAGES, Language
from worker.programs import File, Program
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.client import Client, Handle
    from worker.judging.judge import Judge
    from worker.sandbox import open_pools
    from worker.sandbox.fake import FakePool

_LAZY = {
    "Client": "worker.client",
    "Handle": "worker.client",
    "Judge": "worker.judging.judge",
    "open_pools": "worker.sandbox",
    "FakePool": "worker.sandbox.fake",
}

__all__ = [
    "BUILTINS",
    "CONTRACT_VERSION",
    "LANGUAGES",
    "BaseImageError",
    "BrokerError",
    "Client",
    "CompareMode",
    "Comparison",
    "FakePool",
    "File",
    "Handle",
    "ImageError",
    "Judge",
    "Language",
    "Limits",
    "Maxima",
    "PoolClosed",
    "ProblemIn",
    "ProblemResult",
    "Program",
    "ProgramSpec",
    "ProtocolError",
    "RunnerError",
    "SandboxError",
    "SandboxTimeout",
    "Settings",
    "SettingsError",
    "Submission",
    "SubmissionIn",
    "SubmissionRejected",
    "SubmissionResult",
    "TestCase",
    "TestResult",
    "Verdict",
    "compare",
    "open_pools",
    "parse_problem",
    "parse_submission",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
