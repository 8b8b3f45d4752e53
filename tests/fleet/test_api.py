"""``runner api`` as a real server process against the suite's Redis: keys, limits, refusals,
SSRF, the OpenAPI document; with real workers, judged submissions, progress events, and
webhooks that fail before they are taken."""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from standardwebhooks import Webhook

from tests.fleet.api import Api, api_server, make_key
from tests.fleet.conftest import RUNNER, flush
from worker.client import Client
from worker.contract import parse_submission, rejected
from worker.errors import SubmissionRejected
from worker.keyspace import ADMITTED_TESTS as ADMITTED
from worker.languages import LANGUAGES
from worker.settings import Settings

pytestmark = [pytest.mark.redis]

PROGRAM = {"language": "python", "source": "print(int(input()) + 1)"}
ONE_TEST = {**PROGRAM, "tests": [{"stdin": "41", "expected_stdout": "42"}]}


@pytest.fixture
def api(redis_db: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    """The API with keys required, body limit 1 MB, and a key of 'alpha' to call it with."""
    flush()
    with api_server(tmp_path, RUNNER_API_MAX_BODY_MB="1") as server:
        server.token = make_key("alpha")["token"]
        yield server
    flush()


def test_requests_without_a_valid_key_are_401_and_a_revoked_key_stops_working(api: Api) -> None:
    missing = api.call("GET", "/v1/submissions/abc", token="")
    assert (missing.status, missing.body["error"]["code"]) == (401, "no_key")
    assert missing.headers["www-authenticate"] == "Bearer"
    unknown = "rk_" + "0" * 12 + "_" + "x" * 32
    for token, why in (("rk_nothing", "not an API key"), (unknown, "unknown")):
        answer = api.call("GET", "/v1/submissions/abc", token=token)
        assert answer.status == 401 and why in answer.body["error"]["message"], answer
    key = make_key("beta")
    assert api.call("GET", "/v1/submissions/abc", token=key["token"]).status == 404
    revoke = subprocess.run(
        [str(RUNNER), "keys", "revoke", key["id"]], capture_output=True, text=True, timeout=30
    )
    assert revoke.returncode == 0, revoke.stderr
    deadline = time.monotonic() + 5  # the API caches a key's check for 2 s
    while (answer := api.call("GET", "/v1/submissions/abc", token=key["token"])).status != 401:
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    assert answer.body["error"]["message"] == "this API key was revoked"


def test_keys_are_hashed_at_rest(api: Api, redis_db: redis.Redis) -> None:
    key = make_key("gamma")
    backend = redis.Redis.from_url(Settings.from_env().result_backend)
    stored = backend.hgetall(f"runner:api:key:{key['id']}")
    assert key["token"].encode() not in b"".join(stored.values())
    assert stored[b"hash"] == hashlib.sha256(key["token"].encode()).hexdigest().encode()


def test_a_flood_from_one_key_gets_429_with_retry_after(api: Api) -> None:
    flood = make_key("flood", "--rate", "1", "--burst", "3")["token"]
    answers = [api.call("POST", "/v1/submissions", ONE_TEST, token=flood) for _ in range(6)]
    assert [a.status for a in answers[:3]] == [202] * 3  # the burst, then one per second
    limited = [a for a in answers[3:] if a.status == 429]
    assert limited, [a.status for a in answers]
    assert limited[0].body["error"]["code"] == "rate_limited"
    assert int(limited[0].headers["retry-after"]) >= 1
    # another key is not held back by this one's flood
    assert api.call("POST", "/v1/submissions", ONE_TEST).status == 202


def test_bad_bodies_are_refused_with_the_status_and_a_precise_message(api: Api) -> None:
    wrong_type = api.call(
        "POST", "/v1/submissions", raw=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert (wrong_type.status, wrong_type.body["error"]["code"]) == (415, "not_json")
    broken = api.call("POST", "/v1/submissions", raw=b'{"language": "python",\n  "source": }')
    assert (broken.status, broken.body["error"]["code"]) == (400, "invalid_json")
    assert "line 2 column 13" in broken.body["error"]["message"]
    bad_wait = api.call("POST", "/v1/submissions?wait=soon", ONE_TEST)
    assert (bad_wait.status, bad_wait.body["error"]["code"]) == (400, "bad_wait")
    admitted = redis.Redis.from_url(Settings.from_env().result_backend).get(ADMITTED)
    assert admitted in (None, b"0")  # refused before anything was admitted or sent
    big = api.call("POST", "/v1/submissions", raw=b" " * (2**20 + 1))
    assert (big.status, big.body["error"]["code"]) == (413, "body_too_large")
    # no Content-Length: refused as the stream passes the limit
    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/v1/submissions")
    conn.putheader("Authorization", f"Bearer {api.token}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b" " * 65536
    try:
        for _ in range(20):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server may answer and close before the whole body is sent
    assert conn.getresponse().status == 413
    conn.close()


def test_contract_rejections_are_422_with_the_celery_paths_code_and_message(api: Api) -> None:
    cases = [
        {**ONE_TEST, "colour": "red"},  # an unknown field
        {**PROGRAM, "tests": []},
        {**ONE_TEST, "language": "cobol"},
        [1, 2, 3],
    ]
    settings = Settings.from_env()
    for raw in cases:
        answer = api.call("POST", "/v1/submissions", raw)
        try:
            parse_submission(raw, settings.maxima(), frozenset(LANGUAGES))
        except SubmissionRejected as exc:
            expected = rejected(None, exc).model_dump(mode="json")
        assert (answer.status, answer.body) == (422, expected), raw
    other = api.call("POST", "/v1/submissions", {**ONE_TEST, "tenant": "someone-else"})
    assert (other.status, other.body["error"]["code"]) == (422, "tenant_not_allowed")


def test_a_key_past_its_in_flight_cap_gets_429_and_nothing_is_sent(api: Api) -> None:
    capped = make_key("capped", "--in-flight", "1")["token"]
    first = api.call("POST", "/v1/submissions", ONE_TEST, token=capped)
    assert first.status == 202, first  # no worker: it stays in flight
    second = api.call("POST", "/v1/submissions", ONE_TEST, token=capped)
    assert (second.status, second.body["error"]["code"]) == (429, "too_many_in_flight")
    assert second.headers["retry-after"] == "1"
    status = api.call("GET", f"/v1/submissions/{first.body['id']}", token=capped)
    assert (status.status, status.body["state"], status.body["total"]) == (200, "queued", 1)
    # another key cannot see it
    assert api.call("GET", f"/v1/submissions/{first.body['id']}").status == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "file:///etc/passwd",
        "gopher://example.org/",
        "http://user:secret@example.org/hook",
        "http://no-such-host.invalid/hook",
    ],
)
def test_a_callback_url_into_the_judges_own_network_is_refused(api: Api, url: str) -> None:
    answer = api.call("POST", "/v1/submissions", {**ONE_TEST, "callback_url": url})
    assert answer.status == 422, answer
    assert answer.body["error"]["code"] == "callback_not_allowed", answer.body


def test_busy_refusals_carry_the_status_and_retry_after_clients_act_on(
    redis_db: redis.Redis, tmp_path: Path
) -> None:
    flush()
    with api_server(
        tmp_path, RUNNER_API_OPEN="1", RUNNER_MAX_QUEUED_TESTS="3", RUNNER_TENANT_MAX_TESTS="2"
    ) as server:
        three = {**PROGRAM, "tests": [{"stdin": "1"}] * 3}
        tenant_busy = server.call("POST", "/v1/submissions", three)
        assert (tenant_busy.status, tenant_busy.headers["retry-after"]) == (429, "2")
        assert tenant_busy.body["error"]["code"] == "tenant_busy"
        two = {**PROGRAM, "tenant": "a", "tests": [{"stdin": "1"}] * 2}
        assert server.call("POST", "/v1/submissions", two).status == 202
        busy = server.call("POST", "/v1/submissions", {**two, "tenant": "b"})
        assert (busy.status, busy.headers["retry-after"]) == (503, "5")
        assert busy.body["error"]["code"] == "fleet_busy"
    flush()


def test_openapi_names_every_route_and_the_contracts_models(api: Api) -> None:
    document = api.call("GET", "/openapi.json").body
    assert set(document["paths"]) >= {
        "/v1/submissions",
        "/v1/submissions/{sid}",
        "/v1/submissions/{sid}/events",
        "/v1/languages",
        "/healthz",
        "/readyz",
    }
    body = document["paths"]["/v1/submissions"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiSubmission"}
    schema = document["components"]["schemas"]["ApiSubmission"]
    assert {"language", "tests", "checker", "callback_url"} <= set(schema["properties"])
    refs = json.dumps(document).count("#/components/schemas/")
    assert refs and {"TestIn", "SubmissionResult", "TestResult"} <= set(
        document["components"]["schemas"]
    )
    languages = api.call("GET", "/v1/languages").body
    assert [lang["name"] for lang in languages] == list(LANGUAGES)


def test_readyz_says_no_worker_is_alive(api: Api) -> None:
    answer = api.call("GET", "/readyz")
    assert (answer.status, answer.body["ready"]) == (503, False)
    assert "no worker" in answer.body["reason"]


# --- with workers --------------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """A webhook receiver that fails its first ``failures`` calls with 500."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.failures = failures
        self.calls: list[tuple[float, dict[str, str], bytes]] = []


class _Hook(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.calls.append((time.monotonic(), dict(self.headers), body))
        status = 500 if len(self.server.calls) <= self.server.failures else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.mark.docker
def test_a_submission_over_http_is_judged_and_streams_its_tests(
    workers: Any, redis_db: redis.Redis, tmp_path: Path
) -> None:
    workers("http")
    with api_server(tmp_path) as server:
        server.token = make_key("judged")["token"]
        assert server.call("GET", "/readyz").status == 200
        tests = [{"stdin": str(n), "expected_stdout": str(n + 1)} for n in range(3)]
        tests.append({"stdin": "1", "expected_stdout": "3"})
        done = server.call("POST", "/v1/submissions?wait=60", {**PROGRAM, "tests": tests})
        assert (done.status, done.body["state"]) == (200, "done"), done
        result = done.body["result"]
        assert (result["verdict"], result["passed"], result["total"]) == ("WA", 3, 4)
        # the same submission through the Celery path gives the same verdicts
        celery = Client().send({**PROGRAM, "tests": tests}).result(timeout=60)
        assert [t.verdict for t in celery.tests] == [t["verdict"] for t in result["tests"]]

        sent = server.call("POST", "/v1/submissions", {**PROGRAM, "tests": tests})
        assert sent.status == 202
        stream = server.call("GET", sent.body["events_url"])
        events = [block for block in stream.body.split("\n\n") if block.strip()]
        names = [block.split("\n")[0].removeprefix("event: ") for block in events]
        assert names == ["test"] * 4 + ["result"], stream.body
        indices = sorted(json.loads(b.split("data: ", 1)[1])["index"] for b in events[:4])
        assert indices == [0, 1, 2, 3]
        final = server.call("GET", sent.body["status_url"]).body
        assert final["state"] == "done" and final["result"]["verdict"] == "WA"
        assert final["finished"] == 4 and final["total"] == 4

        # a contract rejection reads the same on both paths
        bad = {**PROGRAM, "tests": []}
        over_http = server.call("POST", "/v1/submissions", bad)
        over_celery = Client().send(bad).result(timeout=60)
        assert over_http.status == 422
        assert over_http.body["error"] == over_celery.model_dump(mode="json")["error"]


@pytest.mark.docker
def test_a_webhook_that_fails_twice_is_retried_then_delivered_once_and_signed(
    workers: Any, redis_db: redis.Redis, tmp_path: Path
) -> None:
    workers("hooks")
    receiver = Receiver(failures=2)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        with api_server(
            tmp_path, RUNNER_API_ALLOW_PRIVATE_CALLBACKS="1", RUNNER_API_WEBHOOK_BACKOFF_MS="400"
        ) as server:
            key = make_key("hooked")
            server.token = key["token"]
            sent = server.call("POST", "/v1/submissions", {**ONE_TEST, "callback_url": hook})
            assert sent.status == 202, sent
            deadline = time.monotonic() + 60
            while (status := server.call("GET", sent.body["status_url"]).body)["webhook"][
                "state"
            ] != "delivered":
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
            time.sleep(2)  # nothing more arrives once it was taken
    finally:
        receiver.shutdown()
    assert status["webhook"]["attempts"] == 3 and status["webhook"]["last"] == "HTTP 204"
    assert len(receiver.calls) == 3
    times = [t for t, _, _ in receiver.calls]
    assert times[1] - times[0] >= 0.35 and times[2] - times[1] >= 0.7  # 400 ms, doubling
    deliveries = {headers["webhook-id"] for _, headers, _ in receiver.calls}
    assert deliveries == {"msg_" + sent.body["id"]}
    for _, headers, body in receiver.calls:
        event = Webhook(key["webhook_secret"]).verify(body, headers)  # Standard Webhooks
        assert event["data"]["submission_id"] == sent.body["id"]
        assert event["data"]["result"]["verdict"] == "AC"


@pytest.mark.docker
def test_an_api_restarted_mid_submission_loses_nothing(
    workers: Any, redis_db: redis.Redis, tmp_path: Path
) -> None:
    """Everything the API knows is in Redis: a submission sent through one API process, which
    stops at once, is read and its webhook delivered by another."""
    workers("restart")
    receiver = Receiver(failures=0)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    env = {"RUNNER_API_ALLOW_PRIVATE_CALLBACKS": "1"}
    key = make_key("restarted")
    # it ends after the first API process has stopped
    slow = {**ONE_TEST, "source": "import time\ntime.sleep(0.5)\nprint(int(input()) + 1)"}
    try:
        with api_server(tmp_path, **env) as first:
            first.token = key["token"]
            sent = first.call("POST", "/v1/submissions", {**slow, "callback_url": hook})
            assert sent.status == 202, sent
        with api_server(tmp_path, **env) as second:
            second.token = key["token"]
            deadline = time.monotonic() + 90
            while (status := second.call("GET", sent.body["status_url"]).body)["webhook"][
                "state"
            ] != "delivered":
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
    finally:
        receiver.shutdown()
    assert status["result"]["verdict"] == "AC"
    ids = [json.loads(body)["data"]["submission_id"] for _, _, body in receiver.calls]
    assert ids == [sent.body["id"]]
