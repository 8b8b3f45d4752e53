"""The messages a run's tasks hand each other, typed, with one encoder: every message is a
frozen pydantic model, sent as ``message.model_dump(mode="json")`` (what Celery's JSON carries)
and read back with ``Model.model_validate``.

::

    RunMeta        what every task of a run needs: the program (by reference) and how it is
                   judged (JudgingMsg: limits, checker, interactor, groups); built by the
                   producer (worker.producer.workflow.meta_of), stored once per run, and carried
                   whole only by the compile step's message
    RunRef         the run's meta by reference ({"run": id}): what test and join messages
                   carry
    TestSpec       one test: its id, group, and data (inline, or a reference to stored data)
    CompileOutcome the compile step's answer: each program's key, or why there is none
    TestOutcome    what happened to one test: its result, or why it did not run

Nothing here decides a verdict for the run: the join does (worker.pipeline.scoring).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, TypeAlias

from pydantic import BaseModel, ConfigDict

from worker.contract import CompileResult, Group, Limits, TestResult, Verdict
from worker.contract.decoded import Source, Test


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def encode(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DataRef(_Message):
    ref: str  # sha256 of the bytes, stored by worker.data.storage.DataStore
    size: int


# bytes as a message carries them: inline base64, a reference, or none at all
Blob: TypeAlias = str | DataRef | None


class StoredProgram(Source[tuple[str, Blob]]):
    """A program as sent: each file's name and its bytes by reference
    (:func:`worker.data.storage.outline`), kept so that a test whose compiled program left the
    cache can compile it again."""

    static: bool = False  # built to run in any image (an interactor, beside the program)


class BuiltinChecker(_Message):
    kind: ClassVar[str] = "builtin"  # worker.kinds
    name: str
    abs_tol: float
    rel_tol: float


class JudgingMsg(_Message):
    """How the tests are judged: a submission's own, or its problem's."""

    limits: Limits
    checker: BuiltinChecker | StoredProgram
    interactor: StoredProgram | None = None
    groups: list[Group] = []


class RunMeta(_Message):
    run: str
    submission_id: str | None
    tenant: str | None
    program: StoredProgram
    args: list[str] = []
    stop_on_first_failure: bool = False
    judging: JudgingMsg
    sent_ms: int = 0  # the producer's clock when it sent the run (the queue-wait metric)

    def group_of(self, index: int) -> Group | None:
        return next((g for g in self.judging.groups if index in g.tests), None)


class RunRef(_Message):
    """A run's :class:`RunMeta` by reference: what a test or join message carries instead of
    the meta itself, which the producer stored once (``run_key(run, "meta")``) and each worker
    process reads once per run (:func:`worker.pipeline.tasks.meta_of_message`). The field is the
    meta's own ``run``, so whatever finds a task's run in its arguments finds it here too;
    ``digest`` names the stored meta's content (a run id used again names another meta: never the
    one a worker kept from before)."""

    run: str
    digest: str


def meta_json(meta: RunMeta) -> tuple[str, str]:
    """The meta as stored, and the digest a :class:`RunRef` names it by."""
    stored = meta.model_dump_json()
    return stored, meta_digest(stored.encode())


def meta_digest(stored: bytes) -> str:
    """The digest a :class:`RunRef` names a stored meta by."""
    return hashlib.sha256(stored).hexdigest()[:16]


class TestSpec(Test[Blob], _Message):
    """A test as a run's messages and a registered problem carry it: its data inline or by
    reference (:func:`worker.data.storage.outline`)."""


class CompileOutcome(_Message):
    """Keys of the compiled programs, or the verdict that ends the run before any test: ``CE``
    (the contestant's program), ``IE`` (ours), ``RJ`` (the checker or interactor, the problem
    setter's, did not compile, or a language the worker cannot judge: ``code`` says which)."""

    verdict: Verdict | None = None
    message: str = ""
    code: str = ""
    compile: CompileResult | None = None
    program: str | None = None
    checker: str | None = None
    interactor: str | None = None


class ProblemRecord(_Message):
    """A registered problem, as stored (worker.data.problems)."""

    name: str | None = None
    judging: JudgingMsg
    tests: list[TestSpec]


class TestOutcome(_Message):
    """One test task's report: the test's result as it ran, or ``skipped`` (why it did not)."""

    __test__ = False  # not a pytest class, despite the name
    index: int
    result: TestResult | None = None
    skipped: str = ""
