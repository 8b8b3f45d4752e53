"""Fair queueing between tenants in the broker (worker/queue/fairqueue.py), against the real Redis
with kombu alone: a tenant's backlog does not delay another tenant's messages; while another tenant
is active a tenant runs no more than its share of the fleet's slots, and alone it gets them all;
every count is given back by acks, by a dead consumer's messages being reclaimed, and by purges.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Producer, Queue

import worker.queue.transport
from tests.fleet.conftest import flush
from tests.fleet.test_transport import (
    CONSUME_AND_DIE,
    URL,
    drain,
    names,
    reclaimer,
    run_until_killed,
)
from worker.keyspace import SLOTS as SLOTS_KEY
from worker.keyspace import fair_key, tenant_list
from worker.queue.fairqueue import TENANT_HEADER

pytestmark = [pytest.mark.redis]
SEP = "\x06\x16"


@pytest.fixture
def broker(redis_db: redis.Redis) -> Iterator[redis.Redis]:
    flush()
    yield redis_db
    flush()


def publish(conn: Connection, queue: str, tenant: str | None, count: int) -> None:
    producer = Producer(conn)
    headers = {TENANT_HEADER: tenant} if tenant else {}
    for n in range(count):
        producer.publish(
            {"tenant": tenant, "n": n}, routing_key=queue, declare=[Queue(queue)], headers=headers
        )


def connect(share_pct: int = 50) -> Connection:
    options = {
        worker.queue.transport.CONSUMER_OPTION: "fair",
        worker.queue.transport.SHARE_OPTION: share_pct,
    }
    return Connection(URL, transport_options=options)


class Holder:
    """A consumer that keeps what it claims unacked, as a worker does while it runs tests."""

    def __init__(self, conn: Connection, queue: str) -> None:
        self.conn = conn
        self.held: list[Any] = []
        self.consumer = Consumer(
            conn, [Queue(queue)], callbacks=[lambda _, m: self.held.append(m)], accept=["json"]
        )
        self.consumer.consume()

    def claim(self, count: int, timeout: float = 10) -> list[Any]:
        """``count`` more messages, in the order claimed."""
        start = len(self.held)
        while len(self.held) < start + count:
            self.conn.drain_events(timeout=timeout)
        return self.held[start:]

    def nothing_to_claim(self, wait: float = 1.5) -> bool:
        try:
            self.conn.drain_events(timeout=wait)
        except TimeoutError:
            return True
        return False


def tenants(messages: list[Any]) -> list[str | None]:
    return [m.payload["tenant"] for m in messages]


def test_a_tenants_backlog_does_not_delay_another_tenants_messages(broker: redis.Redis) -> None:
    """Twenty messages of one tenant, then two of another and one without a tenant: the other
    tenant's come within the first four, and the one without a tenant in line with the
    doorbells (one for each tenant message) ahead of it."""
    (queue,) = names(1)
    with connect() as conn:
        publish(conn, queue, "flood", 20)
        publish(conn, queue, "honest", 2)
        publish(conn, queue, None, 1)
        assert conn.default_channel._size(queue) == 23
        assert broker.llen(tenant_list(queue, SEP, "flood")) == 20
        order = tenants(drain(conn, [Queue(queue)], 23))
    assert sorted(i for i, t in enumerate(order) if t == "honest") == [1, 3]
    assert order.index(None) == 22
    assert [n for n, t in enumerate(order) if t == "flood"][:3] == [0, 2, 4]
    assert not broker.exists(fair_key(queue, SEP, "running"), "unacked_tenant", queue)


def test_while_another_tenant_is_active_a_tenant_runs_no_more_than_its_share(
    broker: redis.Redis,
) -> None:
    """Four slots, a share of 50 %: the flood, which has held its slots longer than the other
    tenant, runs two at a time once the other has been seen; its other messages wait (parked)
    and are not claimed until one of its two is acked, and the other tenant's new message is
    claimed at once."""
    (queue,) = names(1)
    broker.set(SLOTS_KEY, 4)
    with connect() as conn:
        publish(conn, queue, "honest", 1)
        drain(conn, [Queue(queue)], 1)  # honest has been seen: it is active for ACTIVE_S
        publish(conn, queue, "flood", 6)
        holder = Holder(conn, queue)
        assert tenants(holder.claim(2)) == ["flood", "flood"]
        time.sleep(0.5)  # the flood has held two slots for a while, honest one for a moment
        assert holder.nothing_to_claim()
        assert broker.llen(fair_key(queue, SEP, "parked")) == 4
        assert conn.default_channel._size(queue) == 4
        publish(conn, queue, "honest", 1)
        assert tenants(holder.claim(1, timeout=2)) == ["honest"]
        holder.held[0].ack()  # a flood slot frees: one of its waiting messages is taken
        assert tenants(holder.claim(1, timeout=2)) == ["flood"]
        assert holder.nothing_to_claim()
        assert broker.hget(fair_key(queue, SEP, "running"), "flood") == b"2"
        for message in holder.held[1:]:
            message.ack()
        assert tenants(holder.claim(2, timeout=2)) == ["flood", "flood"]


def test_a_brief_burst_of_another_tenant_does_not_let_a_heavy_tenant_past_its_share(
    broker: redis.Redis,
) -> None:
    """Which tenant is held goes by how much each has used the fleet lately, not by what it
    runs this instant: the other tenant running three to the flood's one is still the lighter,
    so the flood stays at its share while the other's burst runs."""
    (queue,) = names(1)
    broker.set(SLOTS_KEY, 4)
    with connect() as conn:
        publish(conn, queue, "flood", 6)
        holder = Holder(conn, queue)
        holder.claim(2)
        time.sleep(1.0)
        publish(conn, queue, "honest", 3)
        assert tenants(holder.claim(3, timeout=2)) == ["honest"] * 3
        holder.held[0].ack()
        assert tenants(holder.claim(1, timeout=2)) == ["flood"]
        holder.held[1].ack()
        assert tenants(holder.claim(1, timeout=2)) == ["flood"]  # back at two, not past it
        assert holder.nothing_to_claim()


def test_tenants_as_busy_as_each_other_share_every_slot(broker: redis.Redis) -> None:
    """While both have work waiting, the one that has used the fleet less is never held: four
    slots' worth are claimed four times over, none left idle, about half for each."""
    (queue,) = names(1)
    broker.set(SLOTS_KEY, 4)
    with connect() as conn:
        publish(conn, queue, "a", 10)
        publish(conn, queue, "b", 10)
        holder = Holder(conn, queue)
        got = tenants(holder.claim(16, timeout=2))
    assert got[:4] in (["a", "b", "a", "b"], ["b", "a", "b", "a"])
    assert 6 <= got.count("a") <= 10 and 6 <= got.count("b") <= 10


def test_a_tenant_alone_gets_every_slot(broker: redis.Redis) -> None:
    (queue,) = names(1)
    broker.set(SLOTS_KEY, 4)
    with connect() as conn:
        publish(conn, queue, "flood", 6)
        holder = Holder(conn, queue)
        assert tenants(holder.claim(6, timeout=2)) == ["flood"] * 6
        assert broker.hget(fair_key(queue, SEP, "running"), "flood") == b"6"
        for message in holder.held:
            message.ack()
    assert not broker.exists(fair_key(queue, SEP, "running"), "unacked_tenant")


def test_held_back_work_is_freed_by_the_reclaimer_once_the_other_tenant_is_idle(
    broker: redis.Redis,
) -> None:
    (queue,) = names(1)
    broker.set(SLOTS_KEY, 2)
    with connect() as conn:
        publish(conn, queue, "honest", 1)
        drain(conn, [Queue(queue)], 1)
        publish(conn, queue, "flood", 3)
        holder = Holder(conn, queue)
        holder.claim(1)
        time.sleep(0.5)
        assert holder.nothing_to_claim()
        broker.zrem(fair_key(queue, SEP, "seen"), "honest")  # as if ACTIVE_S had passed
        sweeper = worker.queue.transport.Reclaimer(
            lambda: Connection(URL), "sweeper", slots=2, queues=(queue,)
        )
        sweeper.sweep()
        assert broker.get(SLOTS_KEY) == b"2"  # its own heartbeat's slots: the only live one
        assert tenants(holder.claim(2, timeout=2)) == ["flood", "flood"]


def test_a_dead_consumers_message_is_counted_off_and_claimed_again_for_its_tenant(
    broker: redis.Redis,
) -> None:
    (queue,) = names(1)
    with connect() as conn:
        publish(conn, queue, "acme", 1)
    run_until_killed(CONSUME_AND_DIE, queue, "ours")
    running = fair_key(queue, SEP, "running")
    assert broker.hget(running, "acme") == b"1"
    assert reclaimer("survivor").sweep() == 1
    assert not broker.exists(running, "unacked_tenant")
    assert broker.llen(queue) == 1  # back in line, an ordinary message of the queue
    with connect() as conn:
        holder = Holder(conn, queue)
        (message,) = holder.claim(1)
        assert message.delivery_info["redelivered"] is True
        assert broker.hget(running, "acme") == b"1"
        message.ack()
    assert not broker.exists(running, "unacked_tenant")


def test_a_purge_removes_the_tenants_waiting_messages_too(broker: redis.Redis) -> None:
    (queue,) = names(1)
    with connect() as conn:
        publish(conn, queue, "a", 3)
        publish(conn, queue, "b", 2)
        publish(conn, queue, None, 1)
        assert conn.default_channel._purge(queue) == 6
        assert conn.default_channel._size(queue) == 0
        publish(conn, queue, "a", 1)
        assert tenants(drain(conn, [Queue(queue)], 1)) == ["a"]
    assert not broker.exists(tenant_list(queue, SEP, "b"), fair_key(queue, SEP, "tenants"))


def test_a_header_that_is_no_tenant_name_leaves_the_message_in_line(broker: redis.Redis) -> None:
    (queue,) = names(1)
    with connect() as conn:
        producer = Producer(conn)
        for bad in ("", "a b", "x" * 65, "../etc"):
            producer.publish(
                {"tenant": bad},
                routing_key=queue,
                declare=[Queue(queue)],
                headers={TENANT_HEADER: bad},
            )
        assert broker.llen(queue) == 4
        assert not broker.exists(fair_key(queue, SEP, "tenants"))
        assert len(drain(conn, [Queue(queue)], 4)) == 4
    assert not broker.exists(fair_key(queue, SEP, "running"), "unacked_tenant")
