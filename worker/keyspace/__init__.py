"""Every Redis key the fleet uses, named once; every Lua script it runs, loaded once.

Modules reach Redis through the names here: a key is built by its function or constant below,
never spelled where it is read or written, and a script is a ``.lua`` file of this package run
through :class:`Lua` (redis-py's ``Script``: EVALSHA, loaded again into a Redis that forgot it).
A script gets its keys in KEYS; one that must build a key from a name it reads (a digest, a
tenant, an API key's id) gets the key's prefix in ARGV, so no key is spelled inside Lua. The
one exception is the fair queue's per-queue keys (``<queue>␆␖<part>``), built inside its
scripts for each queue a claim looks at, from the queue and kombu's separator they are given
and the part names of :data:`FAIR_PARTS` (tests/unit/test_keyspace.py keeps the two alike).

:mod:`worker.keyspace.roles` says what each key holds, its type and its expiry (``KEYS``), and
which keys each role (producer, worker, API, monitor) reads and writes (``ROLES``), what
per-role Redis ACLs are written from (:mod:`worker.keyspace.acl`); both are rendered into
docs/monitoring.md ("Redis keyspace").

Celery's and kombu's own keys are listed (their roles need them) but named by those libraries:
the one read here by name is Celery's result of a task (:func:`result_key`, through
:func:`stored_result`), which the HTTP API and the webhooks read.

This module imports neither Celery, kombu nor Docker: producers load it.

May import: worker.errors, worker.settings (``python -m worker.keyspace``: the ACL file for
the settings' queue; the keys and scripts themselves import nothing of worker).

Never imports: celery, kombu, docker, redis.
"""

from __future__ import annotations

import json
import weakref
from functools import cached_property
from importlib import resources
from typing import Any, Literal, Protocol

# kombu's separator between a queue's name and what it derives from it (priority levels, and
# the fair queue's keys); channels carry it as ``sep``, this is its default
SEP = "\x06\x16"

# --- test data and sources (worker.data.storage), in the result backend's Redis -----------------
DATA = "runner:data:"  # + sha256: zlib-compressed bytes
HOLDS = "runner:holds"  # data digest -> runs in flight that use it
KEPT = "runner:kept"  # data digest -> until when a registered problem keeps it


def data_key(ref: str) -> str:
    return DATA + ref


# --- a run in flight (worker.producer.workflow, worker.pipeline.tasks) ----------------------------
RunPart = Literal["data", "tests", "failed", "compile", "meta"]
RUN = "runner:run:"


def run_key(run: str, part: RunPart) -> str:
    """A run's ``data`` (digests it holds), ``tests`` (its progress: test index -> result),
    ``failed`` (hints for the tests still to run), ``compile`` (its compile outcome) or
    ``meta`` (what all its tasks share, stored once: its test and join messages name it)."""
    return f"{RUN}{run}:{part}"


def progress_key(run: str) -> str:
    """Test index -> its result, as each test ends (the API's status and events read it)."""
    return run_key(run, "tests")


def hints_key(run: str) -> str:
    """Hints for the tests still to run (run_lower_hints.lua; the API's cancel sets one)."""
    return run_key(run, "failed")


# --- admission (worker.producer.admission) --------------------------------------------------------
ADMITTED = "runner:admitted"  # run -> "tenant tests bytes"
ADMITTED_DEADLINE = "runner:admitted:deadline"  # run -> when it stops counting
ADMITTED_TESTS = "runner:admitted:tests"  # tests in flight, all tenants
TENANT = "runner:tenant:"  # + name: its tests and bytes in flight


def tenant_key(tenant: str) -> str:
    return TENANT + tenant


# --- registered problems (worker.data.problems) and languages (worker.data.availability) ----------
PROBLEM = "runner:problem:"
LANGUAGES = "runner:languages:"  # + queue: worker node -> {"at": unix ms, "languages": ...}


def problem_key(problem: str) -> str:
    return PROBLEM + problem


def languages_key(queue: str) -> str:
    return LANGUAGES + queue


# --- compiled programs (worker.data.artifacts), in the cache Redis --------------------------------
ARTIFACT = "runner:artifact:"  # + program key: outcome and compressed files
IDENTITY = "runner:identity:"  # + image key: its content tag, published by workers
ARTIFACTS_LRU = "runner:artifacts:lru"  # entry key -> time of last use (microseconds)
ARTIFACTS_SIZE = "runner:artifacts:size"  # entry key -> stored bytes
ARTIFACTS_BYTES = "runner:artifacts:bytes"  # the entries' stored bytes, all together


def artifact_key(program: str) -> str:
    return ARTIFACT + program


def identity_key(image: str) -> str:
    return IDENTITY + image


# --- the broker: the fair queue (worker.queue.fairqueue), the transport (worker.queue.transport)
DOORBELL = "runner:doorbell"  # a list item, not a key: not JSON, so no kombu message equals it
SLOTS = "_runner.slots"  # every live worker's slots, summed by the reclaimers
CONSUMERS = "_runner.consumers"  # every consumer id that has beaten and not been reaped
CONSUMER = "_runner.consumer."  # + consumer id: its heartbeat, its slots
SLEEP = "_runner.transport.sleep"  # nobody writes it: a BLPOP on it is a pure sleep
INFLIGHT = "inflight"  # consumer C's hand-off list of list L: L + sep + INFLIGHT + sep + C
FairPart = Literal["tenants", "running", "seen", "usage", "served", "parked"]
FAIR_PARTS: tuple[FairPart, ...] = ("tenants", "running", "seen", "usage", "served", "parked")


def heartbeat_key(consumer: str) -> str:
    return CONSUMER + consumer


def fair_key(queue: str, sep: str, part: FairPart) -> str:
    return f"{queue}{sep}{part}"


def tenant_list(queue: str, sep: str, tenant: str) -> str:
    """The list of a tenant's waiting messages (fair_common.lua's ``tenant_list``)."""
    return f"{queue}{sep}tenant{sep}{tenant}"


def inflight_list(source: str, sep: str, consumer: str) -> str:
    return f"{source}{sep}{INFLIGHT}{sep}{consumer}"


def owner_key(unacked: str) -> str:
    """Beside kombu's unacked hash: delivery tag -> the consumer that claimed it."""
    return f"{unacked}_owner"


def claimed_tenant_key(unacked: str) -> str:
    """Beside kombu's unacked hash: delivery tag -> "tenant queue" of a fair claim."""
    return f"{unacked}_tenant"


# --- the HTTP API (worker.api) ----------------------------------------------------------------
API_KEY = "runner:api:key:"  # + key id
API_KEYS = "runner:api:keys"
API_RECORD = "runner:api:sub:"  # + submission id
API_INFLIGHT = "runner:api:inflight:"  # + key id
API_HOOK = "runner:api:hook:"  # + submission id: a webhook's event as first sent
HOOKS_DUE = "runner:api:hooks"  # submission id -> when its webhook is due (ms)
HOOKS_DUE_CHANNEL = "runner:api:hooks:due"  # published: a webhook became due now
API_IDEMPOTENT = "runner:api:idem:"  # + key id + ":" + SHA-256 of the Idempotency-Key
API_SUBMISSIONS = "runner:api:subs:"  # + key id
API_RATE = "runner:api:rate:"  # + key id + ":" + kind
API_STREAMS = "runner:api:streams:"  # + key id


def api_key_key(key_id: str) -> str:
    return API_KEY + key_id


def record_key(submission_id: str) -> str:
    return API_RECORD + submission_id


def inflight_key(key_id: str) -> str:
    """The key's submissions not yet final (sorted set: id -> when it stops counting, ms)."""
    return API_INFLIGHT + key_id


def body_key(submission_id: str) -> str:
    """The webhook's event as first built (a string), kept while it may be sent again: the
    result it carries may expire before the webhook is settled."""
    return API_HOOK + submission_id


def idempotency_key(key_id: str, token_sha256: str) -> str:
    return f"{API_IDEMPOTENT}{key_id}:{token_sha256}"


def submissions_key(key_id: str) -> str:
    """The key's submissions (sorted set: id -> accepted, microseconds)."""
    return API_SUBMISSIONS + key_id


def rate_key(key_id: str, kind: str) -> str:
    return f"{API_RATE}{key_id}:{kind}"


def streams_key(key_id: str) -> str:
    return API_STREAMS + key_id


# --- Celery's result backend ------------------------------------------------------------------
RESULT = "celery-task-meta-"  # Celery's Redis backend: + task id, its stored result


def result_key(task_id: str) -> str:
    """Where Celery keeps a task's result; a submission's is its join's, under its id."""
    return RESULT + task_id


def stored_result(stored: bytes) -> tuple[str, Any]:
    """A stored Celery result's state and value (``SUCCESS`` and what the task returned)."""
    meta = json.loads(stored)
    return str(meta.get("status")), meta.get("result")


# --- scripts ------------------------------------------------------------------------------------


class _Registers(Protocol):
    def register_script(self, script: str) -> Any: ...


class Lua:
    """A script of this package: its ``.lua`` files joined (a shared prelude first), read once,
    registered once per client; calling it runs EVALSHA (returning an awaitable on an asyncio
    client), or queues it in ``pipe``, a pipeline of ``client``."""

    def __init__(self, *files: str) -> None:
        self.files = files
        self._registered: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    @cached_property
    def source(self) -> str:
        package = resources.files(__name__)
        return "".join((package / name).read_text(encoding="utf-8") for name in self.files)

    def __call__(
        self, client: _Registers, keys: list[Any], args: list[Any], pipe: Any = None
    ) -> Any:
        script = self._registered.get(client)
        if script is None:
            script = self._registered[client] = client.register_script(self.source)
        return script(keys=keys, args=args, client=pipe)


DATA_HOLD = Lua("data_hold.lua")
DATA_LET_GO = Lua("data_let_go.lua")
ARTIFACT_KEEP = Lua("artifact_keep.lua")
ADMISSION_ADMIT = Lua("admission_forget.lua", "admission_admit.lua")
ADMISSION_RELEASE = Lua("admission_forget.lua", "admission_release.lua")
RUN_LOWER_HINTS = Lua("run_lower_hints.lua")
FAIR_PUBLISH = Lua("fair_common.lua", "fair_publish.lua")
FAIR_CLAIM = Lua("fair_common.lua", "fair_claim.lua")
FAIR_RELEASE = Lua("fair_common.lua", "fair_release.lua")
FAIR_UNPARK = Lua("fair_unpark.lua")
FAIR_PURGE = Lua("fair_common.lua", "fair_purge.lua")
API_FINISHED = Lua("api_finished.lua")
API_RESEND = Lua("api_resend.lua")
API_BUCKET = Lua("api_bucket.lua")
API_HOLD = Lua("api_hold.lua")
API_SUMMARIES = Lua("api_summaries.lua")
API_CLAIM_DUE = Lua("api_claim_due.lua")
SCRIPTS: tuple[Lua, ...] = (
    DATA_HOLD,
    DATA_LET_GO,
    ARTIFACT_KEEP,
    ADMISSION_ADMIT,
    ADMISSION_RELEASE,
    RUN_LOWER_HINTS,
    FAIR_PUBLISH,
    FAIR_CLAIM,
    FAIR_RELEASE,
    FAIR_UNPARK,
    FAIR_PURGE,
    API_FINISHED,
    API_RESEND,
    API_BUCKET,
    API_HOLD,
    API_SUMMARIES,
    API_CLAIM_DUE,
)
