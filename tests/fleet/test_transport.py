"""The broker transport (worker/queue/transport.py) against the real Redis, with kombu alone: no
worker process, no Docker. A consumer killed right after taking a message must leave it where the
visibility timeout restores it; and what the transport changes in kombu's consuming (priority
lists, several queues, consumers without acks, unparsable items, a full Redis) still works."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Producer, Queue
from kombu.transport import redis as kombu_redis
from structlog.testing import capture_logs

import worker.keyspace
import worker.queue.transport
from tests.conftest import TEST_ENV, free_port
from tests.fleet.conftest import flush

pytestmark = [pytest.mark.redis]

URL = TEST_ENV["RUNNER_BROKER_URL"]
OURS = worker.queue.transport.Transport
KOMBU = kombu_redis.Transport

# A consumer that dies (SIGKILL) right after it has taken a message off the queue: in the
# transport's hand-over to kombu's consumer callback, which records the message in kombu's
# unacked hash (QoS.append) and then runs the task.
# The same, killed between its wait and its claim: the message is in its hand-off list.
WAIT_AND_DIE = """
import os, signal, sys
from kombu import Connection, Consumer, Queue
import worker.queue.transport as transport

url, queue = sys.argv[1:]
transport.Reclaimer(lambda: Connection(url, transport=transport.Transport), "doomed").sweep()
original = transport.Channel._read_wait
def wait_then_die(self, **options):
    original(self, **options)
    os.kill(os.getpid(), signal.SIGKILL)
transport.Channel._read_wait = wait_then_die
options = {transport.CONSUMER_OPTION: "doomed"}
with Connection(url, transport=transport.Transport, transport_options=options) as conn:
    with Consumer(conn, [Queue(queue)], accept=["json"]):
        conn.drain_events(timeout=20)
"""

CONSUME_AND_DIE = """
import os, signal, sys
from kombu import Connection, Consumer, Queue
from kombu.transport import redis as kombu_redis
import worker.queue.transport

url, queue, which = sys.argv[1:]
transport = worker.queue.transport.Transport if which == "ours" else kombu_redis.Transport
options = {worker.queue.transport.CONSUMER_OPTION: "doomed"} if which == "ours" else {}
with Connection(url, transport=transport, transport_options=options) as conn:
    assert type(conn.transport) is transport
    conn.transport._deliver = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
    with Consumer(conn, [Queue(queue)], accept=["json"]):
        conn.drain_events(timeout=20)
"""


@pytest.fixture
def broker(redis_db: redis.Redis) -> Iterator[redis.Redis]:
    flush()
    yield redis_db
    flush()


def names(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"transport-{tag}-{i}" for i in range(n)]


def drain(conn: Connection, queues: list[Queue], count: int, **kw: Any) -> list[Any]:
    """``count`` messages through a consumer of ``queues`` that acks each; the messages."""
    got: list[Any] = []

    def on_message(body: Any, message: Any) -> None:
        got.append(message)
        message.ack()

    with Consumer(conn, queues, callbacks=[on_message], accept=["json"], **kw):
        while len(got) < count:
            conn.drain_events(timeout=10)
    return got


def run_until_killed(script: str, *args: str) -> None:
    """A consumer process running ``script`` (on this broker), which must die of SIGKILL."""
    child = subprocess.run(
        [sys.executable, "-c", script, URL, *args],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]


@pytest.mark.parametrize("which", ["ours", "kombu"])
def test_consumer_killed_right_after_the_pop_loses_nothing(broker: redis.Redis, which: str) -> None:
    (queue,) = names(1)
    with Connection(URL) as conn:
        Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])
    run_until_killed(CONSUME_AND_DIE, queue, which)
    assert broker.llen(queue) == 0  # the consumer did take it
    # what a live worker's periodic sweep does once the visibility timeout has passed
    with Connection(URL, transport_options={"visibility_timeout": 1}) as conn:
        time.sleep(1.2)
        conn.default_channel.qos.restore_visible(interval=1)
    if which == "kombu":
        # the window this transport closes: kombu's consumer had popped the message and not yet
        # recorded it, so it is nowhere now and no sweep can ever deliver it again
        assert (broker.llen(queue), broker.hlen("unacked")) == (0, 0)
        return
    assert broker.llen(queue) == 1
    with Connection(URL) as conn:
        (message,) = drain(conn, [Queue(queue)], 1)
    assert message.payload == {"n": 1}
    assert message.delivery_info["redelivered"] is True
    assert (broker.hlen("unacked"), broker.zcard("unacked_index")) == (0, 0)


@pytest.mark.parametrize("consumer", ["", "named"])
def test_claims_lists_in_brpop_order_each_recorded_before_its_callback(
    broker: redis.Redis, consumer: str
) -> None:
    """Both ways of waiting: a named consumer's hand-off list, an anonymous one's BLMOVE q q."""
    first, second = names(2)
    seen: list[tuple[Any, bool]] = []
    options = {worker.queue.transport.CONSUMER_OPTION: consumer} if consumer else {}
    with Connection(URL, transport_options=options) as conn:
        producer = Producer(conn)
        # published first, but on the lowest priority list of the second queue: BRPOP's order
        # (every queue's default list, then the next priority level) takes it second
        producer.publish({"n": 2}, routing_key=second, declare=[Queue(second)], priority=9)
        producer.publish({"n": 1}, routing_key=first, declare=[Queue(first)])
        assert broker.exists(f"{second}\x06\x169")  # it is on its own priority list

        def on_message(body: Any, message: Any) -> None:
            recorded = broker.hget("unacked", message.delivery_tag) is not None
            seen.append((body, recorded))
            message.ack()

        with Consumer(conn, [Queue(first), Queue(second)], callbacks=[on_message], accept=["json"]):
            while len(seen) < 2:
                conn.drain_events(timeout=10)
    assert seen == [({"n": 1}, True), ({"n": 2}, True)]
    assert (broker.hlen("unacked"), broker.zcard("unacked_index")) == (0, 0)
    assert not list(broker.scan_iter("*inflight*"))


def test_a_backlog_on_the_lowest_priority_drains_without_blocking_waits(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait watches the default-priority list only; were it to block before every claim,
    each message on another level would cost a whole wait timeout. While claims find messages, the
    wait is LMOVE, which never blocks: one blocking wait for the whole backlog."""
    (queue,) = names(1)
    waits: list[str] = []
    original = worker.queue.transport.Channel._brpop_start

    def counted(self: Any, timeout: Any = None) -> None:
        original(self, timeout)
        waits.append(self._wait_command)

    monkeypatch.setattr(worker.queue.transport.Channel, "_brpop_start", counted)
    options = {worker.queue.transport.CONSUMER_OPTION: "drainer"}
    with Connection(URL, transport_options=options) as conn:
        producer = Producer(conn)
        for n in range(20):
            producer.publish({"n": n}, routing_key=queue, declare=[Queue(queue)], priority=9)
        got = drain(conn, [Queue(queue)], 20)
    assert sorted(m.payload["n"] for m in got) == list(range(20))
    assert waits.count("BLMOVE") == 1 and waits.count("LMOVE") >= 19


def test_consumers_without_acks_leave_no_record(broker: redis.Redis) -> None:
    (queue,) = names(1)
    recorded: list[int] = []
    with Connection(URL) as conn:
        Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])

        def on_message(body: Any, message: Any) -> None:
            recorded.append(broker.hlen("unacked"))

        with Consumer(conn, [Queue(queue)], callbacks=[on_message], accept=["json"], no_ack=True):
            conn.drain_events(timeout=10)
    # a record nobody acks would be delivered again after every visibility timeout
    assert recorded == [0]
    assert (broker.llen(queue), broker.hlen("unacked")) == (0, 0)


def test_an_unparsable_item_is_dropped_and_consuming_goes_on(broker: redis.Redis) -> None:
    (queue,) = names(1)
    broker.lpush(queue, b"\xff\xfe not even text")
    broker.lpush(queue, b"{not json")
    with Connection(URL) as conn:
        Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])
        (message,) = drain(conn, [Queue(queue)], 1)
    assert message.payload == {"n": 1}
    assert (broker.llen(queue), broker.hlen("unacked")) == (0, 0)


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    """A Redis of the test's own, to be filled up."""
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    cmd += ["--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield client
    proc.kill()
    proc.wait()


def test_a_full_redis_is_still_drained_and_an_idle_consumer_survives_it(
    small_redis: redis.Redis,
) -> None:
    url = f"redis://127.0.0.1:{small_redis.connection_pool.connection_kwargs['port']}/0"
    (queue,) = names(1)
    got: list[Any] = []
    with Connection(url) as conn:
        producer = Producer(conn)
        for n in (1, 2):
            producer.publish({"n": n}, routing_key=queue, declare=[Queue(queue)])

        def on_message(body: Any, message: Any) -> None:
            got.append((message, small_redis.hget("unacked", message.delivery_tag) is not None))

        with Consumer(conn, [Queue(queue)], callbacks=[on_message], accept=["json"]):
            small_redis.config_set("maxmemory", 1)  # full: every write that may grow is refused
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                small_redis.set("more", "x")
            while len(got) < 2:
                conn.drain_events(timeout=10)
            # nothing left: the consumer waits (sleeping, since the server refuses BLMOVE)
            with pytest.raises(socket.timeout):
                conn.drain_events(timeout=3)
            # kombu's ack is a MULTI, which a full Redis refuses whatever it holds
            small_redis.config_set("maxmemory", 0)
            for message, _ in got:
                message.ack()
    assert [(m.payload, recorded) for m, recorded in got] == [({"n": 1}, True), ({"n": 2}, True)]
    assert (small_redis.llen(queue), small_redis.hlen("unacked")) == (0, 0)


def test_a_channel_reuses_one_redis_client_for_publishing_and_acking(broker: redis.Redis) -> None:
    (queue,) = names(1)
    with Connection(URL, transport=OURS) as conn:
        channel = conn.default_channel
        built: list[Any] = []
        original = kombu_redis.Channel._create_client

        def counting(self: Any, asynchronous: bool = False) -> Any:
            built.append(asynchronous)
            return original(self, asynchronous)

        kombu_redis.Channel._create_client = counting  # type: ignore[method-assign]
        try:
            producer = Producer(channel)
            for i in range(20):
                producer.publish({"n": i}, routing_key=queue, declare=[Queue(queue)])
            got = drain(conn, [Queue(queue)], 20)
        finally:
            kombu_redis.Channel._create_client = original  # type: ignore[method-assign]
    assert [m.payload["n"] for m in got] == list(range(20))
    # kombu alone builds one per publish and per ack: 40 and more
    assert built.count(False) <= 2


def reclaimer(name: str) -> worker.queue.transport.Reclaimer:
    return worker.queue.transport.Reclaimer(lambda: Connection(URL, transport=OURS), name)


def test_a_dead_consumers_message_is_given_back_without_waiting_for_the_timeout(
    broker: redis.Redis,
) -> None:
    (queue,) = names(1)
    with Connection(URL) as conn:
        Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])
    run_until_killed(CONSUME_AND_DIE, queue, "ours")
    assert broker.llen(queue) == 0
    assert list(broker.hvals("unacked_owner")) == [b"doomed"]
    # "doomed" never beat (or its beat expired): the first sweep anywhere gives it back
    with capture_logs() as logs:
        assert reclaimer("survivor").sweep() == 1
    assert [e["consumers"] for e in logs if e["event"] == "broker.reclaimed"] == [["doomed"]]
    assert (broker.llen(queue), broker.hlen("unacked"), broker.hlen("unacked_owner")) == (1, 0, 0)
    assert broker.ttl(worker.keyspace.heartbeat_key("survivor")) > 0
    with Connection(URL) as conn:
        (message,) = drain(conn, [Queue(queue)], 1)
    assert message.payload == {"n": 1}


def test_a_live_consumers_messages_stay_with_it_and_acks_clear_its_record(
    broker: redis.Redis,
) -> None:
    (queue,) = names(1)
    live = reclaimer("live")
    live.sweep()  # its beat
    options = {worker.queue.transport.CONSUMER_OPTION: "live"}
    with Connection(URL, transport=OURS, transport_options=options) as conn:
        Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])
        held: list[Any] = []
        with Consumer(conn, [Queue(queue)], callbacks=[lambda _, m: held.append(m)]):
            conn.drain_events(timeout=10)
        assert broker.hget("unacked_owner", held[0].delivery_tag) == b"live"
        assert reclaimer("other").sweep() == 0
        assert broker.llen(queue) == 0
        held[0].ack()
    assert (broker.hlen("unacked"), broker.hlen("unacked_owner")) == (0, 0)


def test_a_consumer_killed_between_its_wait_and_its_claim_gives_the_message_back(
    broker: redis.Redis,
) -> None:
    (queue,) = names(1)
    with Connection(URL) as conn:
        Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])
    run_until_killed(WAIT_AND_DIE, queue)
    (handoff,) = broker.scan_iter("*inflight*")
    assert (broker.llen(queue), broker.llen(handoff), broker.hlen("unacked")) == (0, 1, 0)
    assert reclaimer("survivor").sweep() == 0  # "doomed" still has a heartbeat: not yet
    broker.delete(worker.keyspace.heartbeat_key("doomed"))  # as if 30 s had passed
    assert reclaimer("survivor").sweep() == 1
    assert (broker.llen(queue), broker.exists(handoff)) == (1, 0)
    assert broker.smembers(worker.keyspace.CONSUMERS) == {b"survivor"}
    with Connection(URL) as conn:
        (message,) = drain(conn, [Queue(queue)], 1)
    assert message.payload == {"n": 1}


def test_an_ack_made_while_redis_restarts_is_made_once_it_is_back(tmp_path: Path) -> None:
    """A test that ends while the broker's Redis is away is acknowledged when it is back, not
    left to the visibility timeout (which would hand it out again minutes later)."""
    from tests.fleet.test_reliability import OwnRedis
    from worker.outages import WINDOW_OPTION

    server = OwnRedis(tmp_path)
    server.start()
    (queue,) = names(1)
    url = server.url(0)
    try:
        options = {WINDOW_OPTION: 30}
        with Connection(url, transport=OURS, transport_options=options) as conn:
            Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])
            held: list[Any] = []
            with Consumer(conn, [Queue(queue)], callbacks=[lambda _, m: held.append(m)]):
                conn.drain_events(timeout=10)
            assert server.client().hlen("unacked") == 1
            with capture_logs() as logs:
                server.stop("kill")  # recovered from its append-only file
                ack = threading.Thread(target=held[0].ack)
                ack.start()
                time.sleep(1.0)
                server.start()
                ack.join(30)
            assert not ack.is_alive()
        assert (server.client().hlen("unacked"), server.client().llen(queue)) == (0, 0)
        ridden = [e["event"] for e in logs if e.get("redis") == "broker"]
        assert ridden == ["redis.retrying", "redis.recovered"]
    finally:
        server.close()


def test_after_a_redis_outage_live_consumers_get_time_to_beat_before_any_is_taken_for_dead(
    broker: redis.Redis,
) -> None:
    """Every heartbeat may lapse while Redis is away: a worker whose sweep failed does not
    give back the messages of consumers that have not beaten since, until they have had time."""
    (queue,) = names(1)
    with Connection(URL) as conn:
        Producer(conn).publish({"n": 1}, routing_key=queue, declare=[Queue(queue)])
    run_until_killed(CONSUME_AND_DIE, queue, "ours")  # "doomed" holds it, with no heartbeat
    away = f"redis://127.0.0.1:{free_port()}/0"
    urls = [away]
    sweeper = worker.queue.transport.Reclaimer(
        lambda: Connection(urls[-1], transport=OURS), "sweeper"
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever kombu raises for a Redis away
        sweeper.sweep()
    urls.append(URL)  # Redis is back
    assert sweeper.sweep() == 0
    assert broker.llen(queue) == 0 and broker.hlen("unacked") == 1
    sweeper._reclaim_after = 0.0  # as if OUTAGE_GRACE_S had passed
    assert sweeper.sweep() == 1
    assert broker.llen(queue) == 1


def test_a_channel_closed_after_its_connection_was_released_raises_a_connection_error(
    broker: redis.Redis,
) -> None:
    """Closing after the broker went away, kombu restores unacked messages through a new
    client; with the connection released that was an AttributeError, which stopped a worker
    (Celery's close ignores only connection errors)."""
    with Connection(URL, transport=worker.queue.transport.Transport) as conn:
        channel = conn.default_channel
        channel._pool = None
        channel._sync_client = None
        channel.connection.client = None
        with pytest.raises(redis.exceptions.ConnectionError):
            channel._create_client()
        conn.maybe_close_channel(channel)  # what Celery's close does: nothing escapes
