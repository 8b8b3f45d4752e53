"""Shared state under abuse, with real Redis, real workers and real Docker: the program cache
keeps to its budget while another tenant is judged, the queue bound refuses with its code on
both enqueue paths, and a run leaves no key in Redis that would live forever."""

from __future__ import annotations

import os
import random
import subprocess
import time
from dataclasses import replace
from datetime import datetime
from itertools import pairwise

import pytest
import redis

from tests.conftest import TEST_ENV
from tests.fleet.conftest import RUNNER, Worker
from worker.client import Client
from worker.keyspace import ARTIFACT as PREFIX
from worker.keyspace import ARTIFACTS_BYTES as TOTAL
from worker.settings import Settings

pytestmark = [pytest.mark.docker, pytest.mark.redis]

# A C++ program whose 400 KB table is computed while it compiles: a source of a few hundred
# bytes, a program that no compression shrinks (one per seed).
BULKY = """
#include <array>
#include <cstdint>
#include <cstdio>
constexpr auto TABLE = [] {
    std::array<uint32_t, 100000> a{};
    uint32_t x = SEED;
    for (auto &v : a) { x = x * 1664525u + 1013904223u; v = x; }
    return a;
}();
int main() { unsigned i; if (scanf("%u", &i) == 1) printf("%u\\n", TABLE[i % 100000] & 1); }
"""


def bulky(seed: int) -> str:
    return BULKY.replace("SEED", f"{seed}u")


def expected(seed: int) -> str:
    x = seed
    for _ in range(8):
        x = (x * 1664525 + 1013904223) % 2**32
    return f"{x & 1}\n"


def submission(seed: int, tenant: str) -> dict[str, object]:
    return {
        "language": "cpp",
        "source": bulky(seed),
        "tests": [{"stdin": "7", "expected_stdout": expected(seed)}],
        "tenant": tenant,
    }


def test_a_compile_flood_stays_within_the_cache_budget_and_others_are_judged(
    workers, redis_db: redis.Redis
) -> None:
    """Eight distinct bulky programs from one tenant through a 1 MB cache: what is stored
    never passes the budget, another tenant's submission is judged meanwhile, and a flooded
    program that was evicted is compiled again when it comes back: AC, not IE."""
    # no copy in the worker's memory: every program comes from the cache Redis
    workers("cache", RUNNER_CACHE_BUDGET_MB="1", RUNNER_ARTIFACT_CACHE_MB="0")
    client = Client(Settings.from_env())
    backend = redis.Redis.from_url(TEST_ENV["RUNNER_RESULT_BACKEND"])
    seeds = random.Random(time.time()).sample(range(1, 2**31), 8)
    flood = [client.submit(submission(seed, "flood")) for seed in seeds]
    honest = client.submit(
        {
            "language": "python",
            "source": "print(int(input())*2)",
            "tenant": "honest",
            "tests": [{"stdin": "21", "expected_stdout": "42"}],
        }
    )
    assert honest.result(timeout=120).verdict == "AC"
    assert [h.result(timeout=240).verdict for h in flood] == ["AC"] * 8
    stored = int(backend.get(TOTAL) or 0)
    assert 0 < stored <= 2**20
    assert len(backend.keys(PREFIX + "*")) <= 3  # 400 KB each, and the Python one
    again = client.submit(submission(seeds[0], "flood")).result(timeout=120)
    assert again.verdict == "AC" and again.compile is not None and not again.compile.cached


def test_a_full_queue_refuses_on_both_paths_and_loses_nothing(
    workers, redis_db: redis.Redis
) -> None:
    """Past RUNNER_MAX_QUEUED_TESTS: the Python producer refuses at once (three tests in
    flight, no worker yet); a worker refuses what is sent by name with the same code; what was
    accepted before is judged once a worker runs."""
    settings = replace(Settings.from_env(), max_queued_tests=4)
    client = Client(settings)
    program = {"language": "python", "source": "print(input())"}
    accepted = client.submit({**program, "tests": [{"stdin": str(i)} for i in range(3)]})
    refused = client.submit({**program, "tests": [{"stdin": "a"}, {"stdin": "b"}]}).result()
    assert (refused.verdict, refused.error and refused.error.code) == ("RJ", "fleet_busy")
    assert "3 tests are in flight" in refused.error.message  # type: ignore[union-attr]
    # operators see the same figure (and no worker yet)
    status = subprocess.run(
        [str(RUNNER), "status"],
        env={**os.environ, "RUNNER_MAX_QUEUED_TESTS": "4"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "3 tests in flight (bound 4)" in status.stdout, status.stdout + status.stderr
    workers("bound", RUNNER_MAX_QUEUED_TESTS="4")
    assert accepted.result(timeout=60).verdict == "AC"
    by_name = client.send({**program, "tests": [{"stdin": str(i)} for i in range(5)]})
    out = by_name.result(timeout=60)
    assert (out.verdict, out.error and out.error.code) == ("RJ", "fleet_busy")


# Kept by the fleet, not by a run: kombu's bindings and its (emptied) unacked records, the
# consumers' registry, the images' identities.
FLEET_KEYS = ("_kombu.binding", "unacked", "_runner.consumers", "runner:identity:")


def test_a_run_leaves_no_key_without_an_expiry(workers, redis_db: redis.Redis) -> None:
    workers("ttl")
    client = Client(Settings.from_env())
    big = "1 " * 60_000  # over RUNNER_INLINE_DATA_KB: stored by reference
    results = [
        client.submit(
            {
                "language": language,
                "source": source,
                "tenant": "t",
                "tests": [{"stdin": big, "expected_stdout": big}, {"stdin": "5"}],
            }
        ).result(timeout=120)
        for language, source in (
            ("python", "import sys\nsys.stdout.write(sys.stdin.read())"),
            ("c", "#include <stdio.h>\nint main(){int c;while((c=getchar())!=EOF)putchar(c);}"),
        )
    ]
    assert [r.verdict for r in results] == ["AC", "AC"]
    forever = []
    for url in (TEST_ENV["RUNNER_BROKER_URL"], TEST_ENV["RUNNER_RESULT_BACKEND"]):
        db = redis.Redis.from_url(url)
        for key in db.keys("*"):
            name = key.decode(errors="replace")
            if db.ttl(key) == -1 and not name.startswith(FLEET_KEYS):
                forever.append(f"{url.rsplit('/', 1)[1]}:{name}")
    assert forever == []


def test_a_flooding_tenants_backlog_does_not_delay_another_tenants_test(
    workers, redis_db: redis.Redis
) -> None:
    """One worker, one test at a time. A tenant sends twelve slow tests; another tenant's
    test, sent a second later, is the next one the worker takes, not the thirteenth."""
    worker = workers("fair", concurrency=1)
    client = Client(Settings.from_env())
    slow = {"language": "python", "source": "import time\ntime.sleep(0.4)\nprint(input())"}
    flood = client.submit(
        {**slow, "id": "flood", "tenant": "flood", "tests": [{"stdin": str(i)} for i in range(12)]}
    )
    time.sleep(1.0)  # the flood's first tests are running
    honest = client.submit({**slow, "id": "honest", "tenant": "honest", "tests": [{"stdin": "x"}]})
    assert honest.result(timeout=60).verdict == "AC"
    assert flood.result(timeout=60).verdict == "AC"
    order = [e["submission_id"] for e in worker.events("test.done")]
    assert sorted(order) == ["flood"] * 12 + ["honest"]
    assert order.index("honest") <= 4, f"{order.index('honest')} of the flood's tests ran first"


def intervals(worker: Worker, submission: str) -> list[tuple[float, float]]:
    """When each test of a submission ran, from the worker's test.done events."""
    spans = []
    for event in worker.events("test.done"):
        if event["submission_id"] == submission:
            end = datetime.fromisoformat(str(event["timestamp"])).timestamp()
            spans.append((end - float(event["duration_ms"]) / 1000, end))  # type: ignore[arg-type]
    return sorted(spans)


def test_while_another_tenant_is_active_a_tenant_runs_no_more_than_its_share_of_slots(
    workers, redis_db: redis.Redis
) -> None:
    """Two slots, the default share of 50 %: once another tenant has been active, the flood's
    slow tests (as infinite loops would hold their slots) run one at a time, so the other
    tenant's test sent later finds the second slot free and runs beside them."""
    worker = workers("share", concurrency=2)
    client = Client(Settings.from_env())
    quick = {"language": "python", "source": "print(input())", "tenant": "honest"}
    assert client.submit({**quick, "tests": [{"stdin": "1"}]}).result(timeout=60).verdict == "AC"
    slow = {"language": "python", "source": "import time\ntime.sleep(0.5)\nprint(input())"}
    flood = client.submit(
        {**slow, "id": "flood", "tenant": "flood", "tests": [{"stdin": str(i)} for i in range(6)]}
    )
    time.sleep(1.0)
    honest = client.submit({**slow, "id": "honest", "tenant": "honest", "tests": [{"stdin": "x"}]})
    assert honest.result(timeout=60).verdict == "AC"
    assert flood.result(timeout=60).verdict == "AC"
    spans = intervals(worker, "flood")
    assert len(spans) == 6
    overlaps = [(a, b) for a, b in pairwise(spans) if b[0] < a[1] - 0.05]
    assert not overlaps, f"the flood ran two at a time: {overlaps}"
    ((start, end),) = intervals(worker, "honest")
    assert any(s < end and start < e for s, e in spans), "the honest test waited for a free slot"
