"""A broker other hosts may reach safely: a Redis of the test's own with TLS only (certificates
made here with openssl) and the fleet's ACL users (worker.keyspace.acl), refusing whoever it
should, and the real roles judging a submission through it end to end."""

from __future__ import annotations

import json
import os
import runpy
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import TEST_ENV, free_port
from tests.fleet.api import api_server
from tests.fleet.conftest import RUNNER
from worker.keyspace import api_key_key, heartbeat_key, result_key
from worker.keyspace.acl import acl_file
from worker.keyspace.roles import ROLES

QUEUE = TEST_ENV["RUNNER_QUEUE"]
ROOT = Path(__file__).resolve().parents[2]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> Path:
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt"


def make_cert(directory: Path, ca: str, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by the CA ``ca``."""
    (directory / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"


@dataclass
class SafeRedis:
    port: int
    ca: Path
    wrong_ca: Path
    passwords: Path  # one file per role
    admin: redis.Redis

    def url(self, db: int) -> str:
        return f"rediss://127.0.0.1:{self.port}/{db}"

    def env(self, role: str) -> dict[str, str]:
        """What a process of ``role`` is configured with."""
        return {
            "RUNNER_BROKER_URL": self.url(0),
            "RUNNER_RESULT_BACKEND": self.url(1),
            "RUNNER_REDIS_TLS_CA": str(self.ca),
            "RUNNER_REDIS_ACL_USER": role,
            "RUNNER_REDIS_ACL_PASSWORD_FILE": str(self.passwords / role),
        }

    def client(self, role: str | None, db: int = 0, ca: Path | None = None) -> redis.Redis:
        login = {}
        if role is not None:
            login = {"username": role, "password": (self.passwords / role).read_text().strip()}
        return redis.Redis(
            port=self.port,
            db=db,
            ssl=True,
            ssl_ca_certs=str(ca or self.ca),
            ssl_cert_reqs="required",
            socket_timeout=5,
            **login,
        )


@pytest.fixture(scope="module")
def safe_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SafeRedis]:
    """Redis with TLS only (no plaintext port) and the ACL users of every role."""
    directory = tmp_path_factory.mktemp("safe-redis")
    ca = make_ca(directory, "ca")
    wrong_ca = make_ca(directory, "other-ca")
    cert, key = make_cert(directory, "ca", "redis")
    passwords = directory / "passwords"
    passwords.mkdir()
    for role in ROLES:
        (passwords / role).write_text(f"{role}-{os.urandom(12).hex()}\n")
    admin_password = os.urandom(12).hex()
    acl = acl_file({r: (passwords / r).read_text().strip() for r in ROLES}, QUEUE)
    (directory / "users.acl").write_text(acl + f"user admin on >{admin_password} ~* &* +@all\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--aclfile", str(directory / "users.acl"),
            "--dir", str(directory), "--save", "", "--appendonly", "no",
        ],
        stdout=(directory / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    admin = redis.Redis(
        port=port, ssl=True, ssl_ca_certs=str(ca), username="admin", password=admin_password
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"redis-server did not start: {(directory / 'redis.log').read_text()}")
            time.sleep(0.05)
    yield SafeRedis(port, ca, wrong_ca, passwords, admin)
    proc.kill()
    proc.wait()


def refused_commands(admin: redis.Redis) -> list[str]:
    """What the ACL log recorded (user, command or key refused), to name it in a failure."""

    def text(value: object) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    return [
        f"{text(e['username'])} {text(e['reason'])} {text(e['object'])!r}" for e in admin.acl_log()
    ]


def flower_app(safe_redis: SafeRedis) -> Any:
    """A Celery app configured as Flower's (deploy/flower/celeryconfig.py, which reads the
    environment when loaded), with the monitor's settings."""
    from celery import Celery

    saved = dict(os.environ)
    os.environ.update(safe_redis.env("monitor"))
    try:
        config = runpy.run_path(str(ROOT / "deploy" / "flower" / "celeryconfig.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    app = Celery("flower-like")
    app.conf.update({k: v for k, v in config.items() if k[0] != "_" and k not in ("os", "ssl")})
    return app


def test_a_client_that_does_not_log_in_is_refused(safe_redis: SafeRedis) -> None:
    with pytest.raises(redis.AuthenticationError):
        safe_redis.client(None).get(result_key("x"))


def test_a_wrong_password_is_refused(safe_redis: SafeRedis) -> None:
    client = redis.Redis(
        port=safe_redis.port, ssl=True, ssl_ca_certs=str(safe_redis.ca),
        username="worker", password="not-its-password",
    )  # fmt: skip
    with pytest.raises(redis.AuthenticationError):
        client.ping()


def test_a_plaintext_client_on_the_tls_port_is_refused(safe_redis: SafeRedis) -> None:
    password = (safe_redis.passwords / "worker").read_text().strip()
    client = redis.Redis(
        port=safe_redis.port, username="worker", password=password, socket_timeout=5
    )
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_a_server_whose_certificate_another_ca_signed_is_refused(safe_redis: SafeRedis) -> None:
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        safe_redis.client("worker", ca=safe_redis.wrong_ca).ping()


def test_the_fleets_own_clients_check_the_certificate_too(safe_redis: SafeRedis) -> None:
    """The settings' clients (redis-py's and Celery's broker and backend) against another CA:
    refused, not connected without a check (kombu's default on rediss://)."""
    from celery import Celery

    from worker.app import celery_config
    from worker.outages import redis_client
    from worker.redis_access import redis_options
    from worker.settings import Settings

    env = {**safe_redis.env("worker"), "RUNNER_REDIS_TLS_CA": str(safe_redis.wrong_ca)}
    settings = Settings.from_env(env)
    client = redis_client(settings.broker_url, 1, redis_options(settings, settings.broker_url))
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.ping()
    app = Celery("tls-check")
    app.conf.update(celery_config(settings))
    with app.connection_for_write() as conn, pytest.raises(Exception, match="CERTIFICATE_VERIFY"):
        conn.ensure_connection(max_retries=1)
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY"):
        app.backend.client.ping()
    # and with the right CA, both log in as the role
    settings = Settings.from_env(safe_redis.env("worker"))
    app = Celery("tls-ok")
    app.conf.update(celery_config(settings))
    assert app.backend.client.client_info()["user"] == "worker"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.default_channel.client.client_info()["user"] == "worker"


def test_a_worker_may_not_do_what_only_the_api_may(safe_redis: SafeRedis) -> None:
    worker = safe_redis.client("worker", db=1)
    # create an API key, or read one (its hashed secret and limits)
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.hset(api_key_key("forged"), "name", "forged")
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.hgetall(api_key_key("k1"))
    # nor anything dangerous, whatever the key
    for command in (("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "*"), ("ACL", "LIST")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.execute_command(*command)


def test_the_api_may_not_read_what_is_not_its_own(safe_redis: SafeRedis) -> None:
    api = safe_redis.client("api")
    # the messages workers have claimed (every tenant's sources), a worker's heartbeat
    with pytest.raises(redis.exceptions.NoPermissionError):
        api.hgetall("unacked")
    with pytest.raises(redis.exceptions.NoPermissionError):
        api.get(heartbeat_key("someone"))
    # it may write its own and read results
    api.hset(api_key_key("k1"), "name", "mine")
    assert api.get(result_key("none")) is None


def test_a_producer_may_send_but_not_consume_nor_write_results(safe_redis: SafeRedis) -> None:
    producer = safe_redis.client("producer")
    producer.lpush(QUEUE, b"{}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        producer.hset("unacked", "tag", b"{}")  # what claiming a message records
    with pytest.raises(redis.exceptions.NoPermissionError):
        producer.set(result_key("forged"), json.dumps({"status": "SUCCESS", "result": "AC"}))
    safe_redis.admin.delete(QUEUE)


def test_the_monitor_reads_queues_but_sends_nothing(safe_redis: SafeRedis) -> None:
    monitor = safe_redis.client("monitor")
    assert monitor.llen(QUEUE) == 0
    with pytest.raises(redis.exceptions.NoPermissionError):
        monitor.lpush(QUEUE, b"{}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        monitor.get(result_key("any"))
    # it hears events, not every channel (results are published on their key's name)
    listening = monitor.pubsub()
    with pytest.raises(redis.exceptions.NoPermissionError):
        listening.psubscribe("*")
        listening.get_message(timeout=2)
    listening.close()


def test_the_roles_judge_a_submission_end_to_end_over_tls(
    safe_redis: SafeRedis, workers: object, tmp_path: Path
) -> None:
    """A worker process and a producer (runner submit), each as its own ACL user over TLS."""
    safe_redis.admin.execute_command("ACL", "LOG", "RESET")
    start = workers  # the fleet's fixture: it stops the worker and checks its sandboxes
    try:
        worker = start("acl", **safe_redis.env("worker"))  # type: ignore[operator]
    except BaseException:
        print("refused:", refused_commands(safe_redis.admin))
        raise
    (tmp_path / "main.py").write_text("print(int(input()) * 2)\n")
    tests = [{"stdin": "21", "expected_stdout": "42"}, {"stdin": "1", "expected_stdout": "3"}]
    (tmp_path / "tests.json").write_text(json.dumps(tests))
    env = {**os.environ, **safe_redis.env("producer")}
    done = subprocess.run(
        [str(RUNNER), "submit", str(tmp_path / "main.py"), "--lang", "python", "--tests",
         str(tmp_path / "tests.json"), "--wait", "--json", "--timeout", "90"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    refused = refused_commands(safe_redis.admin)
    assert done.stdout, f"{done.stderr[-3000:]}\nrefused: {refused}"
    result = json.loads(done.stdout)
    assert [t["verdict"] for t in result["tests"]] == ["AC", "WA"], refused
    assert result["verdict"] == "WA"
    assert refused == []
    # the monitor asks the worker (a control broadcast and its reply) and reads the queue
    monitor = {**os.environ, **safe_redis.env("monitor")}
    status = subprocess.run(
        [str(RUNNER), "status"], env=monitor, capture_output=True, text=True, timeout=60
    )
    refused = refused_commands(safe_redis.admin)
    assert status.returncode == 0, f"{status.stdout}{status.stderr[-3000:]}\nrefused: {refused}"
    assert "worker acl@" in status.stdout
    # Flower, as its configuration logs in (the monitor): control replies and live events
    flower = flower_app(safe_redis)
    replies = flower.control.ping(timeout=5)
    assert any(name.startswith("acl@") for reply in replies for name in reply)
    with flower.connection_for_read() as conn:
        # declaring its event queue and subscribing (kombu's own transport in Flower)
        receiver = flower.events.Receiver(conn, handlers={"*": lambda _: None})
        with suppress(TimeoutError):
            receiver.capture(limit=1, timeout=2)
    assert refused_commands(safe_redis.admin) == []
    # the pattern kombu subscribes Flower with: the worker's heartbeats reach the monitor
    events = safe_redis.client("monitor").pubsub()
    events.psubscribe("/0.celeryev/*")
    deadline = time.monotonic() + 10
    heard = []
    while not heard and time.monotonic() < deadline:
        message = events.get_message(timeout=1)
        if message and message["type"] == "pmessage":
            heard.append(message["channel"])
    assert heard == [b"/0.celeryev/worker.heartbeat"]
    events.close()
    # the API makes a key (its own keys only it may write) and judges over HTTP
    api_env = {**os.environ, **safe_redis.env("api")}
    made = subprocess.run(
        [str(RUNNER), "keys", "create", "acl-test", "--json"],
        env=api_env, capture_output=True, text=True,
    )  # fmt: skip
    refused = refused_commands(safe_redis.admin)
    assert made.returncode == 0, f"{made.stdout}{made.stderr[-3000:]}\nrefused: {refused}"
    token = json.loads(made.stdout)["token"]
    with api_server(tmp_path, **safe_redis.env("api")) as api:
        submission = {"language": "python", "source": "print(input())", "tests": tests[:1]}
        answer = api.call("POST", "/v1/submissions?wait=60", submission, token=token)
        refused = refused_commands(safe_redis.admin)
        assert answer.status == 200, f"{answer.body}\n{api.log.read_text()[-2000:]}\n{refused}"
        assert answer.body["result"]["verdict"] == "WA", answer.body  # 21, not 42
    assert refused_commands(safe_redis.admin) == []
    # no password in any log
    logs = worker.log.read_text() + api.log.read_text()
    for role in ("worker", "api"):
        assert (safe_redis.passwords / role).read_text().strip() not in logs


def test_settings_refuse_tls_options_on_a_plaintext_url() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from worker.settings import Settings; Settings.from_env()"],
        env={**os.environ, "RUNNER_REDIS_TLS_CA": "/etc/hostname"},
        capture_output=True,
        text=True,
    )
    assert "is plaintext redis:// while RUNNER_REDIS_TLS_CA is set" in done.stderr
    assert ssl.CERT_REQUIRED  # the constant the settings' clients are given


def test_the_cli_says_what_redis_refused(safe_redis: SafeRedis, tmp_path: Path) -> None:
    """A refusal is named as one (never "start Redis"), and no password is printed."""
    (tmp_path / "wrong").write_text("not-its-password\n")
    wrong = {**safe_redis.env("worker"), "RUNNER_REDIS_ACL_PASSWORD_FILE": str(tmp_path / "wrong")}
    done = subprocess.run(
        [str(RUNNER), "status"], env={**os.environ, **wrong}, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "Redis refused to log in worker" in done.stderr
    assert "not-its-password" not in done.stderr + done.stdout
    # a worker's user making an API key: the API's own keys
    worker = {**os.environ, **safe_redis.env("worker")}
    done = subprocess.run(
        [str(RUNNER), "keys", "create", "x"], env=worker, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "runner: cannot store the key" in done.stderr  # the key store's own refusal
    assert "Traceback" not in done.stderr
    # a CA that did not sign the server's certificate
    other = {
        **os.environ,
        **safe_redis.env("monitor"),
        "RUNNER_REDIS_TLS_CA": str(safe_redis.wrong_ca),
    }
    done = subprocess.run([str(RUNNER), "status"], env=other, capture_output=True, text=True)
    assert "TLS certificate failed its check" in done.stderr


def test_the_deployments_secrets_make_a_redis_the_roles_log_in_to(tmp_path: Path) -> None:
    """scripts/redis-secrets' files (deploy/docker-compose.tls.yml mounts them at /run/redis)
    start a TLS-only Redis with the roles' users; the settings' clients log in as a role."""
    from worker.redis_access import redis_options
    from worker.settings import Settings

    secrets = tmp_path / "secrets"
    subprocess.run(
        [str(ROOT / "scripts" / "redis-secrets"), str(secrets), "other-host.example"],
        check=True, capture_output=True, env={**os.environ, "RUNNER_QUEUE": QUEUE},
    )  # fmt: skip
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    acl = (secrets / "redis" / "users.acl").read_text()
    for role in ROLES:
        assert (secrets / role).read_text().strip() not in acl
    port = free_port()
    redis_dir = secrets / "redis"
    conf = (redis_dir / "tls.conf").read_text().replace("/run/redis", str(redis_dir))
    (tmp_path / "tls.conf").write_text(conf.replace("tls-port 6379", f"tls-port {port}"))
    proc = subprocess.Popen(
        ["redis-server", str(tmp_path / "tls.conf"), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        settings = Settings.from_env(
            {
                "RUNNER_REDIS_URL": f"rediss://localhost:{port}",
                "RUNNER_REDIS_ACL_USER": "worker",
                "RUNNER_REDIS_ACL_PASSWORD_FILE": str(secrets / "worker"),
                "RUNNER_REDIS_TLS_CA": str(secrets / "ca.crt"),
                "RUNNER_QUEUE": QUEUE,
            }
        )
        client = redis.Redis.from_url(
            settings.broker_url, **redis_options(settings, settings.broker_url)
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.client_info()["user"] == "worker"
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert client.llen(QUEUE) == 0
        anonymous = redis.Redis(port=port, ssl=True, ssl_ca_certs=str(secrets / "ca.crt"))
        with pytest.raises(redis.AuthenticationError):
            anonymous.get(QUEUE)
    finally:
        proc.kill()
        proc.wait()
