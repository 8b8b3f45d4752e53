"""From a valid submission to its first task: the problem looked up, admission, test data and
sources stored, the compile shortcut, the canvas. The Python producer
(:class:`worker.client.Client`) and the task ``runner.submit`` both go through :func:`accept`,
so a submission is treated the same whichever way it came.

::

    accept ── a registered problem's tests and judging ──► or RJ unknown_problem (problems)
           ── its languages, one a worker can judge ──► or RJ language_unavailable (availability)
           ── test data over RUNNER_INLINE_DATA_KB, and every program file ──► references
           ── admission: Redis memory, queue bound, the tenant's caps ──► or RJ (admission)
           ── the data stored (once per content), the compile shortcut ──► canvas (workflow)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog
from celery.canvas import Signature
from celery.result import AsyncResult

from worker import kinds
from worker.contract import Judging, ProgramSpec, Submission
from worker.contract.fields import quoted
from worker.data.artifacts import ArtifactStore
from worker.data.availability import Availability
from worker.data.problems import ProblemStore
from worker.data.storage import DataStore, program_files, stored_program, test_specs
from worker.errors import NotSent, RunnerError, SubmissionRejected
from worker.keyspace import run_key
from worker.languages import LANGUAGES
from worker.messages import CompileOutcome, JudgingMsg, RunMeta
from worker.outages import redis_client as redis_client  # where `runner status` finds it
from worker.producer.admission import Admission, Ticket, release, tenant_of
from worker.producer.workflow import canvas, judging_of, meta_of, store_meta
from worker.programs import key_of
from worker.redis_access import redis_options
from worker.settings import Settings
from worker.verdicts import LANGUAGE_UNAVAILABLE

log = structlog.get_logger()
OWED_RETRY_S = 1.0


class Owed:
    """Clean-ups that failed while Redis was away, each tried again every second by one daemon
    thread until it succeeds or its deadline passes (what it frees lapses by itself then).
    Admission's counts and a key's in-flight slots are shared by the whole fleet: a run that
    was admitted but never sent must not hold them for an hour because Redis blinked."""

    def __init__(self) -> None:
        self._calls: list[tuple[float, str, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def settle(self, what: str, call: Callable[[], None], within_s: float) -> None:
        """``call()`` now; if it fails, again every second for at most ``within_s``."""
        try:
            call()
            return
        except (RunnerError, redis.RedisError) as exc:
            log.warning("owed.retrying", what=what, error=str(exc)[:200])
        with self._lock:
            self._calls.append((time.monotonic() + within_s, what, call))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="owed", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        with self._lock:
            return len(self._calls)

    def _run(self) -> None:
        while True:
            time.sleep(OWED_RETRY_S)
            with self._lock:
                calls, self._calls = self._calls, []
            kept = []
            for deadline, what, call in calls:
                try:
                    call()
                    log.info("owed.settled", what=what)
                except (RunnerError, redis.RedisError) as exc:
                    if time.monotonic() < deadline:
                        kept.append((deadline, what, call))
                    else:
                        log.error("owed.lapsed", what=what, error=str(exc)[:200])
            with self._lock:
                self._calls.extend(kept)
                if not self._calls:
                    self._thread = None
                    return


@dataclass
class Intake:
    """What accepting a submission needs, on a producer or a worker."""

    settings: Settings
    admission: Admission
    data: DataStore
    artifacts: ArtifactStore
    problems: ProblemStore
    backend: redis.Redis
    availability: Availability
    owed: Owed = field(default_factory=Owed)

    def accept(self, submission: Submission, run_id: str) -> Signature:
        """The submission's canvas, ready to send; raises
        :class:`~worker.errors.SubmissionRejected` (``unknown_problem``,
        ``language_unavailable``, ``fleet_busy``, ``tenant_busy``) or
        :class:`~worker.errors.BrokerError`, having kept nothing of it."""
        inline_bytes = self.settings.inline_data_kb * 1024
        tenant = tenant_of(submission.tenant)
        packed: dict[str, bytes] = {}
        sources = {"program": files_of(submission.program)}
        languages = {"language": submission.program.language}
        if submission.problem is not None:
            record = self.problems.get(submission.problem)
            if record is None:
                raise SubmissionRejected(
                    "unknown_problem",
                    f"problem: {quoted(submission.problem)} is not registered (or has expired; "
                    "register it again: the same problem gets the same id)",
                )
            tests, judging = record.tests, record.judging
            stored = kinds.programs(judging)
            languages |= {f"{role}.language": p.language for role, p in stored.items()}
            self.refuse_unavailable(languages)
            sources |= {role: program_files(p, self.data) for role, p in stored.items()}
        else:
            for role, spec in kinds.sources(submission.judging).items():
                sources[role] = files_of(spec)
                languages[f"{role}.language"] = spec.language
            self.refuse_unavailable(languages)
            if any(
                len(data) > inline_bytes
                for t in submission.tests
                for data in (t.stdin, t.expected_stdout)
                if data is not None
            ):  # hashing and packing megabytes is the costly part: what is refused anyway, first
                self.admission.peek(tenant, len(submission.tests))
            tests = test_specs(submission.tests, inline_bytes, packed)
            judging = self.judging(submission.judging, packed)
        program = stored_program(submission.program, packed)
        ticket = self.admission.admit(
            tenant, run_id, len(tests), sum(len(body) for body in packed.values())
        )
        meta = meta_of(submission, run_id, program, judging)
        try:
            self.data.hold(run_id, list(packed))
            self.data.put_many(packed)
            store_meta(self.backend, meta, self.settings.result_expires_s)
        except RunnerError:
            self.give_back(ticket)
            raise
        return canvas(meta, tests, self.shortcut(meta, sources))

    def send(
        self,
        submission: Submission,
        run_id: str,
        work: Signature,
        retry_policy: dict[str, Any] | None = None,
    ) -> AsyncResult:
        """Send ``accept``'s canvas for ``run_id`` (its join's id, so its result is the run's)
        to this fleet's queue. Whatever stops it, the run was admitted and will never run:
        its place is given back and :class:`~worker.errors.NotSent` says why."""
        options = {} if retry_policy is None else {"retry_policy": retry_policy}
        try:
            sent: AsyncResult = work.apply_async(
                task_id=run_id, queue=self.settings.queue, **options
            )
            return sent
        except Exception as exc:
            # kombu says the broker is away with its own OperationalError; a bug of ours may
            # raise anything: either way the admission is not kept for a run never sent
            self.give_back(Ticket(tenant_of(submission.tenant), run_id))
            raise NotSent(str(exc)) from exc

    def refuse_unavailable(self, languages: dict[str, str]) -> None:
        """Refuse a submission whose languages (by where they are named) include one no worker
        can judge now, as the workers announced (:mod:`worker.data.availability`)."""
        for where, name in languages.items():
            reason = self.availability.why_unavailable(name)
            if reason is not None:
                raise SubmissionRejected(
                    LANGUAGE_UNAVAILABLE,
                    f"{where}: {quoted(name)} cannot be judged now: {reason}; send it again "
                    "once a worker can judge it",
                )

    def judging(self, judging: Judging, packed: dict[str, bytes]) -> JudgingMsg:
        """How tests are judged, its programs' files stored by reference (into ``packed``)."""
        return judging_of(judging, lambda program, static: stored_program(program, packed, static))

    def give_back(self, ticket: Ticket) -> None:
        """Undo an admission whose run will not be sent (or that has ended); with Redis away,
        once it is back (:class:`Owed`)."""

        def undo() -> None:
            release(self.backend, ticket)
            self.data.let_go(ticket.run)

        self.owed.settle(f"admission of run {ticket.run}", undo, self.settings.result_expires_s)

    @classmethod
    def open(
        cls, settings: Settings, connect: Callable[[str], redis.Redis] | None = None
    ) -> Intake:
        """Clients for the broker, the result backend and the cache, from ``settings``
        (``connect``: how a URL becomes a client; tests pass fakeredis). Each rides out an
        outage of its Redis of up to ``RUNNER_OUTAGE_WINDOW_S`` (:mod:`worker.outages`)."""
        window = settings.outage_window_s
        connect = connect or (lambda url: redis_client(url, window, redis_options(settings, url)))
        backend = connect(settings.result_backend)
        cache = connect(settings.cache_url) if settings.cache_url else backend
        data = DataStore(backend, settings.result_expires_s, settings.data_cache_mb * 2**20)
        return cls(
            settings=settings,
            admission=Admission(settings, _broker_or_none(connect, settings.broker_url), backend),
            data=data,
            artifacts=ArtifactStore(
                cache,
                ttl_s=settings.result_expires_s,
                max_bytes=settings.max_artifact_kb * 1024,
                cache_bytes=settings.artifact_cache_mb * 2**20,
                budget_bytes=settings.cache_budget_mb * 2**20,
            ),
            problems=ProblemStore(backend, data, settings.problem_expires_s),
            backend=backend,
            availability=Availability(backend, settings.queue),
        )

    def shortcut(
        self, meta: RunMeta, sources: dict[str, list[tuple[str, bytes]]]
    ) -> CompileOutcome | None:
        """Successful earlier compiles of every program of the run (``sources``: each one's
        files by role), remembered for it; else None. Any trouble just means no shortcut: the
        compile task then does the work."""
        keys: dict[str, str] = {}
        output = None
        try:
            for role, program in kinds.run_programs(meta):
                language = LANGUAGES[program.language]
                identity = self.artifacts.identity(language.compile_image)
                if identity is None:
                    return None
                keys[role] = key_of(program, identity, sources[role])
                found = self.artifacts.compiled(keys[role])
                if found is None:
                    return None
                if role == "program":
                    output = found.compile
            outcome = CompileOutcome(compile=output, **keys)
            remember_compile(self.backend, meta.run, outcome, self.settings.result_expires_s)
        except (RunnerError, redis.RedisError) as exc:
            log.warning("compile.lookup_failed", error=str(exc))
            return None
        return outcome


def files_of(program: ProgramSpec) -> list[tuple[str, bytes]]:
    return [(f.name, f.data) for f in program.files]


def _broker_or_none(connect: Callable[[str], redis.Redis], url: str) -> redis.Redis | None:
    """A client for the broker's memory check (the first of kombu's failover list); None for a
    URL only kombu reads: that broker's memory then goes unchecked."""
    try:
        return connect(url.split(";")[0].strip())
    except ValueError:
        log.warning("admission.broker_unchecked", reason="redis-py cannot read the broker URL")
        return None


def remember_compile(client: redis.Redis, run: str, compiled: CompileOutcome, ttl_s: int) -> None:
    """The compile outcome of one submission, for its join."""
    client.set(run_key(run, "compile"), compiled.model_dump_json(), ex=ttl_s)
