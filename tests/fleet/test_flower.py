"""Flower against a real worker: its HTTP API, its Prometheus metrics and its dashboard.

Flower is started the way deploy/docker-compose.yml starts it: ``--broker`` and the fleet's
Celery configuration module (deploy/flower/celeryconfig.py: the result backend, the default
queue), no ``-A``. It learns task names and states from the workers' task events, not from the
app, so what passes here is what operators see with the stock Flower image (which has no
``worker`` package).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from tests.conftest import TEST_ENV, free_port, serving
from tests.fleet.conftest import Worker, chromium_argv
from worker.client import Client
from worker.contract import Verdict

pytestmark = [pytest.mark.docker, pytest.mark.redis]

CELERY = Path(sys.executable).with_name("celery")
ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "admin", "secret"
TASKS = ("runner.compile", "runner.test", "runner.join")
WINDOW = (1400, 900)

SUBMISSIONS = [
    {
        "id": "flower-py",
        "language": "python",
        "source": "a, b = map(int, input().split())\nprint(a + b)\n",
        "tests": [
            {"stdin": "1 2\n", "expected_stdout": "3\n"},
            {"stdin": "2 2\n", "expected_stdout": "4\n"},
            {"stdin": "5 5\n", "expected_stdout": "11\n"},
        ],
    },
    {
        "id": "flower-c",
        "language": "c",
        "source": '#include <stdio.h>\nint main(){int a,b;scanf("%d %d",&a,&b);'
        'printf("%d\\n",a+b);}\n',
        "tests": [{"stdin": "1 2\n", "expected_stdout": "3\n"}],
    },
]


@dataclass
class Flower:
    url: str
    log: Path

    def get(self, path: str, auth: bool = True) -> tuple[int, str, Message]:
        """Status, body and headers (case-insensitive) of a GET; HTTP errors are answers here,
        not exceptions."""
        request = urllib.request.Request(self.url + path)
        if auth:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), exc.headers

    def post(self, path: str, body: Any) -> Any:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def json(self, path: str) -> Any:
        status, body, _ = self.get(path)
        assert status == 200, f"GET {path}: {status} {body[:300]}"
        return json.loads(body)


@pytest.fixture(scope="module")
def flower(shared_worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    """A Flower process on a free loopback port, with basic auth, watching the suite's broker.

    Started after the worker: Flower finds running workers through their heartbeats (every 2 s)
    and a control broadcast, but it only sees task events sent while it listens."""
    log = tmp_path_factory.mktemp("flower") / "flower.log"
    port = free_port()
    running = Flower(f"http://127.0.0.1:{port}", log)
    argv = [
        str(CELERY),
        f"--broker={TEST_ENV['RUNNER_BROKER_URL']}",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
        f"--basic-auth={USER}:{PASSWORD}",
    ]
    with serving(
        argv,
        log,
        # /healthcheck answers without auth: what the compose healthcheck asks
        lambda: running.get("/healthcheck", auth=False)[:2] == (200, "OK"),
        CELERY_CONFIG_MODULE="celeryconfig",
        PYTHONPATH=str(ROOT / "deploy" / "flower"),
    ):
        yield running


@pytest.fixture(scope="module")
def judged(flower: Flower, shared_worker: Worker) -> list[dict[str, Any]]:
    """Run the submissions while Flower listens; return Flower's tasks of our worker once every
    task of them is SUCCESS there (events reach Flower a little after the results reach Redis).

    Only our worker's tasks count: a concurrent run of the suite shares the broker database, so
    Flower sees its workers and tasks too, but our worker consumes only our run's queue."""
    client = Client()
    with ThreadPoolExecutor(len(SUBMISSIONS)) as pool:
        handles = list(pool.map(client.submit, SUBMISSIONS))
        results = [h.result(timeout=120) for h in handles]
    assert [r.verdict for r in results] == [Verdict.WA, Verdict.AC]
    expected = {"runner.compile": 2, "runner.test": 4, "runner.join": 2}
    deadline = time.monotonic() + 15
    while True:
        tasks = list(flower.json(f"/api/tasks?workername={shared_worker.name}").values())
        done = {n: sum(t["name"] == n and t["state"] == "SUCCESS" for t in tasks) for n in expected}
        if done == expected:
            return tasks
        if time.monotonic() > deadline:
            pytest.fail(f"Flower saw {done}, expected {expected}; tasks: {tasks}")
        time.sleep(0.5)


def test_api_workers_lists_the_running_worker(flower: Flower, shared_worker: Worker) -> None:
    deadline = time.monotonic() + 15
    while shared_worker.name not in (workers := flower.json("/api/workers?refresh=1")):
        assert time.monotonic() < deadline, f"{shared_worker.name} not in {list(workers)}"
        time.sleep(0.5)
    # the reply is the worker's own answer to Flower's control broadcast: it names our queue
    queues = [q["name"] for q in workers[shared_worker.name]["active_queues"]]
    assert queues == [TEST_ENV["RUNNER_QUEUE"]]


def test_api_tasks_has_each_step_of_a_submission_succeeded_on_our_worker(
    judged: list[dict[str, Any]], shared_worker: Worker
) -> None:
    assert sorted(t["name"] for t in judged) == sorted(
        ["runner.compile", "runner.join"] * 2 + ["runner.test"] * 4
    )
    assert {t["worker"] for t in judged} == {shared_worker.name}
    assert all(t["state"] == "SUCCESS" and t["runtime"] >= 0 for t in judged)
    # Flower keeps each task's root: one per submission, shared by its compile, tests and join
    roots = {t["root_id"] for t in judged}
    assert len(roots) == len(SUBMISSIONS)


def test_task_results_are_lines_a_person_reads_not_a_truncated_repr(
    judged: list[dict[str, Any]],
) -> None:
    """Flower's Result column (and /api/tasks' ``result``) is what each task decided, in a line
    naming the run; /api/task/result/<id> still gives the result itself (below)."""
    joins = sorted(t["result"] for t in judged if t["name"] == "runner.join")
    assert joins[0].startswith("AC: 1/1 tests passed, submission 'flower-c', run "), joins
    assert joins[1].startswith("WA: 2/3 tests passed, submission 'flower-py', run "), joins
    tests = sorted(t["result"] for t in judged if t["name"] == "runner.test")
    assert [line.split(" ", 1)[0] for line in tests] == ["AC", "AC", "AC", "WA"], tests
    assert tests[-1].startswith("WA test 2 '2': ") and "expected '11', got '10'" in tests[-1]
    compiles = [t["result"] for t in judged if t["name"] == "runner.compile"]
    assert all(line.startswith("compiled") for line in compiles), compiles


def test_api_queue_lengths_name_our_queue_without_the_app(
    flower: Flower, judged: list[dict[str, Any]]
) -> None:
    # Flower has no -A: it learns the queue from the workers' active_queues, and measures it
    lengths = flower.json("/api/queues/length")["active_queues"]
    assert {"name": TEST_ENV["RUNNER_QUEUE"], "messages": 0} in lengths


def test_api_and_pages_refuse_requests_without_basic_auth(flower: Flower) -> None:
    for path in ("/api/workers", "/api/tasks", "/api/queues/length"):
        assert flower.get(path, auth=False)[0] == 401, path
    for path in ("/", "/workers", "/tasks", "/broker"):
        status, _, headers = flower.get(path, auth=False)
        # pages challenge, so that a browser asks for the password
        assert (status, headers.get("WWW-Authenticate")) == (401, 'Basic realm="flower"'), path
    wrong = urllib.request.Request(flower.url + "/api/tasks")
    wrong.add_header("Authorization", "Basic " + base64.b64encode(b"admin:guess").decode())
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(wrong, timeout=10)
    assert caught.value.code == 401


def test_metrics_are_open_prometheus_text_with_our_task_names(
    flower: Flower, judged: list[dict[str, Any]], shared_worker: Worker
) -> None:
    worker = f'worker="{shared_worker.name}"'
    online = f"flower_worker_online{{{worker}}}"
    executing = f"flower_worker_number_of_currently_executing_tasks{{{worker}}}"
    # the worker gauges follow worker-heartbeat events, sent every 2 s: wait until a heartbeat
    # has set both of them
    deadline = time.monotonic() + 20
    while True:
        # Flower serves /metrics (like /healthcheck) without auth, for scrapers: keep the port
        # private
        status, text, headers = flower.get("/metrics", auth=False)
        assert status == 200
        if (online + " " in text and executing in text) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert headers["Content-Type"].startswith("text/plain")
    assert _sample(text, online) == 1
    for task in TASKS:
        succeeded = f'flower_events_total{{task="{task}",type="task-succeeded",{worker}}}'
        assert _sample(text, succeeded) >= 1, succeeded
        count = f'flower_task_runtime_seconds_count{{task="{task}",{worker}}}'
        assert _sample(text, count) >= 1, count
    # the runtime histogram has one observation per test run: 3 + 1 tests
    tests_run = f'flower_task_runtime_seconds_bucket{{le="+Inf",task="runner.test",{worker}}}'
    assert _sample(text, tests_run) == 4
    assert executing in text
    assert f'flower_task_prefetch_time_seconds{{task="runner.test",{worker}}}' in text


def _sample(text: str, series: str) -> float:
    """The value of one series in Prometheus text format (labels sorted, as the client writes
    them); a missing series fails with the names that are there."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    names = sorted({line.split("{")[0] for line in text.splitlines() if line.startswith("flower")})
    pytest.fail(f"no {series} in /metrics; flower series: {names}")


def test_workers_dashboard_names_the_worker_and_renders_in_chromium(
    flower: Flower, judged: list[dict[str, Any]], shared_worker: Worker, tmp_path: Path
) -> None:
    status, html, _ = flower.get("/workers")
    assert status == 200 and shared_worker.name in html
    # the page as Chromium built it, scripts run: proves the browser got past the basic auth
    assert shared_worker.name in chromium(flower.url, "/workers", tmp_path, "--dump-dom")
    shot = tmp_path / "flower-workers.png"
    chromium(flower.url, "/workers", tmp_path, f"--screenshot={shot}")
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == WINDOW
        gray = image.convert("L")
        # a blank or error page is (nearly) one colour; the dashboard has text, cards, a table
        assert ImageStat.Stat(gray).stddev[0] > 10
        assert len(gray.getcolors(256) or []) > 20


def chromium(url: str, path: str, tmp: Path, action: str) -> str:
    """Run headless Chromium on a Flower page (``--screenshot=FILE`` or ``--dump-dom``) and
    return its standard output. Credentials in the URL work for a top-level navigation, and
    Chromium then sends them with the page's own requests."""
    authed = url.replace("http://", f"http://{USER}:{PASSWORD}@") + path
    done = subprocess.run(
        # the worker table is filled in by script: let it run before the page is taken
        chromium_argv(tmp, WINDOW, "--virtual-time-budget=3000", action, authed),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# Last: it judges one more submission, which the counts above must not see.
def test_send_task_without_a_queue_is_judged_and_its_result_route_answers_json(
    flower: Flower, judged: list[dict[str, Any]], shared_worker: Worker
) -> None:
    """The documented HTTP path through Flower: no "queue" in the send-task, the result read
    back as JSON; and runner.submit counts as succeeded, not as lost."""
    sent = flower.post("/api/task/send-task/runner.submit", {"args": [SUBMISSIONS[1]]})
    deadline = time.monotonic() + 60
    while (answer := flower.json(f"/api/task/result/{sent['task-id']}"))["state"] != "SUCCESS":
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    assert answer["result"]["verdict"] == "AC" and answer["result"]["submission_id"] == "flower-c"
    # runner.submit's own events: it succeeded (a replaced task would end IGNORED, which
    # Flower's worker page counts as processed and never as succeeded)
    series = (
        f'flower_events_total{{task="runner.submit",type="task-succeeded",'
        f'worker="{shared_worker.name}"}}'
    )
    deadline = time.monotonic() + 15
    while series + " " not in (text := flower.get("/metrics", auth=False)[1]):
        assert time.monotonic() < deadline, "no task-succeeded event of runner.submit"
        time.sleep(0.5)
    assert _sample(text, series) >= 1
