"""The Python producer: validate a submission here, build its chord here, send it, follow it.

::

    client = Client()
    handle = client.submit({"language": "python", "source": "...", "tests": [...]})
    for test in handle.progress():      # as tests finish
        ...
    result = handle.result(timeout=60)  # SubmissionResult

Invalid submissions never leave the process: :meth:`Client.submit` returns a handle whose
result is the ``RJ`` result at once. :meth:`Client.register_problem` registers a problem once,
to submit against by id. Backends in other languages send the one task
``runner.submit`` instead (see docs/contract.md); :meth:`Client.send` does exactly that.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import celery.exceptions
import redis
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import KombuError

from worker.app import app as default_app
from worker.app import publish_retry_policy
from worker.contract import (
    ErrorInfo,
    ProblemIn,
    ProblemResult,
    SubmissionIn,
    SubmissionResult,
    TestResult,
    parse_problem,
    parse_submission,
    rejected,
)
from worker.errors import BrokerError, NotSent, SubmissionRejected
from worker.keyspace import run_key
from worker.languages import LANGUAGES
from worker.producer.intake import Intake
from worker.producer.workflow import PROBLEM_TASK, SUBMIT_TASK
from worker.settings import Settings


class Handle:
    """A sent submission: its id, its live progress and its final result."""

    def __init__(
        self,
        app: Celery,
        redis_: redis.Redis,
        async_result: AsyncResult | None,
        run_id: str,
        total: int,
        ready: SubmissionResult | None = None,
    ) -> None:
        self._app = app
        self._redis = redis_
        self._async = async_result
        self.run_id = run_id
        self.total = total
        self._ready = ready

    @property
    def refusal(self) -> SubmissionResult | None:
        """The ``RJ`` result of a submission refused before anything was sent, else None."""
        return self._ready if self._async is None else None

    @property
    def id(self) -> str:
        """The Celery task id whose result is the submission result."""
        return self._async.id if self._async is not None else self.run_id

    def result(self, timeout: float | None = None) -> SubmissionResult:
        if self._ready is not None:
            return self._ready
        assert self._async is not None
        try:
            # follow_parents=False: Celery would otherwise fetch every test's state on each
            # poll to look for a failed parent; test tasks never fail, they report
            raw = self._async.get(timeout=timeout, propagate=True, follow_parents=False)
        except celery.exceptions.TimeoutError as exc:
            raise TimeoutError(f"submission {self.id} not finished after {timeout} s") from exc
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read the result of {self.id}: {exc}") from exc
        self._ready = SubmissionResult.model_validate(raw)
        return self._ready

    def peek(self) -> SubmissionResult | None:
        """The result if the submission is final, else None (without waiting)."""
        if self._ready is None and self._async is not None:
            try:
                ready = self._async.ready()
            except redis.RedisError as exc:
                raise BrokerError(f"cannot read the result of {self.id}: {exc}") from exc
            if ready:
                return self.result(timeout=10)
        return self._ready

    def started(self) -> bool:
        """Whether a worker has finished a test of the submission, or all of it."""
        try:
            if self.peek() is not None:
                return True
            return bool(self._redis.exists(run_key(self.run_id, "tests")))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read progress of {self.id}: {exc}") from exc

    def finished_tests(self) -> dict[int, TestResult]:
        """Tests finished so far, by index (empty once the join has cleaned up)."""
        try:
            stored = self._redis.hgetall(run_key(self.run_id, "tests"))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read progress of {self.id}: {exc}") from exc
        return {int(k): TestResult.model_validate(json.loads(v)) for k, v in stored.items()}

    def progress(
        self, poll_s: float = 0.1, timeout: float | None = None
    ) -> Iterator[tuple[int, TestResult]]:
        """Yield (index, result) as tests finish, until the submission is done."""
        seen: set[int] = set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._ready is None and not (self._async is not None and self._async.ready()):
            for index, result in sorted(self.finished_tests().items()):
                if index not in seen:
                    seen.add(index)
                    yield index, result
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"submission {self.id} not finished after {timeout} s")
            time.sleep(poll_s)
        final = self.result(timeout=10)
        for index, result in enumerate(final.tests):
            if index not in seen:
                yield index, result


class Client:
    def __init__(self, settings: Settings | None = None, app: Celery = default_app) -> None:
        self.settings = settings or Settings.from_env()
        self.app = app
        self.intake = Intake.open(self.settings)
        self._redis = self.intake.backend

    def submit(
        self, submission: dict[str, Any] | SubmissionIn, run_id: str | None = None
    ) -> Handle:
        """Validate and admit here (an ``RJ`` handle when refused), then send the compile step
        and the per-test chord. The handle's id is ``run_id`` (default: a new one), known
        before anything is sent: a caller may keep its own record under it first."""
        raw = (
            submission.model_dump(exclude_none=True)
            if isinstance(submission, SubmissionIn)
            else submission
        )
        run_id = run_id or uuid.uuid4().hex
        try:
            parsed = parse_submission(raw, self.settings.maxima(), frozenset(LANGUAGES))
            work = self.intake.accept(parsed, run_id)
        except SubmissionRejected as exc:
            sid = raw.get("id") if isinstance(raw, dict) else None
            return Handle(self.app, self._redis, None, run_id, 0, rejected(sid, exc))
        try:
            # the broker is waited for as long as this client's outage window, not the app's
            retry = publish_retry_policy(self.settings.outage_window_s)
            sent = self.intake.send(parsed, run_id, work, retry_policy=retry)
        except NotSent as exc:
            raise BrokerError(f"cannot send submission: {exc}") from exc.__cause__
        return Handle(self.app, self._redis, sent, run_id, len(parsed.tests))

    def handle(self, submission_id: str) -> Handle:
        """The handle of a submission sent before (by anyone, through any path), by its id:
        its progress and result, while they are kept (``RUNNER_RESULT_EXPIRES_S``)."""
        sent = AsyncResult(submission_id, app=self.app)
        return Handle(self.app, self._redis, sent, submission_id, 0)

    def register_problem(
        self, problem: dict[str, Any] | ProblemIn, timeout: float = 120.0
    ) -> ProblemResult:
        """Register a problem (checked here first, then on a worker, which compiles its checker
        and interactor); the result holds its id, or why it was refused."""
        raw = problem.model_dump(exclude_none=True) if isinstance(problem, ProblemIn) else problem
        try:
            parse_problem(raw, self.settings.maxima(), frozenset(LANGUAGES))
        except SubmissionRejected as exc:
            return ProblemResult(
                problem=None, tests=0, error=ErrorInfo(code=exc.code, message=exc.message)
            )
        try:
            sent = self.app.send_task(PROBLEM_TASK, args=[raw], queue=self.settings.queue)
            answer = sent.get(timeout=timeout, propagate=True)
        except celery.exceptions.TimeoutError as exc:
            raise TimeoutError(f"problem not registered after {timeout} s") from exc
        except (redis.RedisError, OSError, KombuError) as exc:
            raise BrokerError(f"cannot register the problem: {exc}") from exc
        return ProblemResult.model_validate(answer)

    def send(self, submission: Any) -> Handle:
        """Send the one task ``runner.submit``, as a backend in another language would."""
        try:
            sent = self.app.send_task(SUBMIT_TASK, args=[submission], queue=self.settings.queue)
        except (redis.RedisError, OSError, KombuError) as exc:
            raise BrokerError(f"cannot send submission: {exc}") from exc
        total = len(submission.get("tests") or []) if isinstance(submission, dict) else 0
        return Handle(self.app, self._redis, sent, sent.id, total)
