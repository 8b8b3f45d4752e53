"""Failures the fleet must ride out: a worker killed mid-submission, a Redis restart, and the
Docker engine going away and coming back. Each talks only to loopback and to containers and
processes the test itself made, but one: the Docker engine restart under load restarts the
host's engine, killing every container on it (run it alone: -k docker_engine_restart).

The outages under load last 3 s; ``TESTS_OUTAGE_S`` sets another length, to try by hand that
longer ones (up to RUNNER_OUTAGE_WINDOW_S, 60 s by default) are ridden out as well."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import TEST_ENV, free_port
from tests.fleet.conftest import Worker
from worker.api.records import stored_result
from worker.client import Client
from worker.contract import SubmissionResult, Verdict
from worker.keyspace import RESULT as RESULT_KEY
from worker.keyspace import run_key
from worker.sandbox.reaper import owned_containers, remove_container

pytestmark = [pytest.mark.docker, pytest.mark.redis]

SLOW_ECHO = "import sys, time\ntime.sleep(0.2)\nprint(sys.stdin.read().strip())\n"


def echo_submission(n: int) -> dict[str, object]:
    tests = [{"id": f"t{i:02d}", "stdin": f"{i}\n", "expected_stdout": f"{i}\n"} for i in range(n)]
    return {"id": "survivor", "language": "python", "source": SLOW_ECHO, "tests": tests}


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_worker_killed_mid_submission_loses_and_duplicates_nothing(
    workers, client: Client, docker_client: docker.DockerClient
) -> None:
    # an hour's visibility timeout: the tests the dead worker held must come back because its
    # consumer's heartbeat expired (about 30 s), not because kombu's timeout ran out
    victim = workers("victim", RUNNER_VISIBILITY_TIMEOUT_S="3600")
    handle = client.submit(echo_submission(50))
    wait_until(lambda: len(handle.finished_tests()) >= 8, 60, "a few tests to finish")
    assert owned_containers(docker_client, victim.owner)
    victim.stop(signal.SIGKILL)
    # the dead worker's sandboxes are removed, not left exited: each supervisor exits once its
    # stdin (the dead worker's attach connection) closes, after its job at most, and the
    # engine removes the container; the bound is the longest wall time (5 s here) plus margin
    wait_until(
        lambda: not owned_containers(docker_client, victim.owner),
        5 + 10,
        "the killed worker's sandboxes to be removed",
    )
    # the restarted worker gives back the tests the dead one had taken but not acknowledged
    victim.start()
    result = handle.result(timeout=180)
    assert [t.id for t in result.tests] == [f"t{i:02d}" for i in range(50)]
    assert [t.verdict for t in result.tests] == [Verdict.AC] * 50
    assert (result.passed, result.total) == (50, 50)
    assert victim.events("broker.reclaimed")


class Proxy:
    """A Unix-socket proxy in front of the Docker engine that a test can cut and restore."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.target = target
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None

    def start(self) -> None:
        if self.path.exists():
            self.path.unlink()
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Like an engine restart for the worker: every connection drops, new ones fail."""
        assert self._server is not None
        self._server.close()
        self._server = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()
        self.path.unlink()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def engine_proxy(tmp_path: Path) -> Iterator[Proxy]:
    proxy = Proxy(tmp_path / "docker.sock")
    proxy.start()
    yield proxy


def kill_sandboxes(docker_client: docker.DockerClient, owner: str) -> None:
    """What an engine restart does to a worker's sandboxes."""
    for container in owned_containers(docker_client, owner):
        remove_container(container)  # the engine may be removing it already: stdin closed


def test_docker_engine_outage_is_waited_out_and_one_past_the_window_ends_ie_saying_so(
    workers, client: Client, engine_proxy: Proxy, docker_client: docker.DockerClient
) -> None:
    """The engine away (every connection to it cut, every sandbox killed) for 2 s: a test
    caught in it waits and is judged as usual. Away past the window (10 s here): IE saying so.
    Back: tests pass again."""
    worker = workers(
        "engine", DOCKER_HOST=f"unix://{engine_proxy.path}", RUNNER_OUTAGE_WINDOW_S="10"
    )
    sub = {
        "language": "python",
        "source": "print(input())",
        "tests": [{"stdin": "1", "expected_stdout": "1"}, {"stdin": "2", "expected_stdout": "2"}],
    }
    assert client.submit(sub).result(timeout=60).verdict == Verdict.AC
    engine_proxy.cut()
    kill_sandboxes(docker_client, worker.owner)
    short = client.submit({**sub, "source": "print(input())  # during a short outage"})
    time.sleep(2.0)
    engine_proxy.start()
    result = short.result(timeout=120)
    assert [t.verdict for t in result.tests] == [Verdict.AC, Verdict.AC], result
    assert worker.events("docker.retrying") and worker.events("docker.recovered")

    engine_proxy.cut()
    kill_sandboxes(docker_client, worker.owner)
    during = client.submit({**sub, "source": "print(input())  # during a long outage"})
    result = during.result(timeout=180)
    assert result.verdict == Verdict.IE
    said = [result.error.message if result.error else ""] + [t.message for t in result.tests]
    assert any("Docker engine unreachable for 10 s" in message for message in said), said
    assert worker.events("docker.gave_up")
    engine_proxy.start()
    after = client.submit(sub).result(timeout=120)
    assert after.verdict == Verdict.AC, after
    assert worker.proc is not None and worker.proc.poll() is None


class OwnRedis:
    """A Redis of the test's own on a free port, with an append-only file fsynced at every
    write, that the test stops (cleanly, or by SIGKILL) and starts again on the same port and
    files. Never the shared Redis on 6379."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
        ]
        self.procs: list[subprocess.Popen[bytes]] = []

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_timeout=5, socket_connect_timeout=2)

    def start(self) -> None:
        self.procs.append(subprocess.Popen(self.argv, stdout=subprocess.DEVNULL))
        wait_until(lambda: _pings(self.client()), 20, "redis to start")

    def stop(self, how: str = "clean") -> None:
        """``clean``: the SHUTDOWN command (the append-only file flushed, clients told);
        ``kill``: SIGKILL, as a crash, recovered at the next start from the append-only file."""
        proc = self.procs[-1]
        if how == "kill":
            proc.kill()
        else:  # one try: redis-py would retry the SHUTDOWN that closes its connection
            one_try = redis.Redis(port=self.port, retry=Retry(NoBackoff(), 0))
            with contextlib.suppress(redis.ConnectionError):
                one_try.shutdown()
        proc.wait(20)

    def restart(self, how: str = "clean", down_s: float = 0.0) -> None:
        self.stop(how)
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis of the test's own (see :class:`OwnRedis`), started."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_redis_restart_mid_submission_is_ridden_out(
    own_redis: OwnRedis, workers, tmp_path: Path
) -> None:
    env = {"RUNNER_BROKER_URL": own_redis.url(0), "RUNNER_RESULT_BACKEND": own_redis.url(1)}
    worker = workers("redisfail", **env)
    # a producer in its own process: this process's Celery app is bound to the suite's Redis
    (tmp_path / "sub.json").write_text(json.dumps(echo_submission(30)))
    script = (
        "import json, sys\n"
        "from worker.client import Client\n"
        "handle = Client().submit(json.load(open(sys.argv[1])))\n"
        "print(handle.result(timeout=240).model_dump_json())\n"
    )
    producer = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "sub.json")],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(2.0)
    own_redis.restart()
    out, err = producer.communicate(timeout=300)
    assert producer.returncode == 0, err.decode()[-3000:]
    result = SubmissionResult.model_validate_json(out.splitlines()[-1])
    assert [t.id for t in result.tests] == [f"t{i:02d}" for i in range(30)]
    # tests caught in the restart are delayed, never IE, missing, duplicated or stuck
    assert [t.verdict for t in result.tests] == [Verdict.AC] * 30
    assert worker.proc is not None and worker.proc.poll() is None


# --- outages under load: two workers, 20 submissions of 20 correct tests ----------------------

LOAD_SUBMISSIONS, LOAD_TESTS = 20, 20
# the same echo, a tenth of a second slow, in each language: while some pools are busy, the
# others' sandboxes sit idle, as on a fleet judging all kinds of submissions
ECHOES = {
    "python": "import sys, time\ntime.sleep(0.1)\nprint(sys.stdin.read().strip())\n",
    "c": (
        "#include <stdio.h>\n#include <unistd.h>\n"
        "int main(void) { char s[64]; usleep(100000);\n"
        "  if (fgets(s, sizeof s, stdin)) fputs(s, stdout); return 0; }\n"
    ),
    "cpp": (
        "#include <iostream>\n#include <string>\n#include <unistd.h>\n"
        "int main() { std::string s; usleep(100000);\n"
        "  std::getline(std::cin, s); std::cout << s << std::endl; }\n"
    ),
    "javascript": (
        "const s = require('fs').readFileSync(0, 'utf8');\n"
        "setTimeout(() => process.stdout.write(s), 100);\n"
    ),
}


def load(tag: str) -> list[dict[str, object]]:
    """20 submissions of 20 correct tests, in turn in each language."""
    languages = list(ECHOES)
    return [
        {
            "id": f"{tag}-{s:02d}",
            "language": languages[s % len(languages)],
            "source": ECHOES[languages[s % len(languages)]],
            "tests": [
                {"id": f"t{i:02d}", "stdin": f"{s} {i}\n", "expected_stdout": f"{s} {i}\n"}
                for i in range(LOAD_TESTS)
            ],
        }
        for s in range(LOAD_SUBMISSIONS)
    ]


def send_load(tag: str, env: dict[str, str], folder: Path) -> list[str]:
    """Send the load from a producer process of its own (this process's Celery app is bound to
    the suite's Redis); the submissions' ids."""
    (folder / f"{tag}.json").write_text(json.dumps(load(tag)))
    script = (
        "import json, sys\n"
        "from worker.client import Client\n"
        "client = Client()\n"
        "for sub in json.load(open(sys.argv[1])):\n"
        "    print(client.submit(sub).id, flush=True)\n"
    )
    sent = subprocess.run(
        [sys.executable, "-c", script, str(folder / f"{tag}.json")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr[-3000:]
    ids = sent.stdout.split()
    assert len(ids) == LOAD_SUBMISSIONS
    return ids


def judged_so_far(results: redis.Redis, ids: list[str]) -> int:
    """Tests finished so far over ``ids`` (a finished submission counts whole)."""
    done = 0
    for sid in ids:
        if results.exists(RESULT_KEY + sid):
            done += LOAD_TESTS
        else:
            done += int(results.hlen(run_key(sid, "tests")))
    return done


def await_results(results: redis.Redis, ids: list[str], timeout: float) -> dict[str, dict]:
    """Every submission's stored result, read from the result backend (retrying while its
    Redis is away); fails the test with what is missing after ``timeout``."""
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(ids):
        with contextlib.suppress(redis.RedisError):
            for sid in ids:
                if sid not in found and (raw := results.get(RESULT_KEY + sid)) is not None:
                    found[sid] = stored_result(raw)
        if time.monotonic() > deadline:
            missing = sorted(set(ids) - set(found))
            pytest.fail(f"{len(missing)} of {len(ids)} submissions unanswered: {missing[:5]}")
        time.sleep(0.2)
    return found


def assert_all_accepted(found: dict[str, dict]) -> None:
    """Every test of every submission judged as without a fault: AC, in order."""
    wrong = []
    for sid, raw in sorted(found.items()):
        result = SubmissionResult.model_validate(raw)
        ids = [t.id for t in result.tests]
        verdicts = [t.verdict for t in result.tests]
        if result.verdict != Verdict.AC or verdicts != [Verdict.AC] * LOAD_TESTS:
            messages = {t.message for t in result.tests if t.verdict != Verdict.AC}
            error = result.error.message if result.error else ""
            wrong.append(f"{sid}: {result.verdict} {error!r} {sorted(messages)[:3]}")
        elif ids != [f"t{i:02d}" for i in range(LOAD_TESTS)]:
            wrong.append(f"{sid}: tests {ids}")
    assert not wrong, f"{len(wrong)} submissions not all AC:\n" + "\n".join(wrong)


def longest_test_s(fleet: list[Worker]) -> float:
    """The longest a test took on the fleet's workers (waiting out a fault included)."""
    return max(float(str(e["duration_ms"])) for w in fleet for e in w.events("test.done")) / 1000


def judged_through(
    what: str, fault: Callable[[], str], fleet: list[Worker], results: redis.Redis, ids: list[str]
) -> None:
    """Once the fleet is under load, ``fault`` happens (it says what to report of itself); then
    every test is judged as without it, and every worker is still up."""
    started = time.monotonic()
    wait_until(lambda: judged_so_far(results, ids) >= 40, 120, "the fleet to be under load")
    done_before = judged_so_far(results, ids)
    said = fault()
    back_at = time.monotonic()
    found = await_results(results, ids, timeout=240)
    finished = time.monotonic()
    print(
        f"\n{what}: {done_before} of {LOAD_SUBMISSIONS * LOAD_TESTS} tests done when it went "
        f"away; {said}; all done {finished - back_at:.1f} s after it was back, "
        f"{finished - started:.1f} s in all; the longest test took {longest_test_s(fleet):.1f} s"
    )
    assert_all_accepted(found)
    for worker in fleet:
        assert worker.proc is not None and worker.proc.poll() is None


def outage_s() -> float:
    return float(os.environ.get("TESTS_OUTAGE_S", "3"))


@pytest.mark.parametrize("how", ["clean", "kill"])
def test_redis_restart_under_load_delays_tests_never_fails_them(
    own_redis: OwnRedis, workers, tmp_path: Path, how: str
) -> None:
    """The fleet's one Redis (broker and results, with its append-only file) goes away for 3 s
    while two workers judge 400 tests: stopped cleanly (SHUTDOWN) or killed (SIGKILL, then
    recovered from the append-only file). Every test is judged as without the fault."""
    env = {"RUNNER_BROKER_URL": own_redis.url(0), "RUNNER_RESULT_BACKEND": own_redis.url(1)}
    fleet = [workers(f"redis-{how}-{n}", **env) for n in range(2)]
    ids = send_load(f"redis-{how}", env, tmp_path)

    def restart() -> str:
        fault_at = time.monotonic()
        own_redis.restart(how, down_s=outage_s())
        return f"down {time.monotonic() - fault_at:.1f} s"

    judged_through(f"redis {how}", restart, fleet, own_redis.client(1), ids)


class Engine:
    """The host's Docker engine, stopped and started again the way it was started: by systemd
    where systemd runs it, else as scripts/lib.sh's ensure_docker starts it, a `dockerd`
    process of its own (started again with its command line, environment and log)."""

    PID_FILE = Path("/var/run/docker.pid")

    def __init__(self) -> None:
        self.systemd = (
            subprocess.run(
                ["systemctl", "is-active", "--quiet", "docker"],
                check=False,
                stderr=subprocess.DEVNULL,
            ).returncode
            == 0
            if shutil.which("systemctl")
            else False
        )
        self.argv: list[bytes] = []
        self.environ: dict[str, str] = {}
        self.log = "/dev/null"
        self.cwd = "/"
        self.pid = 0
        self.stopping = False  # from the moment it is told to stop: it must be started again

    def stop(self) -> None:
        if self.systemd:
            self.stopping = True
            subprocess.run(["systemctl", "stop", "docker"], check=True, timeout=120)
            return
        pid = int(self.PID_FILE.read_text().strip())
        proc = Path(f"/proc/{pid}")
        self.argv = proc.joinpath("cmdline").read_bytes().split(b"\0")[:-1]
        assert self.argv and Path(self.argv[0].decode()).name == "dockerd", self.argv
        pairs = proc.joinpath("environ").read_bytes().decode(errors="replace").split("\0")
        self.environ = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        self.log = os.readlink(proc / "fd" / "1")
        cwd = os.readlink(proc / "cwd")
        self.cwd = cwd if Path(cwd).is_dir() else "/"  # "... (deleted)": its directory is gone
        self.pid = pid
        self.stopping = True
        os.kill(pid, signal.SIGTERM)
        wait_until(self.stopped, 120, "the Docker engine to stop")

    def start(self) -> None:
        if self.systemd:
            subprocess.run(["systemctl", "start", "docker"], check=True, timeout=120)
        else:
            wait_until(self.stopped, 120, "the Docker engine to stop")
            log = self.log if self.log.startswith("/") and Path(self.log).exists() else "/dev/null"
            with open(log, "ab") as out:
                subprocess.Popen(
                    self.argv,
                    env=self.environ,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # it outlives this test run, as it was before
                )
        wait_until(self.answers, 120, "the Docker engine to answer again")

    def stopped(self) -> bool:
        """Gone, or a zombie: an engine started by a shell that then exec'ed this test run is
        this process's child, and stays in /proc until reaped."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rpartition(")")[2].split()[0] != "Z":
            return False
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)
        return True

    @staticmethod
    def answers() -> bool:
        try:
            return bool(docker.from_env(timeout=5).ping())
        except Exception:
            return False


def test_docker_engine_restart_under_load_delays_tests_never_fails_them(
    workers, client: Client, docker_client: docker.DockerClient
) -> None:
    """The Docker engine restarted (every container on it killed; a few seconds down) while
    two workers judge 400 tests: every test is judged as without the fault. It restarts the
    host's engine: every container on it dies; run it alone (-k docker_engine_restart)."""
    fleet = [workers(f"dockerd-{n}") for n in range(2)]
    ids = [client.submit(sub).id for sub in load("dockerd")]

    def restart() -> str:
        engine = Engine()
        stopped_at = down_at = time.monotonic()
        try:
            engine.stop()
            down_at = time.monotonic()
            time.sleep(outage_s())
        finally:
            if engine.stopping:
                engine.start()  # whatever happened, the engine is left running
        return (
            f"stopping took {down_at - stopped_at:.1f} s, unreachable "
            f"{time.monotonic() - stopped_at:.1f} s in all"
        )

    results = redis.Redis.from_url(TEST_ENV["RUNNER_RESULT_BACKEND"])
    judged_through("docker engine", restart, fleet, results, ids)
    for worker in fleet:
        assert worker.events("docker.recovered") or worker.events("sandbox.recycle")
