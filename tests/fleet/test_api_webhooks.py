"""Webhooks of a real ``runner api`` against real workers and Redis, sent to hostile and
honest receivers: one that stalls (a byte every 2 s), answers slowly, redirects, sends a huge
body, fails; verified with the Standard Webhooks verifier (``standardwebhooks``); secrets
replaced with an overlap; sent again by route and command; decided once, when accepted; kept
readable past the result."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from standardwebhooks import Webhook

from tests.conftest import TEST_ENV, free_port, serving
from tests.fleet.api import Api, make_key
from tests.fleet.conftest import RUNNER, Worker, flush

pytestmark = [pytest.mark.redis, pytest.mark.docker]

ONE_TEST = {
    "language": "python",
    "source": "print(int(input()) + 1)",
    "tests": [{"stdin": "41", "expected_stdout": "42"}],
}
PRIVATE = {"RUNNER_API_ALLOW_PRIVATE_CALLBACKS": "1"}


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback: ``answer(handler, n)`` answers its ``n``-th call (from
    1). It notes every call (time, headers, body), and how many of its calls ended."""

    daemon_threads = True

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler, int], None]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.calls: list[tuple[float, dict[str, str], bytes]] = []
        self.ended = 0
        self.sent_bytes = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.server.calls.append((time.monotonic(), headers, body))
            n = len(self.server.calls)
        try:
            self.server.answer(self, n)
        except OSError:
            pass  # the API hung up: what a deadline or a cap does
        finally:
            with self.server.lock:
                self.server.ended += 1
        self.close_connection = True

    def log_message(self, *_: Any) -> None:
        pass


def status(code: int) -> Callable[[BaseHTTPRequestHandler, int], None]:
    def answer(handler: BaseHTTPRequestHandler, _: int) -> None:
        handler.send_response(code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def failing(times: int) -> Callable[[BaseHTTPRequestHandler, int], None]:
    def answer(handler: BaseHTTPRequestHandler, n: int) -> None:
        status(503 if n <= times else 204)(handler, n)

    return answer


def stalling(handler: BaseHTTPRequestHandler, _: int) -> None:
    """``HTTP/1.1 200 OK`` then one byte every 2 s: headers that never end."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    handler.wfile.flush()
    for _ in range(60):
        time.sleep(2)
        handler.wfile.write(b"X")
        handler.wfile.flush()


def slow(handler: BaseHTTPRequestHandler, n: int) -> None:
    time.sleep(2)
    status(204)(handler, n)


def huge(handler: BaseHTTPRequestHandler, _: int) -> None:
    """200, then a 400 MB body as fast as the API takes it."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(400 * 2**20))
    handler.end_headers()
    chunk = b"\0" * 2**20
    for _ in range(400):
        handler.wfile.write(chunk)
        handler.server.sent_bytes += len(chunk)  # type: ignore[attr-defined]


@contextmanager
def receiving(answer: Callable[[BaseHTTPRequestHandler, int], None]) -> Iterator[Receiver]:
    receiver = Receiver(answer)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


@contextmanager
def api_process(tmp: Path, **env: str) -> Iterator[tuple[Api, subprocess.Popen[bytes]]]:
    """``runner api`` on a free port (webhook calls end within 5 s unless ``env`` says
    otherwise), and its process."""
    port = free_port()
    api = Api(f"http://127.0.0.1:{port}", tmp / f"api-{port}.log")
    argv = [str(RUNNER), "api", "--port", str(port)]

    def up() -> bool:
        return api.call("GET", "/healthz", timeout=2).status == 200

    with serving(argv, api.log, up, **{"RUNNER_API_WEBHOOK_TIMEOUT_S": "5", **env}) as proc:
        yield api, proc


def webhook(api: Api, sid: str, token: str | None = None) -> dict[str, Any]:
    answer = api.call("GET", f"/v1/submissions/{sid}", token=token)
    assert answer.status == 200, answer
    return answer.body["webhook"]  # type: ignore[no-any-return]


def until(what: Callable[[], Any], timeout: float = 60, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := what()):
        assert time.monotonic() < deadline, f"not so after {timeout} s"
        time.sleep(every)
    return found


def submit(api: Api, url: str, token: str | None = None, **extra: Any) -> str:
    sent = api.call(
        "POST", "/v1/submissions", {**ONE_TEST, **extra, "callback_url": url}, token=token
    )
    assert sent.status == 202, sent
    return str(sent.body["id"])


def delivered(api: Api, sid: str, token: str | None = None) -> dict[str, Any] | None:
    hook = webhook(api, sid, token)
    return hook if hook["state"] == "delivered" else None


@pytest.fixture
def worker(shared_worker: Worker, redis_db: redis.Redis) -> Worker:
    flush()
    return shared_worker


@pytest.fixture
def backend() -> redis.Redis:
    return redis.Redis.from_url(TEST_ENV["RUNNER_RESULT_BACKEND"])


def test_a_stalled_receiver_holds_only_its_own_delivery(worker: Worker, tmp_path: Path) -> None:
    """Three webhooks to a receiver that answers ``200 OK`` then a byte every 2 s, then twenty
    to an honest one and two to a slow one: every honest one is delivered while the stalled
    calls are still held."""
    with (
        receiving(stalling) as stalled,
        receiving(status(204)) as honest,
        receiving(slow) as late,
        api_process(tmp_path, RUNNER_API_WEBHOOK_TIMEOUT_S="60", **PRIVATE) as (api, _),
    ):
        api.token = make_key("stalls")["token"]
        held = [submit(api, stalled.url) for _ in range(3)]
        until(lambda: len(stalled.calls) == 3)
        honest_ids = [submit(api, honest.url) for _ in range(20)]
        slow_ids = [submit(api, late.url) for _ in range(2)]
        for sid in honest_ids + slow_ids:
            until(lambda sid=sid: delivered(api, sid))
        assert stalled.ended == 0, "the stalled calls ended before the honest ones were sent"
        assert len(honest.calls) == 20 and len(late.calls) == 2
        assert all(webhook(api, sid)["attempts"] == 1 for sid in honest_ids + slow_ids)
        assert all(webhook(api, sid)["state"] == "pending" for sid in held)


def test_a_stalled_call_ends_at_its_deadline_and_is_retried(worker: Worker, tmp_path: Path) -> None:
    """The deadline is the whole call's, not each read's: a byte every 2 s does not extend it."""
    with (
        receiving(stalling) as stalled,
        api_process(tmp_path, RUNNER_API_WEBHOOK_TIMEOUT_S="3", **PRIVATE) as (api, _),
    ):
        api.token = make_key("deadline")["token"]
        sid = submit(api, stalled.url)
        hook = until(lambda: webhook(api, sid)["attempts"] and webhook(api, sid))
        assert (hook["state"], hook["last"]) == ("pending", "no answer within 3 s"), hook
        until(lambda: stalled.ended)  # the API hung up on it


def test_a_huge_answer_is_never_read_and_a_redirect_never_followed(
    worker: Worker, tmp_path: Path
) -> None:
    with (
        receiving(huge) as flood,
        receiving(status(204)) as inside,
        receiving(lambda h, n: _redirect(h, inside.url)) as redirecting,
        api_process(tmp_path, RUNNER_API_WEBHOOK_BACKOFF_MS="60000", **PRIVATE) as (api, proc),
    ):
        api.token = make_key("hostile")["token"]
        before = _rss_mb(proc.pid)
        sid = submit(api, flood.url)
        hook = until(lambda: delivered(api, sid))
        assert hook["attempts"] == 1 and hook["last"] == "HTTP 200"
        grew = _rss_mb(proc.pid) - before
        assert grew < 64, f"the API grew by {grew:.0f} MB reading a 400 MB answer"
        assert flood.sent_bytes < 200 * 2**20  # it hung up long before the end
        moved = submit(api, redirecting.url)
        hook = until(lambda: webhook(api, moved)["attempts"] and webhook(api, moved))
        assert hook["state"] == "pending"
        assert hook["last"] == "HTTP 302 (redirects are not followed)", hook
        assert inside.calls == []


def _redirect(handler: BaseHTTPRequestHandler, where: str) -> None:
    handler.send_response(302)
    handler.send_header("Location", where)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_webhooks_verify_with_the_standard_verifier_through_a_secret_rotation(
    worker: Worker, tmp_path: Path
) -> None:
    """``standardwebhooks`` (the specification's own Python verifier) takes each webhook with
    the key's secret; after ``runner keys rotate-secret`` both the old and the new secret
    verify until the overlap ends, then only the new one."""
    with (
        receiving(failing(1)) as receiver,
        api_process(tmp_path, RUNNER_API_WEBHOOK_BACKOFF_MS="300", **PRIVATE) as (api, _),
    ):
        key = make_key("standard")
        api.token = key["token"]
        first = submit(api, receiver.url)
        assert until(lambda: delivered(api, first))["attempts"] == 2  # a 503, then taken
        rotated = _keys("rotate-secret", key["id"], "--overlap", "3600", "--json")
        assert rotated["webhook_secret"] != key["webhook_secret"]
        second = submit(api, receiver.url)
        until(lambda: delivered(api, second))
        _keys("rotate-secret", key["id"], "--overlap", "0")
        newest = _keys("list", "--json")
        third = submit(api, receiver.url)
        until(lambda: delivered(api, third))
    assert next(k for k in newest if k["id"] == key["id"])["previous_secret_until"] > 0
    (a, b), c, d = receiver.calls[:2], receiver.calls[2], receiver.calls[3]
    for _, headers, body in (a, b):
        event = Webhook(key["webhook_secret"]).verify(body, headers)
        assert event["type"] == "submission.finished" and event["timestamp"].endswith("Z")
        assert event["data"]["submission_id"] == first
        assert event["data"]["result"]["verdict"] == "AC"
        assert headers["webhook-id"] == f"msg_{first}"
    assert a[1]["webhook-timestamp"] <= b[1]["webhook-timestamp"]
    for secret in (key["webhook_secret"], rotated["webhook_secret"]):  # the overlap
        assert Webhook(secret).verify(c[2], c[1])["data"]["submission_id"] == second
    _, headers, body = d
    assert len(headers["webhook-signature"].split()) == 1  # the overlap ended
    with pytest.raises(Exception, match="signature"):
        Webhook(rotated["webhook_secret"]).verify(body, headers)


def _keys(*argv: str) -> Any:
    done = subprocess.run(
        [str(RUNNER), "keys", *argv], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in argv else done.stdout


def test_a_webhook_is_sent_again_by_route_and_by_command_with_the_same_id(
    worker: Worker, tmp_path: Path
) -> None:
    with (
        receiving(status(204)) as receiver,
        api_process(tmp_path, **PRIVATE) as (api, _),
    ):
        key = make_key("again")
        api.token = key["token"]
        sid = submit(api, receiver.url)
        until(lambda: delivered(api, sid))
        again = api.call("POST", f"/v1/submissions/{sid}/webhook/resend")
        assert again.status == 202, again
        assert again.body["webhook"]["state"] in ("pending", "delivered")
        until(lambda: len(receiver.calls) == 2)
        until(lambda: delivered(api, sid))
        done = subprocess.run(
            [str(RUNNER), "webhooks", "resend", sid], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        assert f"msg_{sid}" in done.stdout
        until(lambda: len(receiver.calls) == 3)
        # refusals: another key's, one without a webhook, one not final, an unknown id
        other = make_key("other")["token"]
        theirs = api.call("POST", f"/v1/submissions/{sid}/webhook/resend", token=other)
        assert (theirs.status, theirs.body["error"]["code"]) == (404, "not_found")
        plain = api.call("POST", "/v1/submissions?wait=30", ONE_TEST)
        assert plain.status == 200, plain
        none = api.call("POST", f"/v1/submissions/{plain.body['id']}/webhook/resend")
        assert (none.status, none.body["error"]["code"]) == (409, "no_webhook")
        unknown = subprocess.run(
            [str(RUNNER), "webhooks", "resend", "nosuchid"], capture_output=True, text=True
        )
        assert unknown.returncode == 2 and "not_found" in unknown.stderr, unknown.stderr
    ids = {headers["webhook-id"] for _, headers, _ in receiver.calls}
    bodies = {body for _, _, body in receiver.calls}
    assert ids == {f"msg_{sid}"} and len(bodies) == 1  # the same event each time
    for _, headers, body in receiver.calls:
        Webhook(key["webhook_secret"]).verify(body, headers)


def test_the_address_policy_is_decided_when_accepted_and_holds_for_every_replica(
    worker: Worker, tmp_path: Path
) -> None:
    """One API process, which allows private receivers, accepts a webhook to ``localhost``
    and stops before the result; another, which allows public ones only, delivers it, to the
    address checked when it was accepted."""
    slow_program = {"source": "import time\ntime.sleep(2)\nprint(int(input()) + 1)"}
    with receiving(status(204)) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        key = make_key("replicas")
        with api_process(tmp_path, **PRIVATE) as (first, _):
            first.token = key["token"]
            sid = submit(first, url, **slow_program)
        with api_process(tmp_path) as (second, _):
            second.token = key["token"]
            hook = until(lambda: delivered(second, sid))
            refused = second.call("POST", "/v1/submissions", {**ONE_TEST, "callback_url": url})
    assert hook["attempts"] == 1, hook
    assert receiver.calls[0][1]["host"] == url.split("/")[2]  # the URL's own name
    # the replica that allows public receivers only refuses it for new submissions
    assert (refused.status, refused.body["error"]["code"]) == (422, "callback_not_allowed")


def test_a_webhook_outliving_its_result_is_still_sent_and_settles_readable(
    worker: Worker, tmp_path: Path, backend: redis.Redis
) -> None:
    """The result expires (deleted here, as its expiry would) while the webhook is still
    retried: the event kept with the webhook is sent; one never taken ends ``failed`` when its
    window ends, still readable, and is sent again once the receiver is back."""
    outcome = {"code": 503}

    def answer(handler: BaseHTTPRequestHandler, n: int) -> None:
        status(outcome["code"] if n > 1 else 503)(handler, n)

    with (
        receiving(answer) as receiver,
        api_process(
            tmp_path,
            RUNNER_API_WEBHOOK_BACKOFF_MS="1000",
            RUNNER_API_WEBHOOK_RETRY_S="6",
            **PRIVATE,
        ) as (api, _),
    ):
        api.token = make_key("outlived")["token"]
        sid = submit(api, receiver.url)
        until(lambda: receiver.calls)  # the first attempt failed; its result now expires
        assert backend.delete(f"celery-task-meta-{sid}") == 1
        assert backend.ttl(f"runner:api:sub:{sid}") == -1  # kept until the webhook settles
        hook = until(lambda: webhook(api, sid)["state"] == "failed" and webhook(api, sid), 30)
        assert hook["last"].startswith("gave up at the window's end: HTTP 503"), hook
        shown = api.call("GET", f"/v1/submissions/{sid}").body
        assert (shown["state"], shown["result"]) == ("expired", None)
        assert 0 < backend.ttl(f"runner:api:sub:{sid}") <= 3600  # as long as a result
        outcome["code"] = 200
        again = api.call("POST", f"/v1/submissions/{sid}/webhook/resend")
        assert again.status == 202, again
        until(lambda: delivered(api, sid))
    bodies = {body for _, _, body in receiver.calls}
    assert len(bodies) == 1
    assert json.loads(bodies.pop())["data"]["result"]["verdict"] == "AC"


def test_refusals_and_readiness_tell_nothing_of_the_operators_network(
    redis_db: redis.Redis, tmp_path: Path
) -> None:
    """A refused callback says nothing of what its host resolves to, and ``/readyz`` gives a
    reason to key holders only, never an address; with Redis gone too."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    own = f"redis://127.0.0.1:{port}"
    try:
        until(lambda: _pings(own), 10)
        env = {"RUNNER_BROKER_URL": f"{own}/0", "RUNNER_RESULT_BACKEND": f"{own}/1"}
        key = subprocess.run(
            [str(RUNNER), "keys", "create", "looker", "--json"],
            capture_output=True, text=True, timeout=30, check=True, env={**os.environ, **env},
        )  # fmt: skip
        token = json.loads(key.stdout)["token"]
        with api_process(tmp_path, **env) as (api, _):
            api.token = token
            refused = api.call(
                "POST", "/v1/submissions", {**ONE_TEST, "callback_url": "http://localhost:9/"}
            )
            assert refused.status == 422, refused
            said = refused.body["error"]["message"]
            assert "127.0.0.1" not in said and "::1" not in said and "loopback" not in said
            anyone = api.call("GET", "/readyz", token="")
            assert (anyone.status, anyone.body) == (503, {"ready": False})
            holder = api.call("GET", "/readyz")
            assert holder.body["reason"].startswith("no worker"), holder.body
            server.kill()
            server.wait()
            for token_ in ("", token):
                gone = api.call("GET", "/readyz", token=token_)
                assert gone.status == 503 and str(port) not in json.dumps(gone.body), gone.body
                assert "127.0.0.1" not in json.dumps(gone.body)
    finally:
        server.kill()
        server.wait()


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
