"""Code-judging worker fleet: pooled, hardened Docker sandboxes behind Celery.

The rooms: ``client`` (the Python producer), ``app``/``tasks``/``workflow`` (Celery: the
canvas, the exactly-once join), ``runtime`` (a worker process's pools and clients),
``contract`` (what backends send and get back), ``languages`` (registry),
``compare`` (output checking), ``judge`` (verdicts), ``sandbox`` (containers, supervisor
protocol, pools, fake pool), ``images`` (catalogue, offline base, BuildKit builds),
``settings``, ``errors``, ``logs``.
"""

from worker.client import Client, Handle
from worker.compare import CompareMode, Comparison, compare
from worker.contract import (
    CONTRACT_VERSION,
    Limits,
    Maxima,
    Submission,
    SubmissionIn,
    SubmissionResult,
    TestCase,
    TestResult,
    Verdict,
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
from worker.judge import Judge, Program
from worker.languages import LANGUAGES, Language
from worker.sandbox import open_pools
from worker.sandbox.fake import FakePool
from worker.settings import Settings

__all__ = [
    "CONTRACT_VERSION",
    "LANGUAGES",
    "BaseImageError",
    "BrokerError",
    "Client",
    "CompareMode",
    "Comparison",
    "FakePool",
    "Handle",
    "ImageError",
    "Judge",
    "Language",
    "Limits",
    "Maxima",
    "PoolClosed",
    "Program",
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
    "parse_submission",
]
