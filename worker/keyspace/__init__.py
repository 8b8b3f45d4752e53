"""Every Redis key the fleet uses, named once; every Lua script it runs, loaded once.

Modules reach Redis through the names here: a key is built by its function or constant below,
never spelled where it is read or written, and a script is a ``.lua`` file of this package run
through :class:`Lua` (redis-py's ``Script``: EVALSHA, loaded again into a Redis that forgot it).
A script gets its keys in KEYS; one that must build a key from a name it reads (a digest, a
tenant, an API key's id) gets the key's prefix in ARGV, so no key is spelled inside Lua. The
one exception is the fair queue's per-queue keys (``<queue>␆␖<part>``), built inside its
scripts for each queue a claim looks at, from the queue and kombu's separator they are given
and the part names of :data:`FAIR_PARTS` (tests/unit/test_keyspace.py keeps the two alike).

:data:`KEYS` says what each key holds, its type and its expiry; :data:`ROLES` which keys
each role (producer, worker, API, monitor) reads and writes, what per-role Redis ACLs are
written from (:mod:`worker.keyspace.acl`). Both are rendered by :func:`table`, into
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
from dataclasses import dataclass
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


# --- what each key holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One key (or family of keys): ``pattern`` as a Redis ACL glob, ``{queue}`` standing for
    ``RUNNER_QUEUE``, ``␆␖`` for kombu's separator, ``{db}`` for the broker's database
    number (kombu's fanout topics carry it). A ``channel`` is a pub/sub channel."""

    pattern: str
    type: str
    holds: str
    ttl: str
    redis: Literal["backend", "broker", "cache"]


_RESULTS_TTL = "RUNNER_RESULT_EXPIRES_S"
KEYS: tuple[Key, ...] = (
    Key(
        DATA + "*",
        "string",
        "test data and sources, compressed",
        "results'; 60 s once unheld; a problem's",
        "backend",
    ),
    Key(HOLDS, "hash", "data digest -> runs holding it", _RESULTS_TTL, "backend"),
    Key(KEPT, "zset", "data digest -> kept until", "the longest problem's", "backend"),
    Key(RUN + "*:data", "set", "digests a run holds", _RESULTS_TTL, "backend"),
    Key(RUN + "*:tests", "hash", "a run's progress: test index -> result", _RESULTS_TTL, "backend"),
    Key(RUN + "*:failed", "hash", "hints for a run's tests still to run", _RESULTS_TTL, "backend"),
    Key(RUN + "*:compile", "string", "a run's compile outcome", _RESULTS_TTL, "backend"),
    Key(RUN + "*:meta", "string", "what a run's tasks share (RunMeta)", _RESULTS_TTL, "backend"),
    Key(ADMITTED, "hash", "run -> tenant, tests, bytes in flight", _RESULTS_TTL, "backend"),
    Key(ADMITTED_DEADLINE, "zset", "run -> when it stops counting", _RESULTS_TTL, "backend"),
    Key(ADMITTED_TESTS, "string", "tests in flight, all tenants", _RESULTS_TTL, "backend"),
    Key(TENANT + "*", "hash", "a tenant's tests and bytes in flight", _RESULTS_TTL, "backend"),
    Key(PROBLEM + "*", "string", "a registered problem", "RUNNER_PROBLEM_EXPIRES_S", "backend"),
    Key(LANGUAGES + "*", "hash", "worker node -> languages it runs", "1 h", "backend"),
    Key(API_KEY + "*", "hash", "an API key (hashed secret, limits)", "none", "backend"),
    Key(API_KEYS, "set", "every API key id", "none", "backend"),
    Key(
        API_RECORD + "*",
        "hash",
        "an API submission's record and webhook",
        "results'; none while a webhook is due",
        "backend",
    ),
    Key(API_INFLIGHT + "*", "zset", "a key's submissions not yet final", _RESULTS_TTL, "backend"),
    Key(
        API_HOOK + "*",
        "string",
        "a webhook's event as first sent",
        "its window + results'",
        "backend",
    ),
    Key(HOOKS_DUE, "zset", "submission id -> when its webhook is due", "none", "backend"),
    Key(HOOKS_DUE_CHANNEL, "channel", "a webhook became due now", "-", "backend"),
    Key(API_IDEMPOTENT + "*", "string", "an Idempotency-Key's answer", _RESULTS_TTL, "backend"),
    Key(
        API_SUBMISSIONS + "*", "zset", "a key's submissions, by acceptance", _RESULTS_TTL, "backend"
    ),
    Key(API_RATE + "*", "hash", "a key's token bucket", "until full again", "backend"),
    Key(API_STREAMS + "*", "zset", "a key's open event streams", "30 s lease", "backend"),
    Key(
        RESULT + "*",
        "string, channel",
        "Celery: a task's result (a submission's: its join's), published on its name too",
        _RESULTS_TTL,
        "backend",
    ),
    Key("celery-taskset-meta-*", "string", "Celery: a chord's join state", _RESULTS_TTL, "backend"),
    Key(
        ARTIFACT + "*",
        "hash",
        "a compiled program or its compile error",
        "RUNNER_CACHE_TTL_S, LRU",
        "cache",
    ),
    Key(IDENTITY + "*", "string", "an image's content tag", "none", "cache"),
    Key(ARTIFACTS_LRU, "zset", "entry -> last use", "RUNNER_CACHE_TTL_S", "cache"),
    Key(ARTIFACTS_SIZE, "hash", "entry -> stored bytes", "RUNNER_CACHE_TTL_S", "cache"),
    Key(ARTIFACTS_BYTES, "string", "the entries' bytes together", "RUNNER_CACHE_TTL_S", "cache"),
    Key("{queue}", "list", "kombu: waiting messages and doorbells", "none", "broker"),
    Key(
        "{queue}␆␖*",
        "list",
        "kombu: other priority levels; the fair queue's keys below",
        "none",
        "broker",
    ),
    Key("{queue}␆␖tenant␆␖*", "list", "a tenant's waiting messages", "none", "broker"),
    Key("{queue}␆␖tenants", "zset", "tenants with work, in serving order", "none", "broker"),
    Key("{queue}␆␖running", "hash", "tenant -> tests running", "none", "broker"),
    Key("{queue}␆␖seen", "zset", "tenant -> when last active", "3 s", "broker"),
    Key("{queue}␆␖usage", "hash", "tenant -> its recent use of the fleet", "1 h", "broker"),
    Key("{queue}␆␖served", "string", "a counter of tenants served", "1 day", "broker"),
    Key("{queue}␆␖parked", "list", "doorbells held back at a tenant's share", "none", "broker"),
    Key("*␆␖inflight␆␖*", "list", "a consumer's hand-off list", "none", "broker"),
    Key("unacked", "hash", "kombu: delivery tag -> claimed message", "none", "broker"),
    Key("unacked_index", "zset", "kombu: delivery tag -> when claimed", "none", "broker"),
    Key("unacked_mutex", "string", "kombu: the restore's lock", "visibility timeout", "broker"),
    Key("unacked_owner", "hash", "delivery tag -> consumer", "none", "broker"),
    Key("unacked_tenant", "hash", "delivery tag -> tenant and queue", "none", "broker"),
    Key("_kombu.binding.*", "set", "kombu: an exchange's bindings", "none", "broker"),
    Key(
        "_kombu.binding_permanent.*",
        "set",
        "kombu: an exchange's bindings of queues that do not expire",
        "none",
        "broker",
    ),
    Key(
        "_kombu.binding_deadlines",
        "zset",
        "kombu: exchange -> when its expiring queues' bindings lapse",
        "none",
        "broker",
    ),
    Key(
        "*.celery.pidbox",
        "list",
        "Celery: a worker's control queue (a fanout one: it stays empty)",
        "none",
        "broker",
    ),
    Key(
        "*.celery.pidbox␆␖*",
        "list",
        "the fair queue's keys of a worker's control queue, as of any queue it consumes",
        "none",
        "broker",
    ),
    Key(
        "*.reply.celery.pidbox",
        "list",
        "Celery: control replies (inspect, status)",
        "none",
        "broker",
    ),
    Key(
        "*.reply.celery.pidbox␆␖*",
        "list",
        "a reply queue's other priority levels and fair-queue keys",
        "none",
        "broker",
    ),
    Key(
        "/{db}.celeryev/*",
        "channel",
        "Celery: task and worker events (the pattern Flower subscribes to)",
        "-",
        "broker",
    ),
    Key("/{db}.celery.pidbox", "channel", "Celery: control broadcasts", "-", "broker"),
    Key(
        "celeryev.*",
        "list",
        "Celery: an event receiver's queue (Flower's; a fanout one: it stays empty)",
        "none",
        "broker",
    ),
    Key(
        "celeryev.*␆␖*",
        "list",
        "the fair queue's keys of an event receiver's queue",
        "none",
        "broker",
    ),
    Key(SLOTS, "string", "the live workers' slots", "30 s", "broker"),
    Key(CONSUMERS, "set", "consumer ids seen beating", "none", "broker"),
    Key(CONSUMER + "*", "string", "a consumer's heartbeat: its slots", "30 s", "broker"),
    Key(SLEEP, "list", "never written: a BLPOP there sleeps", "-", "broker"),
)


# --- who reads and writes what ------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """Key patterns (of :data:`KEYS`) a role reads and writes; a written key is read too
    unless the role only publishes to it or deletes it."""

    read: tuple[str, ...]
    write: tuple[str, ...]


_BINDINGS = ("_kombu.binding.*", "_kombu.binding_permanent.*", "_kombu.binding_deadlines")
_QUEUES = ("{queue}", "{queue}␆␖*", *_BINDINGS)
_REPLIES = ("*.reply.celery.pidbox", "*.reply.celery.pidbox␆␖*")
_PRODUCER = Access(
    # a producer admits, stores a run's data and sends its tasks; reads results and progress
    read=(
        KEPT,
        RUN + "*:tests",
        PROBLEM + "*",
        LANGUAGES + "*",
        IDENTITY + "*",
        RESULT + "*",
        "celery-taskset-meta-*",
    ),
    write=(
        DATA + "*",
        HOLDS,
        RUN + "*:data",
        RUN + "*:compile",
        RUN + "*:meta",
        ADMITTED,
        ADMITTED_DEADLINE,
        ADMITTED_TESTS,
        TENANT + "*",
        "celery-taskset-meta-*",
        ARTIFACT + "*",
        ARTIFACTS_LRU,
        ARTIFACTS_SIZE,
        ARTIFACTS_BYTES,
        *_QUEUES,
        *_REPLIES,
    ),
)
_API_OWN = tuple(k.pattern for k in KEYS if k.pattern.startswith("runner:api:"))
# what the join writes of the API's (worker.api.records.finished): the record, the key's slot,
# the due webhooks
_JOIN_NOTICE = (API_RECORD + "*", API_INFLIGHT + "*", HOOKS_DUE, HOOKS_DUE_CHANNEL)
ROLES: dict[str, Access] = {
    "producer": _PRODUCER,
    # every key of the fleet's but the API's own, of which it writes only the join's notice
    "worker": Access(
        read=(SLEEP,),
        write=tuple(
            k.pattern
            for k in KEYS
            if k.pattern not in (SLEEP, *_API_OWN) or k.pattern in _JOIN_NOTICE
        ),
    ),
    # the API is a producer too (it sends what it accepts), and owns its keys
    "api": Access(
        read=(*_PRODUCER.read, SLOTS),
        write=(*_PRODUCER.write, *_API_OWN),
    ),
    # Flower, the metrics and `runner status`: queue lengths, events, control replies
    "monitor": Access(
        read=(
            "{queue}",
            "{queue}␆␖*",
            "{queue}␆␖parked",
            ADMITTED_TESTS,
            SLOTS,
            "/{db}.celeryev/*",
        ),
        write=(*_REPLIES, *_BINDINGS, "celeryev.*", "celeryev.*␆␖*", "/{db}.celery.pidbox"),
    ),
}


def table() -> str:
    """:data:`KEYS` and :data:`ROLES` as a Markdown table (docs/monitoring.md holds it)."""
    initials = {"producer": "P", "worker": "W", "api": "A", "monitor": "M"}

    def who(pattern: str, side: Literal["read", "write"]) -> str:
        return "".join(
            initials[role]
            for role, access in ROLES.items()
            if pattern in getattr(access, side) or (side == "read" and pattern in access.write)
        )

    rows = [
        "| Key | Redis | Type | Holds | Expiry | Read by | Written by |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in KEYS:
        rows.append(
            f"| `{k.pattern}` | {k.redis} | {k.type} | {k.holds} | {k.ttl} "
            f"| {who(k.pattern, 'read')} | {who(k.pattern, 'write')} |"
        )
    return "\n".join(rows) + "\n"


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
