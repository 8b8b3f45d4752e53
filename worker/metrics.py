"""A worker's Prometheus metrics, served on ``RUNNER_METRICS_PORT`` (``/metrics``) by
``runner worker`` and ``celery -A worker.app worker`` alike (one process per worker: the
thread and solo pools are the only ones a worker runs).

Counted as work happens: tests by language and verdict, submissions by verdict, each test's
time in its task and in the queue before it (from the producer's clock to the worker's: hosts
should keep NTP time), sandbox runs that failed and were retried, idle sandboxes that failed a
health probe. Read at each scrape from the pools: idle, busy and starting sandboxes, leases,
waits for a sandbox, jobs, containers created and recycled (by reason). docs/monitoring.md has
the queries.

Every series carries ``worker``: the Celery node name (``runner@<host>``), which is what Flower
calls the worker in its own series and pages, so the two join
(``... * on (worker) group_left flower_worker_online``). Prometheus itself only knows a
worker by its address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()
# a trivial test takes ~5 ms in its sandbox; limits go to seconds
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

TESTS = Counter(
    "runner_tests", "Tests judged, by language and verdict", ["language", "verdict"],
    registry=REGISTRY,
)  # fmt: skip
SUBMISSIONS = Counter(
    "runner_submissions", "Submissions joined, by overall verdict", ["verdict"], registry=REGISTRY
)
TEST_SECONDS = Histogram(
    "runner_test_seconds",
    "A test task's time on the worker: sandbox run, checker, bookkeeping",
    ["language"],
    buckets=SECONDS,
    registry=REGISTRY,
)
QUEUE_SECONDS = Histogram(
    "runner_queue_wait_seconds",
    "From the submission's sending to its test task's start",
    buckets=SECONDS,
    registry=REGISTRY,
)
SANDBOX_FAILURES = Counter(
    "runner_sandbox_failures",
    "Sandbox runs that failed (the job is retried once on another sandbox)",
    ["image"],
    registry=REGISTRY,
)
HEALTH_FAILURES = Counter(
    "runner_health_check_failures",
    "Idle sandboxes that failed their health probe (recycled)",
    ["image"],
    registry=REGISTRY,
)


class PoolCollector(Collector):
    """The pools' own counters and gauges, read when Prometheus scrapes."""

    def __init__(self, states: Callable[[], list[dict[str, object]]]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        states = self._states()
        gauges = {
            name: GaugeMetricFamily(f"runner_pool_{name}", f"Sandboxes {name}", labels=["image"])
            for name in ("idle", "busy", "starting")
        }
        counters = {
            name: CounterMetricFamily(f"runner_pool_{name}", about, labels=["image"])
            for name, about in (
                ("leases", "Sandboxes leased to a job"),
                ("waits", "Leases that waited for a free sandbox"),
                ("jobs", "Jobs run"),
                ("created", "Sandbox containers created"),
            )
        }
        wait = CounterMetricFamily(
            "runner_pool_wait_seconds", "Time leases waited for a free sandbox", labels=["image"]
        )
        recycled = CounterMetricFamily(
            "runner_pool_recycles", "Sandboxes recycled, by reason", labels=["image", "reason"]
        )
        for state in states:
            image = str(state["image"])
            for name, gauge in gauges.items():
                gauge.add_metric([image], float(state[name]))  # type: ignore[arg-type]
            for name, counter in counters.items():
                counter.add_metric([image], float(state[name]))  # type: ignore[arg-type]
            wait.add_metric([image], float(state["wait_s"]))  # type: ignore[arg-type]
            for reason, count in dict(state["recycles"]).items():  # type: ignore[call-overload]
                recycled.add_metric([image, str(reason)], float(count))
        yield from gauges.values()
        yield from counters.values()
        yield wait
        yield recycled


class Labelled(Collector):
    """Every series of ``registry`` with one more label, the same on all of them."""

    def __init__(self, registry: CollectorRegistry, name: str, value: str) -> None:
        self._registry = registry
        self._label = (name, value)

    def collect(self) -> Iterator[Metric]:
        name, value = self._label
        for family in self._registry.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                sample._replace(labels={**sample.labels, name: value}) for sample in family.samples
            ]
            yield labelled


def exported(worker: str) -> CollectorRegistry:
    """What ``/metrics`` serves: this process's series, each labelled with its worker."""
    served = CollectorRegistry(auto_describe=False)
    served.register(Labelled(REGISTRY, "worker", worker))
    return served


def serve(port: int, states: Callable[[], list[dict[str, object]]], worker: str) -> None:
    """Serve ``/metrics`` on ``port`` (all addresses) from a thread of this process; every
    series labelled ``worker`` (the Celery node name, as Flower names it)."""
    REGISTRY.register(PoolCollector(states))
    start_http_server(port, registry=exported(worker))
