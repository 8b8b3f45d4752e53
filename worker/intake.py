"""From a valid submission to its first task: admission, test data stored, the compile
shortcut, the canvas. The Python producer (:class:`worker.client.Client`) and the task
``runner.submit`` both go through :func:`accept`, so a submission is treated the same
whichever way it came.

::

    accept ── test data over RUNNER_INLINE_DATA_KB, and the source ──► references (storage)
           ── admission: Redis memory, queue bound, the tenant's caps ──► or RJ (admission)
           ── the data stored (once per content), the compile shortcut ──► canvas (workflow)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from celery.canvas import Signature
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.admission import Admission, Ticket, release, tenant_of
from worker.artifacts import ArtifactStore
from worker.contract import Submission
from worker.errors import RunnerError
from worker.languages import LANGUAGES
from worker.settings import Settings
from worker.storage import DataStore, outline
from worker.workflow import canvas, run_key

log = structlog.get_logger()


def redis_client(url: str) -> redis.Redis:
    """A client that rides out a Redis restart: retries with backoff for about 15 seconds."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=10),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=10,
    )


@dataclass
class Intake:
    """What accepting a submission needs, on a producer or a worker."""

    settings: Settings
    admission: Admission
    data: DataStore
    artifacts: ArtifactStore
    backend: redis.Redis

    def accept(self, submission: Submission, run_id: str) -> Signature:
        """The submission's canvas, ready to send; raises
        :class:`~worker.errors.SubmissionRejected` (``fleet_busy``, ``tenant_busy``) or
        :class:`~worker.errors.BrokerError`, having kept nothing of it."""
        inline_bytes = self.settings.inline_data_kb * 1024
        tenant = tenant_of(submission.tenant)
        if any(
            len(data) > inline_bytes
            for t in submission.tests
            for data in (t.stdin, t.expected_stdout)
            if data is not None
        ):  # hashing and packing megabytes is the costly part: what is refused anyway, first
            self.admission.peek(tenant, len(submission.tests))
        packed: dict[str, bytes] = {}
        tests = [
            {
                "id": t.id,
                "stdin": outline(t.stdin, inline_bytes, packed),
                "expected": outline(t.expected_stdout, inline_bytes, packed),
            }
            for t in submission.tests
        ]
        source = outline(submission.source, -1, packed)  # always stored: see meta_of
        ticket = self.admission.admit(
            tenant,
            run_id,
            len(tests),
            sum(len(body) for body in packed.values()),
        )
        try:
            self.data.hold(run_id, list(packed))
            self.data.put_many(packed)
        except RunnerError:
            self.give_back(ticket)
            raise
        compiled = self.shortcut(submission, run_id)
        return canvas(submission, run_id, compiled, tests, source)

    def give_back(self, ticket: Ticket) -> None:
        """Undo an admission whose run will not be sent (or that has ended)."""
        try:
            release(self.backend, ticket)
            self.data.let_go(ticket.run)
        except RunnerError as exc:  # both lapse by themselves
            log.warning("admission.release_failed", error=str(exc))

    @classmethod
    def open(
        cls, settings: Settings, connect: Callable[[str], redis.Redis] | None = None
    ) -> Intake:
        """Clients for the broker, the result backend and the cache, from ``settings``
        (``connect``: how a URL becomes a client; tests pass fakeredis)."""
        connect = connect or redis_client
        backend = connect(settings.result_backend)
        cache = connect(settings.cache_url) if settings.cache_url else backend
        return cls(
            settings=settings,
            admission=Admission(settings, _broker_or_none(connect, settings.broker_url), backend),
            data=DataStore(backend, settings.result_expires_s, settings.data_cache_mb * 2**20),
            artifacts=ArtifactStore(
                cache,
                ttl_s=settings.result_expires_s,
                max_bytes=settings.max_artifact_kb * 1024,
                cache_bytes=settings.artifact_cache_mb * 2**20,
                budget_bytes=settings.cache_budget_mb * 2**20,
            ),
            backend=backend,
        )

    def shortcut(self, submission: Submission, run: str) -> dict[str, Any] | None:
        """A successful earlier compile of the same source, remembered for this run; else
        None. Any trouble just means no shortcut: the compile task then does the work."""
        language = LANGUAGES[submission.language]
        try:
            compiled = self.artifacts.compiled_before(
                language.name, language.compile_image, submission.source
            )
            if compiled is not None:
                remember_compile(self.backend, run, compiled, self.settings.result_expires_s)
        except (RunnerError, redis.RedisError) as exc:
            log.warning("compile.lookup_failed", error=str(exc))
            return None
        return compiled


def _broker_or_none(connect: Callable[[str], redis.Redis], url: str) -> redis.Redis | None:
    """A client for the broker's memory check (the first of kombu's failover list); None for a
    URL only kombu reads: that broker's memory then goes unchecked."""
    try:
        return connect(url.split(";")[0].strip())
    except ValueError:
        log.warning("admission.broker_unchecked", reason="redis-py cannot read the broker URL")
        return None


def remember_compile(client: Any, run: str, compiled: dict[str, Any], ttl_s: int) -> None:
    """The compile outcome of one submission, for its join."""
    client.set(run_key(run, "compile"), json.dumps(compiled), ex=ttl_s)
