"""A worker's own Prometheus metrics (RUNNER_METRICS_PORT), scraped from a real worker that
judged real submissions."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import free_port
from tests.fleet.conftest import Worker
from worker.client import Client
from worker.images.catalog import image_ref
from worker.settings import Settings

pytestmark = [pytest.mark.docker, pytest.mark.redis]


def scrape(port: int, worker: str) -> dict[str, float]:
    """The samples, by series without the ``worker`` label, which every one must carry with
    the worker's Celery node name (Flower's name for it)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    label = f'worker="{worker}"'
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            assert label in series, series
            series = series.replace("," + label, "").replace(label, "").replace("{}", "")
            samples[series] = float(value)
    return samples


def test_a_workers_metrics_count_its_verdicts_times_and_pools(workers: Any, client: Client) -> None:
    port = free_port()
    worker = workers("metrics", RUNNER_METRICS_PORT=str(port))
    source = "print(int(input()) + 1)"
    tests = [{"stdin": "1", "expected_stdout": "2"}, {"stdin": "1", "expected_stdout": "3"}]
    result = client.submit({"language": "python", "source": source, "tests": tests}).result(60)
    assert result.verdict == "WA"
    samples = scrape(port, worker.name)
    assert samples['runner_tests_total{language="python",verdict="AC"}'] == 1
    assert samples['runner_tests_total{language="python",verdict="WA"}'] == 1
    assert samples['runner_submissions_total{verdict="WA"}'] == 1
    assert samples['runner_test_seconds_count{language="python"}'] == 2
    assert samples["runner_queue_wait_seconds_count"] == 2
    assert samples["runner_queue_wait_seconds_sum"] > 0
    idle = [series for series in samples if series.startswith("runner_pool_idle")]
    pools = {series.split('image="')[1].split('"')[0] for series in idle}
    python = image_ref(Settings.from_env().image_prefix, "python")
    assert python in pools, pools
    # the compile step and both tests leased the python image's sandboxes
    assert samples[f'runner_pool_leases_total{{image="{python}"}}'] >= 3
    assert samples[f'runner_pool_busy{{image="{python}"}}'] == 0


def test_a_metrics_port_in_use_refuses_the_start(
    tmp_path: Path, redis_db: redis.Redis, docker_client: Any, images: Any
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = Worker(tmp_path, "clash", RUNNER_METRICS_PORT=str(port)).run_to_exit(timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"runner: the worker cannot start: RUNNER_METRICS_PORT={port}: cannot serve metrics"
        )
    )
