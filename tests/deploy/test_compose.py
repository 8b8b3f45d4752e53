"""deploy/docker-compose.yml with Debian's docker-compose 1.29, offline.

The images come from ``scripts/fleet-images`` (runner-redis and runner-flower stand in for the
public images when those cannot be pulled). The stack runs under a project name of its own, on
free ports, with two workers; a submission goes in through the published Redis port and must be
judged; ``down -v`` must leave no container of the project and no sandbox of its workers.

The producer runs in a subprocess: ``worker.app.app`` reads its configuration from
``os.environ`` once per process, and tests/conftest.py has pointed it at the suite's own Redis
databases. A second Celery app would not help either: ``worker.workflow.canvas`` signs every
task with that module-level app, so the chord would still go to the suite's broker. A child
process whose environment names the stack's Redis gets a correctly configured app, and uses
``Client(Settings.from_env(...))`` as a producer on the host would; it checks that the app's
broker is the stack's before it sends anything.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from tests.conftest import RUN_ID, free_port
from worker.sandbox.container import LABEL_OWNER, LABEL_SANDBOX

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
DOCKER_COMPOSE = "/usr/bin/docker-compose"
IMAGE_VARIABLES = {
    "REDIS_IMAGE",
    "FLOWER_IMAGE",
    "WORKER_IMAGE",
    "API_IMAGE",
    "PROMETHEUS_IMAGE",
    "DOCKER_GID",
}
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"

# Run with the same two URLs in its environment: the Celery app (which sends the canvas) reads
# them from there, the Client's own Redis connection from the Settings given to it. The check
# stops the producer before it could send anything to another Redis.
PRODUCER = """
import json, sys
from worker.app import app
from worker.client import Client
from worker.settings import Settings

port = sys.argv[1]
settings = Settings.from_env({
    "RUNNER_BROKER_URL": f"redis://127.0.0.1:{port}/0",
    "RUNNER_RESULT_BACKEND": f"redis://127.0.0.1:{port}/1",
})
assert app.conf.broker_url == settings.broker_url, app.conf.broker_url
assert app.conf.result_backend == settings.result_backend, app.conf.result_backend
submission = json.loads(sys.argv[2])
print(Client(settings).submit(submission).result(timeout=120).model_dump_json())
"""

SUBMISSION = {
    "id": "compose-sum",
    "language": "python",
    "source": "a, b = map(int, input().split())\nprint(a + b)\n",
    "tests": [
        {"id": "small", "stdin": "1 2\n", "expected_stdout": "3\n"},
        {"id": "wrong", "stdin": "2 2\n", "expected_stdout": "5\n"},
        {"id": "big", "stdin": "1000000 2000000\n", "expected_stdout": "3000000\n"},
    ],
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the suite's RUNNER_* settings (tests/conftest.py
    sets them for the host's test Redis), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env.update(extra)
    return env


def compose(
    project: str, env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "-p", project, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse_exports(stdout: str) -> dict[str, str]:
    exports = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            exports[key] = value
    return exports


@pytest.fixture(scope="module")
def fleet_images() -> dict[str, str]:
    """The variables ``eval "$(scripts/fleet-images)"`` would set."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "fleet-images")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/fleet-images failed:\n{result.stderr[-3000:]}")
    exports = parse_exports(result.stdout)
    assert set(exports) == IMAGE_VARIABLES, result.stdout
    # Nothing but the exports on stdout, so that eval runs nothing else.
    assert len(result.stdout.strip().splitlines()) == len(IMAGE_VARIABLES), result.stdout
    return exports


def test_compose_file_is_valid_and_fails_clearly_without_its_secrets() -> None:
    env = clean_env(DOCKER_GID="0", FLOWER_PASSWORD="x")
    result = compose(f"runnercfg{RUN_ID}", env, "config", "-q", timeout=60)
    assert result.returncode == 0, result.stderr
    for missing in ("FLOWER_PASSWORD", "DOCKER_GID"):
        partial = {k: v for k, v in env.items() if k != missing}
        result = compose(f"runnercfg{RUN_ID}", partial, "config", "-q", timeout=60)
        assert result.returncode != 0 and missing in result.stderr, missing


def test_compose_file_keeps_workers_scalable_and_ports_local() -> None:
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "version" not in spec, "Compose v2 ignores it, newer releases warn"
    services = spec["services"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["stop_grace_period"] in ("90s", "2m")
    assert worker["init"] is True and worker["restart"] == "unless-stopped"
    assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    for name in ("redis", "flower", "api", "prometheus"):
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), (name, port)
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--maxmemory" in command  # admission refuses work before Redis is full
    # compiled programs in a Redis of their own that may evict, and nothing else there
    cache = services["cache"]["command"]
    assert cache[cache.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert worker["environment"]["RUNNER_CACHE_URL"].startswith("redis://cache:")
    assert "ports" not in services["cache"]


@pytest.fixture
def stack(fleet_images: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """A project name and the environment to run docker-compose for it; always torn down."""
    project = f"runnertest{RUN_ID}{uuid.uuid4().hex[:4]}"
    env = clean_env(
        **fleet_images,
        FLOWER_USER="admin",
        FLOWER_PASSWORD=secrets.token_urlsafe(12),
        REDIS_PORT=str(free_port()),
        FLOWER_PORT=str(free_port()),
        API_PORT=str(free_port()),
        PROMETHEUS_PORT=str(free_port()),
        # one test at a time per worker: four warm sandboxes each, not sixteen
        RUNNER_CONCURRENCY="1",
    )
    yield project, env
    compose(project, env, "down", "-v", "--remove-orphans", timeout=300)


def project_containers(client: docker.DockerClient, project: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})


def sandboxes_of_hosts(client: docker.DockerClient, hosts: list[str]) -> list[Any]:
    found = client.containers.list(all=True, filters={"label": f"{LABEL_SANDBOX}=1"})
    return [c for c in found if any(h in c.labels.get(LABEL_OWNER, "") for h in hosts)]


def wait_healthy(client: docker.DockerClient, project: str, timeout: float = 300) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {}
        for container in project_containers(client, project):
            container.reload()
            health = container.attrs["State"].get("Health", {}).get("Status", "none")
            states[container.name] = health
        if states and all(s == "healthy" for s in states.values()):
            return states
        if any(s == "unhealthy" for s in states.values()):
            break
        time.sleep(3)
    pytest.fail(f"not every container became healthy: {states}")


@pytest.mark.docker
@pytest.mark.redis
@pytest.mark.timeout(1800)
def test_stack_comes_up_offline_judges_and_leaves_nothing_behind(
    stack: tuple[str, dict[str, str]], docker_client: docker.DockerClient
) -> None:
    project, env = stack
    for variable in sorted(IMAGE_VARIABLES - {"DOCKER_GID"}):
        # present locally: `up` pulls nothing, so it works with no registry
        docker_client.images.get(env[variable])

    up = compose(project, env, "up", "-d", "--no-build", "--scale", "worker=2", timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    states = wait_healthy(docker_client, project)
    workers = [
        c for c in project_containers(docker_client, project) if c.labels[SERVICE_LABEL] == "worker"
    ]
    # redis, cache, the API, flower, prometheus and the two workers
    assert len(workers) == 2 and len(states) == 7, states
    hosts = [c.attrs["Config"]["Hostname"] for c in workers]
    # the workers prewarmed their pools on this host's engine, as runner@<hostname>
    owners = {c.labels[LABEL_OWNER] for c in sandboxes_of_hosts(docker_client, hosts)}
    assert owners == {f"runner@{h}" for h in hosts}

    producer = subprocess.run(
        [sys.executable, "-c", PRODUCER, env["REDIS_PORT"], json.dumps(SUBMISSION)],
        env=clean_env(
            RUNNER_BROKER_URL=f"redis://127.0.0.1:{env['REDIS_PORT']}/0",
            RUNNER_RESULT_BACKEND=f"redis://127.0.0.1:{env['REDIS_PORT']}/1",
        ),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert producer.returncode == 0, producer.stderr[-3000:]
    result = json.loads(producer.stdout.strip().splitlines()[-1])
    assert [t["id"] for t in result["tests"]] == ["small", "wrong", "big"]
    assert [t["verdict"] for t in result["tests"]] == ["AC", "WA", "AC"]
    assert (result["verdict"], result["passed"], result["total"]) == ("WA", 2, 3)

    # Flower sees both workers through their events, behind its basic auth.
    url = f"http://127.0.0.1:{env['FLOWER_PORT']}/api/workers?refresh=1"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(url, timeout=30)
    assert denied.value.code == 401
    token_flower = base64.b64encode(f"admin:{env['FLOWER_PASSWORD']}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token_flower}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert set(json.load(response)) == {f"runner@{h}" for h in hosts}

    # The HTTP API, with a key made inside its container as the docs say
    made = compose(project, env, "exec", "-T", "api", "runner", "keys", "create", "ci", "--json")
    assert made.returncode == 0, made.stderr[-3000:]
    token = json.loads(made.stdout)["token"]
    api = f"http://127.0.0.1:{env['API_PORT']}"
    sent = urllib.request.Request(
        api + "/v1/submissions?wait=60",
        data=json.dumps(SUBMISSION).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(sent, timeout=90) as response:
        answer = json.load(response)
    assert (answer["state"], answer["result"]["verdict"]) == ("done", "WA"), answer

    # Flower's documented routes: send-task with no queue, then the result (it has a backend)
    flower = f"http://127.0.0.1:{env['FLOWER_PORT']}"
    auth = {"Authorization": f"Basic {token_flower}", "Content-Type": "application/json"}
    sent = urllib.request.Request(
        flower + "/api/task/send-task/runner.submit",
        data=json.dumps({"args": [SUBMISSION]}).encode(),
        headers=auth,
    )
    with urllib.request.urlopen(sent, timeout=30) as response:
        task_id = json.load(response)["task-id"]
    deadline = time.monotonic() + 120
    while True:
        asked = urllib.request.Request(flower + f"/api/task/result/{task_id}", headers=auth)
        with urllib.request.urlopen(asked, timeout=30) as response:
            state = json.load(response)
        if state["state"] == "SUCCESS" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert state["result"]["verdict"] == "WA", state

    # Prometheus scrapes both workers' own metrics (found through the network's DNS) and
    # Flower's: the verdicts judged above are there
    prometheus = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}/api/v1/query?query="
    wanted = {
        'count(up{job="workers"} == 1)': 2,
        'sum(up{job="flower"})': 1,
        'sum(runner_tests_total{verdict="WA"})': 3,  # the producer's, the API's, Flower's
    }
    deadline = time.monotonic() + 90
    while True:
        got = {}
        for query in wanted:
            with urllib.request.urlopen(prometheus + urllib.parse.quote(query), timeout=30) as r:
                found = json.load(r)["data"]["result"]
            got[query] = float(found[0]["value"][1]) if found else None
        if got == wanted or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert got == wanted

    down = compose(project, env, "down", "-v", timeout=300)
    assert down.returncode == 0, down.stderr[-3000:]
    assert project_containers(docker_client, project) == []
    assert sandboxes_of_hosts(docker_client, hosts) == []
    assert not docker_client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"})
