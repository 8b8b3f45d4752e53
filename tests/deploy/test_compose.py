"""deploy/docker-compose.yml with Debian's docker-compose 1.29, offline, and the commands the
docs and the demo give for it, run as they are written.

The images come from ``scripts/fleet-images`` (runner-redis and runner-flower stand in for the
public images when those cannot be pulled). The stack runs under a project name of its own, on
free ports, with two workers, brought up by deploy/README.md's own command block (only the
project's name and the number of workers changed); a submission goes in through the published
Redis port and must be judged; ``down -v`` must leave no container of the project and no
sandbox of its workers.

The demo's test runs ``scripts/demo`` (a project and ports of its own, ``DEMO_PROJECT``), then
every command it prints, verbatim, in a terminal as a person pastes them (``script`` gives them
a tty: ``docker-compose exec`` wants one), and README.md's command blocks against its stack.

The producer runs in a subprocess: ``worker.app.app`` reads its configuration from
``os.environ`` once per process, and tests/conftest.py has pointed it at the suite's own Redis
databases. A second Celery app would not help either: ``worker.producer.workflow.canvas`` signs
every task with that module-level app, so the chord would still go to the suite's broker. A child
process whose environment names the stack's Redis gets a correctly configured app, and uses
``Client(Settings.from_env(...))`` as a producer on the host would; it checks that the app's
broker is the stack's before it sends anything.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
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
    "REGISTRY_IMAGE",
}
# everything `eval "$(scripts/fleet-images)"` sets: the images, the registry service's htpasswd
EXPORTS = IMAGE_VARIABLES | {"REGISTRY_HTPASSWD_FILE", "DOCKER_GID"}
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


def md_block(path: Path, needle: str) -> str:
    """The fenced code block of a Markdown file that holds ``needle`` (there must be one)."""
    found = [
        block
        for block in re.findall(r"^```[a-z]*\n(.*?)^```", path.read_text(), re.M | re.S)
        if needle in block
    ]
    assert len(found) == 1, f"{len(found)} blocks of {path} hold {needle!r}"
    return str(found[0])


def pasted(
    command: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``command`` run as a person pasting it into a terminal runs it: bash, a tty (what
    ``docker-compose exec`` needs), stdout and stderr as one. Lines end ``\\r\\n`` there:
    given back with ``\\n``."""
    done = subprocess.run(
        ["script", "-qefc", command, "/dev/null"],
        env={**env, "SHELL": "/bin/bash", "TERM": "dumb"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    done.stdout = done.stdout.replace("\r\n", "\n")
    return done


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
    assert set(exports) == EXPORTS, result.stdout
    # Nothing but the exports on stdout, so that eval runs nothing else.
    assert len(result.stdout.strip().splitlines()) == len(EXPORTS), result.stdout
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
    # a container may be removed between the listing and its inspection: not an error
    return client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{PROJECT_LABEL}={project}"}
    )


def sandboxes_of_hosts(client: docker.DockerClient, hosts: list[str]) -> list[Any]:
    found = client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_SANDBOX}=1"}
    )
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
    for variable in sorted(IMAGE_VARIABLES):
        # present locally: `up` pulls nothing, so it works with no registry
        docker_client.images.get(env[variable])

    # deploy/README.md's block, as written but for the project's name and two workers, not
    # three; it makes an API key too
    block = md_block(ROOT / "deploy" / "README.md", "docker-compose -f deploy/docker-compose.yml")
    assert "-p runner " in block and "--scale worker=3" in block, block
    password_file = ROOT / ".runner" / f"{project}.flower"
    up = pasted(
        "set -e\n"
        + block.replace("-p runner ", f"-p {project} ").replace("worker=3", "worker=2")
        + f'printf %s "$FLOWER_PASSWORD" >{password_file}\n',
        {k: v for k, v in env.items() if k not in EXPORTS | {"FLOWER_PASSWORD"}},
    )
    assert up.returncode == 0, up.stdout[-3000:]
    env["FLOWER_PASSWORD"] = password_file.read_text()
    password_file.unlink()
    token = re.findall(r"\brk_[A-Za-z0-9_-]+", up.stdout)[-1]
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

    # The HTTP API, with the key the block made inside its container
    api = f"http://127.0.0.1:{env['API_PORT']}"
    sent = urllib.request.Request(
        api + "/v1/submissions?wait=60",
        data=json.dumps(SUBMISSION).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(sent, timeout=90) as response:
        answer = json.load(response)
    assert (answer["state"], answer["result"]["verdict"]) == ("done", "WA"), answer
    # every worker line of its tasks names the id the API gave it (the submission's own id,
    # "compose-sum", is another thing)
    logged = compose(project, env, "logs", "--no-color", "worker")
    ours = [line for line in logged.stdout.splitlines() if f'"run_id": "{answer["id"]}"' in line]
    assert sum('"event": "test.done"' in line for line in ours) == 3, logged.stdout[-3000:]

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
    # and its Result column a line a person reads, not a cut Python repr
    asked = urllib.request.Request(flower + "/api/tasks?taskname=runner.join", headers=auth)
    with urllib.request.urlopen(asked, timeout=30) as response:
        joins = [t["result"] for t in json.load(response).values()]
    assert any(str(r).startswith("WA: 2/3 tests passed, submission 'compose-sum'") for r in joins)

    # Prometheus scrapes both workers' own metrics (found through the network's DNS) and
    # Flower's: the verdicts judged above are there
    prometheus = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}/api/v1/query?query="
    wanted = {
        'count(up{job="workers"} == 1)': 2,
        'sum(up{job="flower"})': 1,
        'sum(up{job="api"})': 1,
        'sum(runner_tests_total{verdict="WA"})': 3,  # the producer's, the API's, Flower's
        # the API's own: the one submission sent to it, answered 200 within its ?wait
        'sum(runner_api_requests_total{method="POST",route="/v1/submissions",status="200"})': 1,
        # a worker's series and Flower's name it alike: they join on `worker`
        "count(count by (worker) (runner_pool_idle) and on (worker) flower_worker_online == 1)": 2,
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


def printed_commands(output: str) -> dict[str, list[str]]:
    """The demo's closing block: each ``Label:  text`` line, with the indented lines under it."""
    commands: dict[str, list[str]] = {}
    last = ""
    for line in output[output.index("\nPlayground:") :].splitlines():
        label = re.match(r"^([A-Za-z][A-Za-z ]+):\s+(.*)$", line)
        if label:
            last = label.group(1)
            commands[last] = [label.group(2)]
        elif line.startswith("   ") and last:
            commands[last].append(line.strip())
    return commands


def alive_workers(env: dict[str, str], runner_here: str) -> list[str]:
    pinged = pasted(f"{runner_here}; runner ping --timeout 3", env, timeout=60)
    return [line for line in pinged.stdout.splitlines() if line.endswith(": ok")]


@pytest.mark.docker
@pytest.mark.redis
@pytest.mark.timeout(3000)
def test_the_demo_and_every_command_it_and_the_readme_print_work_as_pasted(
    fleet_images: dict[str, str], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    project = f"runnerdemo{RUN_ID}{uuid.uuid4().hex[:4]}"
    env = clean_env(
        DEMO_PROJECT=project,
        REDIS_PORT=str(free_port()),
        FLOWER_PORT=str(free_port()),
        API_PORT=str(free_port()),
        PROMETHEUS_PORT=str(free_port()),
        WEBHOOK_PORT=str(free_port()),
        # one test at a time per worker: four warm sandboxes each (the demo keeps it for
        # the workers its printed `up --scale` adds)
        RUNNER_CONCURRENCY="1",
    )
    # a person's shell: none of the demo's variables (each command must carry what it needs)
    shell = clean_env()
    receiver = None
    try:
        demo = subprocess.run(
            [str(ROOT / "scripts" / "demo")],
            env=env,
            cwd=tmp_path,  # run from anywhere
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert demo.returncode == 0, demo.stderr[-3000:]
        printed = printed_commands(demo.stdout)
        assert {
            "Playground",
            "Over HTTP",
            "A webhook",
            "runner here",
            "Judge one",
            "Fleet status",
            "Another key",
            "Flower",
            "Prometheus",
            "More workers",
            "Logs",
            "Stop it all",
        } <= set(printed), printed
        token = re.findall(r"\brk_[A-Za-z0-9_-]+", printed["Playground"][0])[0]

        with urllib.request.urlopen(printed["Playground"][0].split()[0], timeout=30) as page:
            assert "Playground" in page.read().decode()
        done = pasted(printed["Over HTTP"][0], shell, cwd=tmp_path)
        assert done.returncode == 0 and json.loads(done.stdout)["result"]["verdict"] == "AC"

        # a webhook, to a receiver on this host, signed with the demo key's secret
        start, send, *_ = printed["A webhook"]
        assert start.endswith(" &"), start
        receiver = subprocess.Popen(
            ["bash", "-c", "exec " + start.removesuffix(" &")],
            env=shell,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert receiver.stdout is not None
        assert receiver.stdout.readline().startswith("webhook-receiver on http://")
        done = pasted(send, shell, cwd=tmp_path)
        assert done.returncode == 0 and json.loads(done.stdout)["state"] == "queued", done.stdout
        line = receiver.stdout.readline()  # blocks until the delivery (the timeout guards it)
        assert "AC passed 1/1; signature verified" in line, line

        runner_here = printed["runner here"][0].split("   #")[0]
        done = pasted(f"{runner_here}; runner --version && runner status", shell, cwd=tmp_path)
        assert done.returncode == 0 and "\nworker runner@" in done.stdout, done.stdout
        done = pasted(printed["Judge one"][0], shell, cwd=tmp_path)
        assert done.returncode == 1 and "verdict WA  passed 3/4" in done.stdout, done.stdout
        done = pasted(printed["Fleet status"][0], shell, cwd=tmp_path)
        assert done.returncode == 0 and "worker runner@" in done.stdout, done.stdout
        done = pasted(printed["Another key"][0], shell, cwd=tmp_path)
        assert done.returncode == 0 and re.search(r"\brk_\w", done.stdout), done.stdout
        done = pasted(printed["Logs"][0], shell, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-3000:]
        assert '"event": ' in done.stdout and "api_1" in done.stdout, done.stdout[-3000:]

        flower, _, credentials = printed["Flower"][0].partition("  ")
        password = credentials.rstrip(")").rsplit(" ", 1)[1]
        basic = base64.b64encode(f"admin:{password}".encode()).decode()
        asked = urllib.request.Request(
            flower + "/api/workers?refresh=1", headers={"Authorization": f"Basic {basic}"}
        )
        deadline = time.monotonic() + 60
        while True:
            with urllib.request.urlopen(asked, timeout=30) as response:
                seen = json.load(response)
            if len(seen) == 2 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert len(seen) == 2, seen
        with urllib.request.urlopen(printed["Prometheus"][0], timeout=30) as response:
            assert response.status == 200

        # README.md's blocks against the demo's stack: curl with the key the demo printed...
        curl = md_block(ROOT / "README.md", 'curl -s -H "Authorization: Bearer $KEY"')
        assert "127.0.0.1:8000/" in curl  # the demo's port; this one's is a free one
        curl = curl.replace("127.0.0.1:8000/", f"127.0.0.1:{env['API_PORT']}/")
        done = pasted(curl, {**shell, "KEY": token}, cwd=tmp_path)
        assert done.returncode == 0 and json.loads(done.stdout)["result"]["verdict"] == "AC"
        # ...the Python client, with the solution.cpp it reads...
        (tmp_path / "solution.cpp").write_text(
            "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; "
            "std::cout << a + b << '\\n'; }\n"
        )
        python = md_block(ROOT / "README.md", "from worker.client import Client")
        redis_url = f"redis://127.0.0.1:{env['REDIS_PORT']}"
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-c", python],
            env={**shell, "RUNNER_REDIS_URL": redis_url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.splitlines()[-1] == "AC", done.stdout
        # ...and its shell line, with runner on PATH as the demo's export puts it
        (tmp_path / "solution.py").write_text("print(sum(map(int, input().split())))\n")
        (tmp_path / "tests.json").write_text('[{"stdin": "1 2", "expected_stdout": "3"}]')
        shell_line = "runner submit solution.py --lang python --tests tests.json --wait"
        assert f"`{shell_line}`" in (ROOT / "README.md").read_text()
        done = pasted(f"{runner_here}; {shell_line}", shell, cwd=tmp_path)
        assert done.returncode == 0 and "verdict AC  passed 1/1" in done.stdout, done.stdout

        # more workers: two more come up (each prewarms before it answers a ping)
        done = pasted(printed["More workers"][0], shell, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-3000:]
        deadline = time.monotonic() + 300
        while len(alive := alive_workers(shell, runner_here)) < 4:
            assert time.monotonic() < deadline, alive
            time.sleep(5)
        hosts = [
            c.attrs["Config"]["Hostname"]
            for c in project_containers(docker_client, project)
            if c.labels[SERVICE_LABEL] == "worker"
        ]
        assert len(hosts) == 4

        done = pasted(printed["Stop it all"][0], shell, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-3000:]
        assert project_containers(docker_client, project) == []
        # a sandbox whose worker is gone ends with its supervisor (its stdin closes) and the
        # engine removes it (auto_remove): moments after, not before `down` returns
        deadline = time.monotonic() + 60
        while (left := sandboxes_of_hosts(docker_client, hosts)) and time.monotonic() < deadline:
            time.sleep(2)
        assert left == [], [(c.name, c.status, c.labels.get(LABEL_OWNER)) for c in left]
        assert not docker_client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"})
    finally:
        if receiver is not None:
            receiver.kill()
            receiver.wait()
        subprocess.run(
            [str(ROOT / "scripts" / "demo"), "down"],
            env=env,
            capture_output=True,
            timeout=600,
            check=False,
        )
        shutil.rmtree(ROOT / ".runner" / project, ignore_errors=True)
