"""What each Redis key of the fleet holds, its type and expiry (:data:`KEYS`), and which keys
each role (producer, worker, API, monitor) reads and writes (:data:`ROLES`): what the per-role
ACL users are written from (:mod:`worker.keyspace.acl`), and what :func:`table` renders into
docs/monitoring.md ("Redis keyspace"). The key names themselves are :mod:`worker.keyspace`'s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worker.keyspace import (
    ADMITTED,
    ADMITTED_DEADLINE,
    ADMITTED_TESTS,
    API_HOOK,
    API_IDEMPOTENT,
    API_INFLIGHT,
    API_KEY,
    API_KEYS,
    API_RATE,
    API_RECORD,
    API_STREAMS,
    API_SUBMISSIONS,
    ARTIFACT,
    ARTIFACTS_BYTES,
    ARTIFACTS_LRU,
    ARTIFACTS_SIZE,
    CONSUMER,
    CONSUMERS,
    DATA,
    HOLDS,
    HOOKS_DUE,
    HOOKS_DUE_CHANNEL,
    IDENTITY,
    KEPT,
    LANGUAGES,
    PROBLEM,
    RESULT,
    RUN,
    SLEEP,
    SLOTS,
    TENANT,
)


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
