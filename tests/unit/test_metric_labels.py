"""A worker's /metrics (worker.metrics): every series names its worker as Flower does."""

from __future__ import annotations

from prometheus_client import generate_latest

from worker import metrics


def test_every_series_is_labelled_with_the_workers_celery_node_name() -> None:
    """Flower's series say worker="runner@<host>"; Prometheus knows a worker only by its
    address. With the same label on ours, the two join on it."""
    metrics.TESTS.labels("python", "AC").inc()
    metrics.QUEUE_SECONDS.observe(0.01)
    text = generate_latest(metrics.exported("runner@c0ffee")).decode()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert any(line.startswith("runner_tests_total{") for line in samples), text
    assert any(line.startswith("runner_queue_wait_seconds_bucket{le=") for line in samples)
    for line in samples:
        assert 'worker="runner@c0ffee"' in line, line
