"""Shared state under abuse, with real Redis, real workers and real Docker: the program cache
keeps to its budget while another tenant is judged, the queue bound refuses with its code on
both enqueue paths, and a run leaves no key in Redis that would live forever."""

from __future__ import annotations

import os
import random
import subprocess
import time
from dataclasses import replace

import pytest
import redis

from tests.conftest import TEST_ENV
from tests.fleet.conftest import RUNNER
from worker.artifacts import PREFIX, TOTAL
from worker.client import Client
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


def test_a_flooding_tenant_waits_behind_another_tenants_submission(
    workers, redis_db: redis.Redis
) -> None:
    """One worker, one test at a time. While another tenant has work in flight, a tenant
    sends twelve slow tests, past its fair share of two: they wait at the lowest priority.
    The other tenant's next test, sent after them, is judged before most of them."""
    worker = workers("fair", concurrency=1, RUNNER_TENANT_FAIR_TESTS="2")
    client = Client(replace(Settings.from_env(), tenant_fair_tests=2))
    slow = {"language": "python", "source": "import time\ntime.sleep(0.4)\nprint(input())"}
    first = client.submit({**slow, "id": "first", "tenant": "honest", "tests": [{"stdin": "1"}]})
    flood = client.submit(
        {**slow, "id": "flood", "tenant": "flood", "tests": [{"stdin": str(i)} for i in range(12)]}
    )
    time.sleep(1.0)  # the flood's first tests are running
    honest = client.submit({**slow, "id": "honest", "tenant": "honest", "tests": [{"stdin": "x"}]})
    assert honest.result(timeout=60).verdict == "AC"
    assert flood.result(timeout=60).verdict == first.result(timeout=60).verdict == "AC"
    order = [
        e["submission_id"] for e in worker.events("test.done") if e["submission_id"] != "first"
    ]
    assert sorted(order) == ["flood"] * 12 + ["honest"]
    assert order.index("honest") <= 6, f"{order.index('honest')} of the flood's tests ran first"


def test_a_tenant_at_its_running_cap_leaves_a_slot_free_for_another(
    workers, redis_db: redis.Redis
) -> None:
    """Two slots, a running cap of one: once another tenant has work in flight, the tenant
    holding the most (slow tests, as infinite loops would hold their slots) runs one test at
    a time, so the other's test sent after twelve of them runs within a few, not after all."""
    worker = workers("slots", concurrency=2, RUNNER_TENANT_MAX_RUNNING="1")
    client = Client(Settings.from_env())
    slow = {"language": "python", "source": "import time\ntime.sleep(0.5)\nprint(input())"}
    flood = client.submit(
        {**slow, "id": "flood", "tenant": "flood", "tests": [{"stdin": str(i)} for i in range(12)]}
    )
    time.sleep(1.0)  # alone, the flood runs two at a time
    honest = client.submit({**slow, "id": "honest", "tenant": "honest", "tests": [{"stdin": "x"}]})
    assert honest.result(timeout=60).verdict == "AC"
    assert flood.result(timeout=120).verdict == "AC"
    order = [e["submission_id"] for e in worker.events("test.done")]
    assert sorted(order) == ["flood"] * 12 + ["honest"]
    assert order.index("honest") <= 7, f"{order.index('honest')} of the flood's tests ran first"
    assert worker.events("test.deferred")
