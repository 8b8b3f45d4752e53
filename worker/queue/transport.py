"""kombu's Redis transport, made to lose no message between its queue and its unacked hash, and
to survive a message it cannot even parse.

**No message lost in the hand-over.** kombu takes a message off its queue list with BRPOP and
only afterwards, in a second round trip, records it in the ``unacked`` hash and the
``unacked_index`` zset from which the visibility timeout restores it (``Channel._brpop_read``,
then ``QoS.append`` in kombu/transport/redis.py). A worker killed in between (or a record Redis
refuses, or a reply left unread in the socket at shutdown) loses the message for good: it is in
no list and no hash, and its submission's chord never completes. A Lua script cannot block, so
BRPOP itself cannot record. Here a consumer instead

1. *waits* with ``BLMOVE q q.inflight.<consumer>``: it blocks like BRPOP, and Redis hands each
   new message to exactly one waiting consumer, into a list of that consumer's own;
2. *claims* with one Lua script that pops from that list first, then from the queue's lists in
   BRPOP's order, and records the message exactly as ``QoS.append`` would, in one atomic step.

Killed anywhere, a consumer leaves each message in its queue, its hand-off list or the unacked
hash. A consumer without an id (a plain kombu client of this transport) waits with
``BLMOVE q q`` instead, which puts the message back where it was: it holds nothing while it
waits, but every such waiting consumer wakes for each new message.

**A dead consumer's messages back in seconds, not minutes.** The visibility timeout must exceed
the longest task (300 s by default), so waiting for it would leave a killed worker's tests
stuck for minutes. The claim also records which consumer took each message (a per-process id,
the ``runner_consumer`` transport option); each worker keeps a heartbeat key for its consumer
and, in :class:`Reclaimer`, gives back at the front of their queue the messages of consumers
whose heartbeat has expired (30 s): those they had claimed and those left in their hand-off
lists. A consumer wrongly taken for dead costs a test run twice,
never a wrong result: the join keeps each test's first result. The costs: the wait watches one list
(the first queue's default-priority list), so when a consumer is idle, a message on another
priority level or another queue is claimed when the wait times out (``brpop_timeout``, 1 s);
while claims find messages, the wait does not block (``LMOVE``), so a backlog on any list
drains at full speed. The fleet's workers consume one queue. Consumers without acks
(control replies) and a global key prefix (kombu prefixes only the first key of an EVALSHA)
keep kombu's BRPOP.

**A Redis restart ridden out.** A test that ends while Redis is away is acknowledged once it is
back (within ``RUNNER_OUTAGE_WINDOW_S``, :mod:`worker.outages`), not left unacknowledged until
the visibility timeout hands it out again. Every heartbeat may lapse during an outage, so a
worker whose sweep failed reclaims nothing until the live consumers have had time to beat
again (:data:`OUTAGE_GRACE_S`).

**Fair between tenants.** A message that names its tenant waits in that tenant's list, with a
doorbell in the queue's own list for consumers to wait on, and a claim takes the message of the
tenant running the fewest (:mod:`worker.queue.fairqueue`; the claim, publish, ack and purge here run
its scripts, which :mod:`worker.keyspace` holds with every key named here).

**One client per channel.** kombu builds a new redis-py client, with its table of some 200
response callbacks, for every publish, ack, event and claim (``conn_or_acquire``); that was a
sixth of a worker's CPU per test. A channel here keeps one synchronous client per connection
pool (redis-py clients are thread-safe; each command borrows a pooled connection).

**No worker stopped by a bad message.** An item that is not JSON would raise out of the
consumer loop and Celery would stop the whole worker ("Unrecoverable error"), so anyone who can
push to the queue could stop every worker. Such an item is logged and dropped (it has already
been popped), and the worker goes on. Envelopes whose *body* is undecodable are already logged
and rejected by Celery itself.

**Written for one release.** The classes here override kombu's private methods and read its
private attributes, and :mod:`worker.queue.backend` reads fixed positions of Celery's chord script:
they hold for the releases in :data:`WRITTEN_FOR`, which setup.cfg pins exactly. A worker that
finds others installed says so as it starts (``broker.internals_mismatch``,
:func:`internals_mismatch`), and so does tests/unit/test_internals_pin.py.

Importing this module points kombu's ``redis://`` and ``rediss://`` schemes at this transport.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from queue import Empty
from time import monotonic, time
from typing import Any

import redis
import structlog
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from worker.keyspace import (
    CONSUMERS,
    DOORBELL,
    FAIR_CLAIM,
    FAIR_PUBLISH,
    FAIR_PURGE,
    FAIR_RELEASE,
    FAIR_UNPARK,
    INFLIGHT,
    SLEEP,
    SLOTS,
    claimed_tenant_key,
    fair_key,
    heartbeat_key,
    inflight_list,
    owner_key,
    tenant_list,
)
from worker.outages import DEFAULT_WINDOW_S, WINDOW_OPTION, Outage, redis_retryable, ride_out
from worker.queue import WRITTEN_FOR
from worker.queue.fairqueue import tenant_of_headers

log = structlog.get_logger()

CONSUMER_OPTION = "runner_consumer"  # transport option: this process's consumer id
SHARE_OPTION = "runner_share_pct"  # transport option: RUNNER_TENANT_MAX_SHARE_PCT
HEARTBEAT_TTL_S = 30
HEARTBEAT_EVERY_S = 5
OUTAGE_GRACE_S = 3 * HEARTBEAT_EVERY_S  # after a failed sweep: no reclaiming for this long


def internals_mismatch() -> list[str]:
    """One message per package of :data:`WRITTEN_FOR` installed in another release (or not at
    all), naming the package, both releases and what to do; empty when they all match."""
    messages = []
    for package, expected in WRITTEN_FOR.items():
        try:
            release = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found, against = f"{package} is not installed", "the release to install"
        else:
            if release == expected:
                continue
            against = f"{package} {release}"
            found = f"{against} is installed"
        messages.append(
            f"{found}, but the overrides of its internals in worker/queue/transport.py and "
            f"worker/queue/backend.py were written for {package} {expected}: re-check them against "
            f'{against} (README.md, "Celery and kombu, pinned"), then update the pin in '
            f"setup.cfg and WRITTEN_FOR in worker/queue/__init__.py together"
        )
    return messages


class QoS(kombu_redis.QoS):
    @property
    def owner_key(self) -> str:
        return owner_key(self.unacked_key)

    @property
    def tenant_key(self) -> str:
        return claimed_tenant_key(self.unacked_key)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        # acked, rejected or restored: the message has no owner any more, and its tenant runs
        # one test fewer (same round trip)
        pipe = super()._remove_from_indices(delivery_tag, pipe).hdel(self.owner_key, delivery_tag)
        args = [delivery_tag, time(), self.channel.sep]
        FAIR_RELEASE(self.channel.client, [self.tenant_key], args, pipe=pipe)
        return pipe

    def ack(self, delivery_tag: Any) -> None:
        self._ride_out(lambda: kombu_redis.QoS.ack(self, delivery_tag))

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        self._ride_out(lambda: kombu_redis.QoS.reject(self, delivery_tag, requeue))

    def _ride_out(self, call: Callable[[], None]) -> None:
        # safe to do again: removing the message from the indices and releasing its tenant's
        # slot find nothing the second time; the local bookkeeping comes after them. Past the
        # window, a connection error still, which Celery logs for an ack it could not make
        ride_out(call, self.channel.outage, redis_retryable, redis.ConnectionError)

    def append(self, message: Any, delivery_tag: Any) -> None:
        if delivery_tag is not None and delivery_tag == self.channel._claimed_tag:
            # the claim recorded it with the pop: only the local bookkeeping is left (writing it
            # again would cost a round trip, and fail on a full Redis)
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS
    # kombu's own state, typed from its defaults (None, False) but holding more
    _in_poll: Any = False
    _brpop_sent_at: Any = None
    _claim_keys: list[str] | None = None  # set while a wait of ours is in flight
    _claimed_tag: str | None = None  # the message being delivered, already recorded
    _wait_refused = False  # the last BLMOVE was refused: sleep with BLPOP instead, once
    _busy = False  # the last claim found a message: look again without blocking
    _wait_command = "BLMOVE"
    _refusing = False  # BLMOVE refused since it last worked (logged once, not every round)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._no_ack_queues: set[str] = set()
        self._sync_client: Any = None
        super().__init__(*args, **kwargs)
        options = self.connection.client.transport_options
        self._consumer_id = str(options.get(CONSUMER_OPTION, ""))
        self._share_pct = int(options.get(SHARE_OPTION, 0))
        window = float(options.get(WINDOW_OPTION) or DEFAULT_WINDOW_S)
        self.outage = Outage("Redis", "redis", window, redis="broker")

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        tenant = tenant_of_headers(message.get("headers"))
        if tenant is None or kwargs.get("_publish_batch") is not None or self.global_keyprefix:
            super()._put(queue, message, **kwargs)  # in line, first in first out
            return
        with self.conn_or_acquire() as client:
            FAIR_PUBLISH(
                client,
                [tenant_list(queue, self.sep, tenant), queue],
                [dumps(message), tenant, self.sep, DOORBELL, time(), queue],
            )

    def _size(self, queue: str) -> int:
        # a doorbell in the queue's lists stands for each tenant's waiting message, but those
        # held back at their tenant's share are parked in a list of their own
        with self.conn_or_acquire() as client:
            parked = int(client.llen(fair_key(queue, self.sep, "parked")))
        return int(super()._size(queue)) + parked

    def _purge(self, queue: str) -> int:
        with self.conn_or_acquire() as client:
            lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps]
            purged = FAIR_PURGE(client, lists, [DOORBELL, queue, self.sep])
        return int(purged)

    def _inflight_key(self, source: str) -> str:
        return inflight_list(source, self.sep, self._consumer_id)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if self._pool is None and self.connection.client is None:
            # closing after the broker went away, kombu restores unacked messages through a
            # client no pool can give any more (its connection is released): a connection
            # error, which the close ignores and the worker reconnects after, never the
            # AttributeError that stopped a worker for good
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:  # nothing is recorded for these: claiming would leave records nobody acks
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _brpop_start(self, timeout: int | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues or self.global_keyprefix or self._no_ack_queues.intersection(queues):
            self._claim_keys = None  # the reply will be kombu's BRPOP, with a message in it
            super()._brpop_start(timeout)
            return
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        # never 0 (forever): the other lists are only looked at when the wait returns
        timeout = timeout or self.brpop_timeout or 1
        # While there is work, the wait does not block (LMOVE): a message on another priority
        # level or queue is then claimed at once, not after the wait's timeout.
        target = self._inflight_key(keys[0]) if self._consumer_id else keys[0]
        side = "LEFT" if self._consumer_id else "RIGHT"
        if self._wait_refused:
            command = ["BLPOP", SLEEP, timeout]
        elif self._busy:
            command = ["LMOVE", keys[0], target, "RIGHT", side]
        else:
            command = ["BLMOVE", keys[0], target, "RIGHT", side, timeout]
        self._wait_command = str(command[0])
        self._claim_keys = keys
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        keys, self._claim_keys = self._claim_keys, None
        if keys is None:  # kombu's own BRPOP
            try:
                return bool(super()._brpop_read(**options))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                log.error("message.undecodable", error=str(exc)[:200], action="dropped")
                return True
        try:
            self._read_wait(**options)
            inflight = self._inflight_key(keys[0]) if self._consumer_id else None
            with self.conn_or_acquire() as client:
                if self._closing:  # kombu reads a pending reply on close: first in line again
                    if inflight:
                        client.lmove(inflight, keys[0], "RIGHT", "RIGHT")
                    raise Empty()
                lists = [inflight, *keys] if inflight else keys
                queues = [key.rsplit(self.sep, 1)[0] for key in keys]  # q, q␆␖3, ... -> q
                claimed = FAIR_CLAIM(
                    client,
                    [
                        *lists,
                        self.unacked_key,
                        self.unacked_index_key,
                        self.qos.owner_key,
                        self.qos.tenant_key,
                        SLOTS,
                    ],
                    [
                        repr(time()),
                        self._consumer_id,
                        self.sep,
                        DOORBELL,
                        self._share_pct,
                        *([queues[0]] if inflight else []),
                        *queues,
                    ],
                )
            self._busy = bool(claimed)
            if not claimed:
                raise Empty()
            self._wait_refused = False  # claiming goes on at full speed while there is work
            source = bytes_to_str(claimed[0])
            dest = (keys[0] if source == inflight else source).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            try:
                payload = loads(bytes_to_str(claimed[1]))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                log.error("message.undecodable", error=str(exc)[:200], action="dropped")
                return True
            self._claimed_tag = bytes_to_str(claimed[2]) if len(claimed) > 2 else None
            try:
                self.connection._deliver(payload, dest)
            finally:
                self._claimed_tag = None
            return True
        finally:
            self._in_poll = None
            # kombu >= 5.7 sends a pending re-auth token while the connection is idle, i.e. now
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _read_wait(self, **options: Any) -> None:
        """Reads the wait's reply; what it says does not matter, the claim looks for itself."""
        sleeping, self._wait_refused = self._wait_refused, False
        try:
            self.client.parse_response(self.client.connection, self._wait_command, **options)
        except self.connection_errors:
            # as kombu does: disconnect, and the next round reconnects
            self.client.connection.disconnect()
            raise
        except self.ResponseError as exc:
            # a full Redis (noeviction) refuses BLMOVE, a write that may grow memory, but not
            # the claim; claim now and sleep before the next try, not spin on refusals
            if not self._refusing:
                log.warning("broker.wait_refused", error=str(exc)[:200], action="polling")
            self._wait_refused = self._refusing = True
        else:
            if self._refusing and not sleeping:
                log.info("broker.wait_accepted")
                self._refusing = False


class Transport(kombu_redis.Transport):
    Channel = Channel


class Reclaimer:
    """Keeps this process's consumer alive in Redis and gives back the messages of consumers
    that died holding them (see the module docstring). Every worker runs one; any of them may
    do the giving back, and doing it twice is harmless (kombu's restore is a transaction that
    finds the message gone).

    Its heartbeat says how many tests this worker runs at once (``slots``); every sweep sums the
    live consumers' into ``_runner.slots``, the fleet's size that a tenant's share is taken
    of, and moves the parked doorbells of ``queues`` back onto them (:mod:`worker.queue.fairqueue`).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        consumer: str,
        slots: int = 1,
        queues: tuple[str, ...] = (),
    ) -> None:
        self._connect = connect
        self.consumer = consumer
        self.slots = slots
        self.queues = queues
        self._reclaim_after = 0.0  # time.monotonic(): before it, consumers are not judged dead

    def sweep(self) -> int:
        """Beat for this consumer, then give back dead consumers' messages; how many. None
        while live consumers may not have beaten since an outage: a sweep that fails (Redis
        away) holds reclaiming back for :data:`OUTAGE_GRACE_S`."""
        try:
            return self._sweep(monotonic() >= self._reclaim_after)
        except Exception:
            # every heartbeat may lapse meanwhile: once Redis is back, give the live
            # consumers time to beat again before taking any of them for dead
            self._reclaim_after = monotonic() + OUTAGE_GRACE_S
            raise

    def _sweep(self, reclaiming: bool) -> int:
        with self._connect() as conn:
            channel = conn.default_channel
            client = channel._create_client()
            with client.pipeline(transaction=False) as pipe:
                pipe.set(heartbeat_key(self.consumer), str(self.slots), ex=HEARTBEAT_TTL_S)
                pipe.sadd(CONSUMERS, self.consumer)
                pipe.smembers(CONSUMERS)
                pipe.hgetall(channel.qos.owner_key)
                _, _, members, owned = pipe.execute()
            owners = {bytes_to_str(tag): bytes_to_str(owner) for tag, owner in owned.items()}
            known = {bytes_to_str(m) for m in members}
            consumers = sorted(known | set(owners.values()))
            beats = client.mget([heartbeat_key(c) for c in consumers])
            dead = {c for c, beat in zip(consumers, beats, strict=True) if beat is None}
            if not reclaiming:
                dead = set()
            slots = sum(int(beat) for beat in beats if beat is not None and beat.isdigit())
            client.set(SLOTS, slots, ex=HEARTBEAT_TTL_S)
            for queue in self.queues:
                FAIR_UNPARK(client, [fair_key(queue, channel.sep, "parked"), queue], [])
            given = 0
            for consumer in sorted(dead & known):
                given += self._return_handoffs(client, channel.sep, consumer)
                client.srem(CONSUMERS, consumer)
            tags = [tag for tag, owner in owners.items() if owner in dead]
            for tag in tags:
                channel.qos.restore_by_tag(tag, client, leftmost=True)
            given += len(tags)
        if given:
            log.warning("broker.reclaimed", consumers=sorted(dead), messages=given)
        return given

    @staticmethod
    def _return_handoffs(client: Any, sep: str, consumer: str) -> int:
        """Move what a dead consumer's hand-off lists hold back to the front of their queues."""
        marker = f"{sep}{INFLIGHT}{sep}"
        pattern = marker + "".join("\\" + c if c in "*?[]\\" else c for c in consumer)
        moved = 0
        for key in client.scan_iter(match="*" + pattern, count=1000):
            source = bytes_to_str(key).rsplit(marker, 1)[0]
            while client.lmove(key, source, "RIGHT", "RIGHT") is not None:
                moved += 1
        return moved

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_EVERY_S):
            try:
                self.sweep()
            except Exception as exc:  # Redis away: kombu's own sweep remains the backstop
                log.warning("broker.reclaim_failed", error=str(exc)[:200])


TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = f"{__name__}:Transport"
