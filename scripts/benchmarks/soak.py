"""Soak: a sustained mixed stream from several tenants for a bounded time, on one worker host
and a Redis of the run's own; and what the fleet costs Redis, per test and per result.

In one run, after every program has been compiled once (the warm-up):

1. *capacity probes*: 10-test submissions sent while no worker runs (what a waiting test
   costs Redis), answered when one starts; then more through the fleet, 20 in flight (what an
   answered submission leaves behind, and the Redis CPU per test);
2. *alone*: the ``honest`` tenant sends small submissions at a steady rate, with known right
   verdicts (AC, and a WA);
3. *flood*: the same, while the ``flood`` tenant sends as fast as it can: infinite loops (TLE),
   memory hogs (MLE), endless output (OLE), megabytes of input, and plain volume. It backs off
   briefly when refused (``RJ`` ``tenant_busy`` / ``fleet_busy``): refusals are counted, they
   are the caps doing their job. Every tenant's tests in flight are capped
   (``RUNNER_TENANT_MAX_TESTS``, ``RUNNER_TENANT_MAX_DATA_MB``, set here for the run);
4. *drain*: every accepted submission must be answered at the latest ``timeout_s`` after the
   stream ends (else ``lost``), every honest one with its right verdict (else ``wrong``);
   then, with results kept for ``RUNNER_RESULT_EXPIRES_S`` = 60 s (the shortest allowed), the
   run waits that long so that ``redis_end_mb`` shows what the stream left that does *not*
   expire.

Each tenant is a process of its own (its own client, as separate backends would be), and hears
its results as the result backend publishes them (a pattern subscription), so a latency is
from just before ``submit()`` to the moment the result is stored, for every submission alike.

``BENCH_SOAK_RECORDS=FILE`` keeps one JSON line per submission (tenant, kind, when sent and
answered, verdict, the tests' wall time) in FILE.

Redis is a ``redis-server`` started for the run (:func:`scripts.benchmarks.fleet.private_redis`):
``INFO`` is per instance, and the machine's shared Redis carries other runs' state. With
``BENCH_BROKER_URL`` / ``BENCH_RESULT_BACKEND`` set (as the tests do) those are used instead."""

from __future__ import annotations

import dataclasses
import functools
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any

import redis

from scripts.benchmarks.fleet import (
    MB,
    RUN_ID,
    MemorySampler,
    cpu_s,
    percentile,
    private_redis,
    used_memory,
    worker,
)


@dataclass(frozen=True)
class Counts:
    alone_s: float  # the honest tenant alone
    flood_s: float  # the honest tenant under the flood
    honest_per_s: float  # honest submissions sent per second, in both phases
    probe: int  # 10-test submissions per capacity probe
    big_kb: int  # stdin of each of the flood's large-input tests
    tenant_max_tests: int  # RUNNER_TENANT_MAX_TESTS for the run
    tenant_max_data_mb: int  # RUNNER_TENANT_MAX_DATA_MB for the run
    tenant_max_share_pct: int  # RUNNER_TENANT_MAX_SHARE_PCT: of the worker's four slots
    timeout_s: float  # an accepted submission not answered by then is lost
    settle: bool  # wait for what expires to expire before redis_end_mb


FULL = Counts(
    alone_s=40,
    flood_s=100,
    honest_per_s=4,
    probe=100,
    big_kb=2048,
    tenant_max_tests=40,
    tenant_max_data_mb=32,
    tenant_max_share_pct=50,
    timeout_s=120,
    settle=True,
)
QUICK = Counts(
    alone_s=4,
    flood_s=8,
    honest_per_s=4,
    probe=4,
    big_kb=128,
    tenant_max_tests=40,
    tenant_max_data_mb=32,
    tenant_max_share_pct=50,
    timeout_s=60,
    settle=False,
)
Figures = dict[str, object]
EXPIRES_S = 60  # RUNNER_RESULT_EXPIRES_S for the run: its lowest allowed value
BACK_OFF_S = 0.1  # the flood's pause after a refusal

ECHO_C = "#include <stdio.h>\nint main(){int c;while((c=getchar())!=EOF)putchar(c);return 0;}\n"
SUM_PY = "a, b = map(int, input().split())\nprint(a + b)\n"
LOOP_PY = "while True:\n    pass\n"
HOG_PY = "held = []\nwhile True:\n    held.append(bytearray(1 << 20))\n"
SPEW_PY = "import sys\nline = 'x' * 4095 + '\\n'\nwhile True:\n    sys.stdout.write(line)\n"
CONSUME_PY = "import sys\nprint(len(sys.stdin.buffer.read()))\n"
DIGITS = bytes(b"0123456789 \n"[i % 12] for i in range(256))  # random bytes -> text test data


@dataclass(frozen=True)
class Kind:
    """A kind of submission, and the verdicts it must get: the submission's, then each test's."""

    name: str
    verdict: str
    tests: tuple[str, ...]


HONEST = (
    Kind("c_echo", "AC", ("AC",) * 5),
    Kind("py_sum", "AC", ("AC",) * 5),
    Kind("py_wa", "WA", ("AC", "AC", "WA", "AC", "AC")),
)
FLOOD = (
    Kind("volume", "AC", ("AC",) * 20),
    Kind("tle", "TLE", ("TLE",) * 2),
    Kind("large_input", "AC", ("AC",) * 3),
    Kind("mle", "MLE", ("MLE",) * 2),
    Kind("volume", "AC", ("AC",) * 20),
    Kind("ole", "OLE", ("OLE",) * 2),
)
KINDS = {kind.name: kind for kind in HONEST + FLOOD}


def submission(kind: str, tag: str, tenant: str, counts: Counts, rng: random.Random) -> Any:
    """A submission of ``kind``, its tests' data unique to ``tag``."""
    hostile = {"cpu_time_ms": 1000, "wall_time_ms": 2000, "memory_mb": 64, "output_kb": 1024}
    body: dict[str, Any]
    if kind == "c_echo":
        tests = [{"stdin": f"{tag} {i}\n", "expected_stdout": f"{tag} {i}\n"} for i in range(5)]
        body = {"language": "c", "source": ECHO_C, "tests": tests}
    elif kind in ("py_sum", "py_wa"):
        pairs = [(rng.randrange(10**9), rng.randrange(10**9)) for _ in range(5)]
        tests = [{"stdin": f"{a} {b}\n", "expected_stdout": f"{a + b}\n"} for a, b in pairs]
        if kind == "py_wa":
            tests[2]["expected_stdout"] = f"{sum(pairs[2]) + 1}\n"
        body = {"language": "python", "source": SUM_PY, "tests": tests}
    elif kind == "volume":
        tests = [{"stdin": f"{tag} {i}\n", "expected_stdout": f"{tag} {i}\n"} for i in range(20)]
        body = {"language": "c", "source": ECHO_C, "tests": tests}
    elif kind == "large_input":
        size = counts.big_kb * 1024
        tests = [
            {"stdin": noise(f"{tag} {i}", size, rng), "expected_stdout": f"{size}\n"}
            for i in range(3)
        ]
        body = {"language": "python", "source": CONSUME_PY, "tests": tests}
    else:
        source = {"tle": LOOP_PY, "mle": HOG_PY, "ole": SPEW_PY}[kind]
        tests = [{"stdin": f"{tag} {i}\n"} for i in range(2)]
        body = {"language": "python", "source": source, "tests": tests, "limits": hostile}
    return {"id": f"{kind}:{tag}", "tenant": tenant, **body}


@functools.cache
def _digits(size: int) -> str:
    return random.Random(size).randbytes(2 * size).translate(DIGITS).decode()


def noise(tag: str, size: int, rng: random.Random) -> str:
    """``size`` characters of digit noise, unique to ``tag`` (so stored anew, as a new input
    would be), cut from one block made once per process: what a submitter does to make its
    data is not the fleet's cost, and on this machine it would share the fleet's two cores."""
    start = rng.randrange(size)
    return f"{tag}\n{_digits(size)[start : start + size - len(tag) - 1]}"


def right(kind: str, result: Any) -> bool:
    """Whether a result has exactly the verdicts ``kind`` must get."""
    want = KINDS[kind]
    return result.verdict == want.verdict and tuple(t.verdict for t in result.tests) == want.tests


# --- a tenant, in a process of its own ---------------------------------------------------------


class Answers:
    """Every submission result the result backend publishes, by task id, with when it came."""

    def __init__(self, url: str, prefix: str) -> None:
        self._pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(f"{prefix}*")
        self._prefix = len(prefix)
        self.got: dict[str, tuple[float, bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.5)
            if message is not None:
                channel = message["channel"].decode()
                self.got[channel[self._prefix :]] = (time.time(), message["data"])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pubsub.close()


def tenant(
    name: str, kinds: list[str], start: float, end: float, rate: float, counts: Counts, out: str
) -> None:
    """Send ``kinds`` in turn from ``start`` to ``end`` (wall clock): ``rate`` per second, or
    as fast as admission lets (``rate`` 0, backing off after each refusal); then wait for
    every answer, ``timeout_s`` at most. One JSON line per submission goes to ``out``."""
    from worker.client import Client
    from worker.logs import configure_logging

    configure_logging("console", "warning")
    client = Client()
    backend = client.app.backend
    prefix = backend.task_keyprefix
    prefix = prefix.decode() if isinstance(prefix, bytes) else prefix
    answers = Answers(client.settings.result_backend, prefix)
    rng = random.Random(name)
    sent: list[dict[str, Any]] = []
    pending: dict[str, dict[str, Any]] = {}
    time.sleep(max(0.0, start - time.time()))
    kind = cycle(kinds)
    i = 0
    while (now := time.time()) < end:
        if rate:
            due = start + i / rate
            if now < due:
                time.sleep(min(due - now, end - now))
                continue
        k = next(kind)
        body = submission(k, f"{name}-{i}", name, counts, rng)
        at = time.time()
        handle = client.submit(body)
        i += 1
        del body
        record: dict[str, Any] = {"tenant": name, "kind": k, "sent": at, "tests": handle.total}
        sent.append(record)
        if handle.total == 0:  # refused before it was sent: its RJ result is already here
            result = handle.result()
            record["refused"] = result.error.code if result.error else result.verdict
            if not rate:
                time.sleep(BACK_OFF_S)
            continue
        record["id"] = handle.id
        pending[handle.id] = record
    give_up = time.time() + counts.timeout_s
    while pending and time.time() < give_up:
        for task_id in [t for t in pending if t in answers.got]:
            record = pending.pop(task_id)
            answered, raw = answers.got.pop(task_id)
            judge(record, backend.decode_result(raw), answered)
        time.sleep(0.05)
    answers.close()
    for task_id, record in pending.items():  # published while nobody listened? then not lost
        raw = backend.client.get(backend.get_key_for_task(task_id))
        if raw is not None:
            judge(record, backend.decode_result(raw), None)
        else:
            record["lost"] = True
    with open(out, "w") as f:
        for record in sent:
            f.write(json.dumps(record) + "\n")


def judge(record: dict[str, Any], meta: dict[str, Any], answered: float | None) -> None:
    from worker.contract import SubmissionResult

    if answered is not None:
        record["latency_ms"] = 1000 * (answered - record["sent"])
    record["answered"] = answered
    if meta.get("status") != "SUCCESS":
        record["verdict"], record["right"] = f"task {meta.get('status')}", False
        return
    result = SubmissionResult.model_validate(meta["result"])
    record["verdict"] = result.verdict
    record["wall_ms"] = sum(t.wall_time_ms for t in result.tests)  # running, not waiting
    record["right"] = right(record["kind"], result)
    if not record["right"]:
        record["got"] = [t.verdict for t in result.tests]


# --- the run -----------------------------------------------------------------------------------


def dataset(r: redis.Redis) -> int:
    """Redis memory holding keys and values (``used_memory_dataset``): unlike
    ``used_memory``, not moved by clients connecting, their buffers, or scripts cached."""
    return int(r.info("memory")["used_memory_dataset"])


def ten_tests(tag: str, rng: random.Random) -> dict[str, Any]:
    """The capacity probes' submission: a compiled C echo, 10 one-line tests."""
    body: dict[str, Any] = submission("volume", tag, "probe", FULL, rng)
    body["tests"] = body["tests"][:10]
    return body


def probe_queued(
    client: Any, n: int, broker: redis.Redis, r: redis.Redis
) -> tuple[list[Any], dict[str, object]]:
    """``n`` 10-test submissions sent while no worker runs: what a waiting test costs Redis,
    in all (messages, chord and admission state: ``used_memory_dataset``) and its message
    alone (``MEMORY USAGE`` of the queue's lists). Returns their handles too, for the next
    worker to answer."""
    rng = random.Random(1)
    before = dataset(r)
    handles = [client.submit(ten_tests(f"q{i}", rng)) for i in range(n)]
    assert all(handle.total == 10 for handle in handles), [h.result() for h in handles]
    queue = client.settings.queue
    listed = sum(int(broker.memory_usage(k, samples=0) or 0) for k in broker.scan_iter(f"{queue}*"))
    return handles, {
        "redis_bytes_per_queued_test": round((dataset(r) - before) / (10 * n)),
        "redis_bytes_per_queued_message": round(listed / (10 * n)),
    }


def probe_answered(client: Any, n: int, r: redis.Redis, timeout: float) -> dict[str, object]:
    """``n`` 10-test submissions through the fleet, 20 in flight, each read back as the client
    does: what an answered submission leaves in Redis (its result, kept for
    RUNNER_RESULT_EXPIRES_S), and the Redis CPU per test, from sending to reading."""
    rng = random.Random(2)
    before, cpu = dataset(r), cpu_s(r)
    pending, ids = [], []
    for i in range(n):
        pending.append(client.submit(ten_tests(f"a{i}", rng)))
        ids.append(pending[-1].id)
        if len(pending) >= 20:
            assert pending.pop(0).result(timeout=timeout).verdict == "AC"
    for handle in pending:
        assert handle.result(timeout=timeout).verdict == "AC"
    cpu_ms = 1000 * (cpu_s(r) - cpu) / (10 * n)
    after = dataset(r)
    keys = [client.app.backend.get_key_for_task(i) for i in ids]
    return {
        "redis_bytes_per_result": round((after - before) / n),
        "redis_bytes_per_result_key": round(
            statistics.mean(int(r.memory_usage(k, samples=0) or 0) for k in keys)
        ),
        "redis_cpu_ms_per_test": round(cpu_ms, 3),
        "tests_per_s_per_redis_core": round(1000 / cpu_ms),
    }


def settle(r: redis.Redis, wait_s: float) -> None:
    """Wait ``wait_s``, then until Redis holds no key that will expire (what the stream left
    with a TTL is gone), at most 30 s more."""
    time.sleep(wait_s)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spaces = r.info("keyspace").values()
        if not any(int(space.get("expires", 0)) for space in spaces):
            return
        time.sleep(1)


def keys_in(r: redis.Redis) -> tuple[int, int]:
    """Keys in the Redis instance, and of those the keys that never expire (what piles up if
    anything does; SCAN and TTL over every database, so only for a Redis of modest size)."""
    total = forever = 0
    for name in r.info("keyspace"):
        options = {**r.connection_pool.connection_kwargs, "db": int(name[2:])}  # "db3"
        with redis.Redis(connection_pool=redis.ConnectionPool(**options)) as db:
            for key in db.scan_iter(count=1000):
                total += 1
                forever += db.ttl(key) == -1
    return total, forever


def latency(records: list[dict[str, Any]], q: float) -> float:
    samples = [rec["latency_ms"] for rec in records if "latency_ms" in rec]
    return round(percentile(samples, q), 1) if samples else 0.0


def wall_per_test(records: list[dict[str, Any]]) -> float:
    """Mean wall time of one test, as the sandbox measured it (its run, not its wait)."""
    timed = [rec for rec in records if "wall_ms" in rec]
    return round(sum(rec["wall_ms"] for rec in timed) / max(1, sum(r["tests"] for r in timed)), 1)


@dataclass
class Phases:
    start: float
    flood: float
    end: float


def run(quick: bool = False) -> dict[str, object]:
    counts = QUICK if quick else FULL
    with redis_urls() as (broker, backend):
        figures = soak(counts, broker, backend)
        # Celery's results still subscribed to would unsubscribe when collected at exit, from
        # a Redis gone by then (a traceback on stderr): let go of them while it is here
        from worker.app import app

        consumer = app.backend.result_consumer
        consumer.stop()
        consumer.subscribed_to.clear()
    return figures


@contextmanager
def redis_urls() -> Iterator[tuple[str, str]]:
    """``BENCH_BROKER_URL`` and ``BENCH_RESULT_BACKEND`` when both are set, else databases 0
    and 1 of a Redis of the run's own."""
    given = os.environ.get("BENCH_BROKER_URL"), os.environ.get("BENCH_RESULT_BACKEND")
    if given[0] and given[1]:
        yield given[0], given[1]
        return
    with private_redis() as url:
        yield f"{url}/0", f"{url}/1"


def soak(counts: Counts, broker: str, backend: str) -> dict[str, object]:
    os.environ.update(
        {
            "RUNNER_BROKER_URL": broker,
            "RUNNER_RESULT_BACKEND": backend,
            "RUNNER_QUEUE": f"bench-soak-{RUN_ID}",
            "RUNNER_LOG_FORMAT": "json",
            "RUNNER_RESULT_EXPIRES_S": str(EXPIRES_S),
            "RUNNER_TENANT_MAX_TESTS": str(counts.tenant_max_tests),
            "RUNNER_TENANT_MAX_DATA_MB": str(counts.tenant_max_data_mb),
            "RUNNER_TENANT_MAX_SHARE_PCT": str(counts.tenant_max_share_pct),
        }
    )
    for url in (broker, backend):
        redis.Redis.from_url(url).flushdb()
    r = redis.Redis.from_url(backend)  # INFO is per instance: broker and backend alike
    from worker.client import Client

    client = Client()
    figures: dict[str, object] = {
        "tenant_max_tests": counts.tenant_max_tests,
        "tenant_max_data_mb": counts.tenant_max_data_mb,
        "tenant_max_share_pct": counts.tenant_max_share_pct,
        "result_expires_s": EXPIRES_S,
    }
    rng = random.Random(0)
    with worker("soak"):
        for kind in KINDS:  # every program compiled once, as in a fleet that has been up
            # a tiny large_input: its program compiled, no data stored (it would be counted)
            small = dataclasses.replace(counts, big_kb=1)
            result = client.submit(submission(kind, "warm", "warm", small, rng)).result(
                timeout=counts.timeout_s
            )
            assert right(kind, result), (kind, result.model_dump_json()[:2000])
        figures["redis_mb_after_warmup"] = round(used_memory(r) / MB, 2)
        keys = keys_in(r)
        figures["redis_keys_after_warmup"], figures["redis_keys_no_ttl_after_warmup"] = keys
    # the probes' own tenant is not capped: they measure Redis, not admission
    uncapped = Client(dataclasses.replace(client.settings, tenant_max_tests=0))
    queued, queued_figures = probe_queued(uncapped, counts.probe, redis.Redis.from_url(broker), r)
    figures |= queued_figures
    with worker("soak"):
        for handle in queued:  # the next worker answers them
            assert handle.result(timeout=counts.timeout_s).verdict == "AC"
        del queued
        figures |= probe_answered(uncapped, counts.probe, r, counts.timeout_s)
        figures |= stream(counts, r)
        figures["redis_mb_at_drain"] = round(used_memory(r) / MB, 2)
        if counts.settle:
            settle(r, EXPIRES_S + 5)
        figures["redis_end_mb"] = round(used_memory(r) / MB, 2)
        figures["redis_keys_end"], figures["redis_keys_no_ttl_end"] = keys_in(r)
    figures["ratio_redis_end_over_after_warmup"] = round(
        float(figures["redis_end_mb"]) / float(figures["redis_mb_after_warmup"]),  # type: ignore[arg-type]
        2,
    )
    return figures


def stream(counts: Counts, r: redis.Redis) -> dict[str, object]:
    """The honest tenant alone, then under the flood; both in processes of their own."""
    now = time.time()
    phases = Phases(start=now + 5, flood=now + 5 + counts.alone_s, end=0)  # 5 s: to import
    phases.end = phases.flood + counts.flood_s
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        outs = {name: str(Path(tmp) / f"{name}.jsonl") for name in ("honest", "flood")}
        honest = [k.name for k in HONEST]
        flood = [k.name for k in FLOOD]
        procs = [
            spawn.Process(
                target=tenant,
                args=("honest", honest, phases.start, phases.end, counts.honest_per_s, counts),
                kwargs={"out": outs["honest"]},
            ),
            spawn.Process(
                target=tenant,
                args=("flood", flood, phases.flood, phases.end, 0, counts),
                kwargs={"out": outs["flood"]},
            ),
        ]
        for proc in procs:
            proc.start()
        cpu: dict[str, float] = {}
        held = InFlight(r)
        with MemorySampler(r, every_s=0.2) as sampler:
            for mark, at in (("start", phases.start), ("flood", phases.flood), ("end", phases.end)):
                while time.time() < at:
                    if mark == "end":
                        held.sample()
                    time.sleep(min(0.2, max(0.0, at - time.time())))
                cpu[mark] = cpu_s(r)
            for proc in procs:
                proc.join()
                assert proc.exitcode == 0, f"a tenant's process failed ({proc.exitcode})"
        records = [
            json.loads(line)
            for path in outs.values()
            for line in Path(path).read_text().splitlines()
        ]
    if os.environ.get("BENCH_SOAK_RECORDS"):  # every submission's record, to look into
        Path(os.environ["BENCH_SOAK_RECORDS"]).write_text(
            "".join(json.dumps(rec) + "\n" for rec in records)
        )
    return figures_of(records, phases, cpu, sampler.peak) | held.figures()


class InFlight:
    """Each tenant's tests in flight as admission counts them (the ``tests`` field of its
    ``runner:tenant:<name>`` hash), sampled during the flood: the most."""

    def __init__(self, r: redis.Redis) -> None:
        self._r = r
        self.most = {"honest": 0, "flood": 0}

    def sample(self) -> None:
        for name in self.most:
            tests = int(self._r.hget(f"runner:tenant:{name}", "tests") or 0)
            self.most[name] = max(self.most[name], tests)

    def figures(self) -> dict[str, object]:
        return {
            "honest_max_tests_in_flight": self.most["honest"],
            "flood_max_tests_in_flight": self.most["flood"],
        }


def figures_of(
    records: list[dict[str, Any]], phases: Phases, cpu: dict[str, float], peak: int
) -> dict[str, object]:
    accepted = [rec for rec in records if "id" in rec]
    honest = [rec for rec in accepted if rec["tenant"] == "honest"]
    alone = [rec for rec in honest if rec["sent"] < phases.flood]
    flooded = [rec for rec in honest if rec["sent"] >= phases.flood]
    flood = [rec for rec in accepted if rec["tenant"] == "flood"]
    refused: dict[str, int] = {}
    for rec in records:
        if "refused" in rec:
            key = f"{rec['tenant']}_{rec['refused']}"
            refused[key] = refused.get(key, 0) + 1
    answered = [rec for rec in accepted if rec.get("answered")]
    in_flood = [rec for rec in answered if phases.flood <= rec["answered"] <= phases.end]
    tests_alone = sum(rec["tests"] for rec in alone)
    tests_in_flood = sum(rec["tests"] for rec in in_flood)
    figures: dict[str, object] = {
        "submissions": len(accepted),
        "tests": sum(rec["tests"] for rec in accepted),
        "lost": sum(bool(rec.get("lost")) for rec in accepted),
        "wrong": sum(not rec.get("right", True) for rec in honest),
        "flood_unexpected_verdicts": sum(not rec.get("right", True) for rec in flood),
        "refused": sum(refused.values()),
        "refused_by": refused,
        "tests_per_s": round(
            sum(rec["tests"] for rec in in_flood) / (phases.end - phases.flood), 1
        ),
        "honest_p50_ms_alone": latency(alone, 0.5),
        "honest_p95_ms_alone": latency(alone, 0.95),
        "honest_p50_ms_flood": latency(flooded, 0.5),
        "honest_p95_ms_flood": latency(flooded, 0.95),
        "honest_test_wall_ms_alone": wall_per_test(alone),
        "honest_test_wall_ms_flood": wall_per_test(flooded),
        "flood_p50_ms": latency(flood, 0.5),
        "flood_p95_ms": latency(flood, 0.95),
        "honest_submissions_alone": len(alone),
        "honest_submissions_flood": len(flooded),
        "flood_submissions": len(flood),
        "redis_peak_mb": round(peak / MB, 2),
        "redis_cpu_ms_per_test_alone": round(
            1000 * (cpu["flood"] - cpu["start"]) / max(1, tests_alone), 3
        ),
        "redis_cpu_ms_per_test_flood": round(
            1000 * (cpu["end"] - cpu["flood"]) / max(1, tests_in_flood), 3
        ),
    }
    figures["ratio_honest_p95_flood_over_alone"] = round(
        float(figures["honest_p95_ms_flood"]) / max(0.1, float(figures["honest_p95_ms_alone"])),  # type: ignore[arg-type]
        2,
    )
    return figures
