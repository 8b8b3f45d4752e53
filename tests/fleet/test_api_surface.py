"""``runner api`` as a newcomer (or a Judge0 or Stripe user) tries it, against the suite's
Redis: the 400s the docs promise, the error shape everywhere, Request-Id and RateLimit
headers, reads limited apart from submissions, the event-stream cap, the playground's headers,
``?wait=true``, the language registry, Idempotency-Key, batches, a key's submissions page by
page, and an OpenAPI document that validates (3.1 and 3.0). With workers: cancelling, and a
client generated from the document that submits and reads a result."""

from __future__ import annotations

import http.client
import importlib
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from openapi_spec_validator import validate

from tests.conftest import TEST_ENV
from tests.fleet.api import Api, api_server, make_key
from tests.fleet.conftest import flush
from worker.api.limits import MAX_STREAMS, READS_PER_SUBMIT
from worker.api.requests import MAX_DEPTH
from worker.api.service import MAX_BATCH
from worker.data import availability
from worker.languages import LANGUAGES

pytestmark = [pytest.mark.redis]

PROGRAM = {"language": "python", "source": "print(int(input()) + 1)"}
ONE_TEST = {**PROGRAM, "tests": [{"stdin": "41", "expected_stdout": "42"}]}


@pytest.fixture
def api(redis_db: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    """The API with keys required, and a key of 'surface' to call it with."""
    flush()
    with api_server(tmp_path) as server:
        server.token = make_key("surface")["token"]
        yield server
    flush()


def refused(answer: Any, status: int, code: str) -> str:
    assert (answer.status, answer.body["error"]["code"]) == (status, code), answer
    assert set(answer.body) == {"error"} and set(answer.body["error"]) == {"code", "message"}
    return str(answer.body["error"]["message"])


def test_bodies_the_docs_call_400_are_400_not_500(api: Api) -> None:
    nested = b'{"id": ' + b"[" * 990 + b"]" * 990 + b"}"
    assert "64 levels" in refused(
        api.call("POST", "/v1/submissions", raw=nested), 400, "invalid_json"
    )
    deep = MAX_DEPTH - 1  # 64 levels with the object around it
    just = b'{"id": ' + b"[" * deep + b"]" * deep + b"}"
    assert api.call("POST", "/v1/submissions", raw=just).status == 422  # the contract's refusal
    huge = b'{"language": "python", "source": "", "tests": [{"stdin": ' + b"7" * 4301 + b"}]}"
    assert "4300 digits" in refused(
        api.call("POST", "/v1/submissions", raw=huge), 400, "invalid_json"
    )
    for encoding in ("utf-16", "utf-32"):  # json.loads would read both
        body = json.dumps(ONE_TEST).encode(encoding)
        message = refused(api.call("POST", "/v1/submissions", raw=body), 400, "invalid_json")
        assert "not UTF-8" in message
    # without a byte order mark, ASCII in UTF-16 is valid UTF-8 (NUL bytes), but not JSON
    body = json.dumps(ONE_TEST).encode("utf-16-le")
    refused(api.call("POST", "/v1/submissions", raw=body), 400, "invalid_json")


def test_every_error_has_the_documented_shape_unknown_routes_and_methods_too(api: Api) -> None:
    assert "/v1/nothing" in refused(api.call("GET", "/v1/nothing"), 404, "not_found")
    wrong = api.call("PUT", "/v1/submissions", ONE_TEST)
    refused(wrong, 405, "method_not_allowed")
    assert "POST" in wrong.headers["allow"]
    refused(api.call("GET", "/v1/submissions?limit=0"), 400, "bad_query")


def test_request_id_is_echoed_or_made_and_in_the_apis_log(api: Api) -> None:
    mine = f"req-{uuid.uuid4().hex}"
    answer = api.call("POST", "/v1/submissions", ONE_TEST, headers={"Request-Id": mine})
    assert answer.status == 202 and answer.headers["request-id"] == mine
    made = api.call("GET", "/v1/nothing", headers={"Request-Id": "bad id with spaces"})
    assert made.headers["request-id"] not in ("", "bad id with spaces")
    assert len({api.call("GET", "/healthz").headers["request-id"] for _ in range(3)}) == 3
    logged = [line for line in api.log.read_text().splitlines() if mine in line]
    assert any("api.accepted" in line for line in logged), api.log.read_text()[-2000:]


def test_reads_have_a_bucket_of_their_own_and_both_say_where_they_stand(api: Api) -> None:
    """Four pollers as fast as they can go never use up the key's submissions."""
    key = make_key("polled", "--rate", "1", "--burst", "3")["token"]
    sent = api.call("POST", "/v1/submissions", ONE_TEST, token=key)
    assert sent.status == 202
    assert sent.headers["ratelimit-policy"] == '"submit";q=3;w=3'
    assert sent.headers["ratelimit"].startswith('"submit";r=2;t=')
    statuses: list[int] = []

    def poll() -> None:
        for _ in range(25):
            statuses.append(api.call("GET", sent.body["status_url"], token=key).status)

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join()
    # reads: 10 times the key's rate and burst, so the burst of 30 at least, then 429s
    assert 429 in statuses and statuses.count(200) >= 3 * READS_PER_SUBMIT, statuses
    read = api.call("GET", sent.body["status_url"], token=key)
    assert read.headers["ratelimit-policy"] == f'"read";q={3 * READS_PER_SUBMIT};w=3'
    posts = [api.call("POST", "/v1/submissions", ONE_TEST, token=key) for _ in range(2)]
    assert [post.status for post in posts] == [202, 202]  # the submissions' tokens untouched
    for _ in range(5):  # a token comes back each second: a quick flood runs dry
        limited = api.call("POST", "/v1/submissions", ONE_TEST, token=key)
        if limited.status == 429:
            break
    assert "submissions/s" in refused(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit"].startswith('"submit";r=0;t=')


def test_event_streams_per_key_are_capped(api: Api) -> None:
    sent = api.call("POST", "/v1/submissions", ONE_TEST)  # no worker: its stream stays open
    host, port = api.url.removeprefix("http://").split(":")
    streams = []
    try:
        for _ in range(MAX_STREAMS):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("GET", sent.body["events_url"], headers=_auth(api))
            assert conn.getresponse().status == 200
            streams.append(conn)
        over = api.call("GET", sent.body["events_url"])
        assert f"{MAX_STREAMS} event streams" in refused(over, 429, "too_many_streams")
        streams.pop().close()  # a stream that ends gives its place back
        deadline = time.monotonic() + 10
        while (again := _open(host, port, api, sent.body["events_url"])) is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        streams.append(again)
    finally:
        for conn in streams:
            conn.close()


def _auth(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token}"}


def _open(host: str, port: str, api: Api, path: str) -> http.client.HTTPConnection | None:
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path, headers=_auth(api))
    if conn.getresponse().status == 200:
        return conn
    conn.close()
    return None


def test_the_playground_is_neither_sniffed_framed_nor_running_anything_it_did_not_ship(
    api: Api,
) -> None:
    for path in ("/", "/static/playground.js"):
        answer = api.call("GET", path, token="")
        assert answer.status == 200
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy


def test_wait_true_waits_as_long_as_the_api_may_and_false_not_at_all(
    redis_db: redis.Redis, tmp_path: Path
) -> None:
    flush()
    with api_server(tmp_path, RUNNER_API_OPEN="1", RUNNER_API_MAX_WAIT_S="1") as server:
        started = time.monotonic()
        waited = server.call("POST", "/v1/submissions?wait=true", ONE_TEST)
        assert waited.status == 202 and time.monotonic() - started >= 1  # no worker: not final
        assert server.call("POST", "/v1/submissions?wait=false", ONE_TEST).status == 202
        refused(server.call("POST", "/v1/submissions?wait=soon", ONE_TEST), 400, "bad_wait")
    flush()


def test_languages_say_what_compiles_what_is_only_checked_aliases_versions_and_limits(
    redis_db: redis.Redis, tmp_path: Path
) -> None:
    flush()
    with api_server(
        tmp_path, RUNNER_MAX_CPU_TIME_MS="3000", RUNNER_COMPILER_OPTIONS="cpp=-fno-rtti"
    ) as server:
        unknown = server.call("GET", "/v1/languages").body  # no worker has said anything
        backend = redis.Redis.from_url(TEST_ENV["RUNNER_RESULT_BACKEND"])
        said = dict.fromkeys(LANGUAGES, "") | {"javascript": "its self-test ended RE"}
        availability.announce(backend, TEST_ENV["RUNNER_QUEUE"], "w@test", said)
        languages = {lang["name"]: lang for lang in server.call("GET", "/v1/languages").body}
    flush()
    assert {(lang["healthy"], lang["unavailable"]) for lang in unknown} == {(None, None)}
    assert languages["python"]["healthy"] is True and languages["python"]["unavailable"] is None
    assert languages["javascript"]["healthy"] is False
    assert languages["javascript"]["unavailable"] == (
        "javascript failed its self-test on every worker that runs it (w@test: its self-test "
        "ended RE)"
    )
    assert list(languages) == list(LANGUAGES)
    for name, lang in LANGUAGES.items():
        said = languages[name]
        assert (said["compiled"], said["syntax_checked"]) == (lang.compiled, lang.syntax_checked)
        assert (said["version"], said["aliases"]) == (lang.version, list(lang.aliases))
    assert "c++" in languages["cpp"]["aliases"] and "py" in languages["python"]["aliases"]
    assert languages["python"]["version"] == "3.11"
    assert languages["cpp"]["limits"]["cpu_time_ms"] == {"default": 2000, "max": 3000}
    assert languages["cpp"]["compiler_options"]["operator"] == ["-fno-rtti"]
    assert "c++20" in languages["cpp"]["compiler_options"]["standards"]
    assert languages["python"]["compiler_options"] is None


def test_a_language_alias_is_accepted_over_http(api: Api) -> None:
    answer = api.call(
        "POST", "/v1/submissions", {"language": "C++", "source": "int main(){}", "tests": [{}]}
    )
    assert answer.status == 202, answer


def test_a_post_sent_again_with_its_idempotency_key_is_judged_once(
    api: Api, redis_db: redis.Redis
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.call("POST", "/v1/submissions", ONE_TEST, headers=key)
    again = api.call("POST", "/v1/submissions", ONE_TEST, headers=key)
    assert (first.status, again.status) == (202, 202)
    assert again.body == first.body and again.headers["idempotent-replayed"] == "true"
    listed = api.call("GET", "/v1/submissions").body["submissions"]
    assert [entry["id"] for entry in listed] == [first.body["id"]]  # one submission only
    other = api.call("POST", "/v1/submissions", {**ONE_TEST, "id": "else"}, headers=key)
    assert "another body" in refused(other, 422, "idempotency_key_reused")
    rejected = {"Idempotency-Key": str(uuid.uuid4())}
    bad = {**PROGRAM, "tests": []}
    answers = [api.call("POST", "/v1/submissions", bad, headers=rejected) for _ in range(2)]
    assert [a.status for a in answers] == [422, 422] and answers[0].body == answers[1].body
    refused(
        api.call("POST", "/v1/submissions", ONE_TEST, headers={"Idempotency-Key": "é"}),
        400,
        "bad_idempotency_key",
    )


def test_a_batch_is_answered_submission_by_submission(api: Api) -> None:
    batch = {"submissions": [ONE_TEST, {**PROGRAM, "tests": []}, {**ONE_TEST, "language": "js"}]}
    answer = api.call("POST", "/v1/submissions/batch", batch)
    assert answer.status == 200, answer
    first, bad, third = answer.body["submissions"]
    assert (first["status"], third["status"]) == (202, 202)
    assert (bad["status"], bad["error"]["code"], bad["result"]["verdict"]) == (
        422,
        "no_tests",
        "RJ",
    )
    assert api.call("GET", first["status_url"]).body["state"] == "queued"
    too_many = {"submissions": [ONE_TEST] * (MAX_BATCH + 1)}
    refused(api.call("POST", "/v1/submissions/batch", too_many), 422, "bad_batch")
    small = make_key("small", "--burst", "2")["token"]
    over = api.call("POST", "/v1/submissions/batch", {"submissions": [ONE_TEST] * 3}, token=small)
    assert "burst is 2" in refused(over, 422, "bad_batch")


def test_a_keys_submissions_are_listed_newest_first_a_page_at_a_time(api: Api) -> None:
    sent = [api.call("POST", "/v1/submissions", ONE_TEST).body["id"] for _ in range(5)]
    other = make_key("someone-else")["token"]
    api.call("POST", "/v1/submissions", ONE_TEST, token=other)
    seen: list[str] = []
    page: str | None = "/v1/submissions?limit=2"
    while page:
        body = api.call("GET", page).body
        assert len(body["submissions"]) <= 2
        seen += [entry["id"] for entry in body["submissions"]]
        assert all(e["state"] == "queued" and e["total"] == 1 for e in body["submissions"])
        page = body["next"]
    assert seen == sent[::-1]


def test_the_openapi_documents_validate_and_list_every_answer(api: Api) -> None:
    for path in ("/openapi.json", "/openapi-3.0.json"):
        document = api.call("GET", path).body
        validate(document)  # openapi-spec-validator: 3.1 and 3.0 alike
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        operations = {
            (route, method): operation
            for route, item in document["paths"].items()
            for method, operation in item.items()
        }
        for (route, method), operation in operations.items():
            answers = set(operation["responses"])
            if operation.get("security") != []:
                assert {"401", "429", "500", "503"} <= answers, (route, method)
            if "{sid}" in route:
                assert "404" in answers
        accepted = operations[("/v1/submissions", "post")]["responses"]["202"]
        schema = accepted["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/SubmissionAccepted"}
    assert document["openapi"] == "3.0.3"
    assert "nullable" in json.dumps(document) and '"type": "null"' not in json.dumps(document)


# --- with workers --------------------------------------------------------------------------


@pytest.mark.docker
def test_cancelling_skips_the_tests_not_yet_started(
    workers: Any, redis_db: redis.Redis, tmp_path: Path
) -> None:
    workers("cancel", concurrency=1)
    slow = {
        "language": "python",
        "source": "import time\ntime.sleep(1)\nprint(input())",
        "tests": [{"stdin": str(n), "expected_stdout": str(n)} for n in range(6)],
    }
    with api_server(tmp_path) as server:
        server.token = make_key("cancelling")["token"]
        sent = server.call("POST", "/v1/submissions", slow)
        deadline = time.monotonic() + 60
        while server.call("GET", sent.body["status_url"]).body["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        cancelled = server.call("DELETE", sent.body["status_url"])
        assert cancelled.status == 202, cancelled
        done = server.call("POST", "/v1/submissions?wait=0", {**ONE_TEST})  # another, unhindered
        assert done.status == 202
        while (status := server.call("GET", sent.body["status_url"]).body)["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        result = status["result"]
        verdicts = [t["verdict"] for t in result["tests"]]
        assert verdicts[0] == "AC" and verdicts[-1] == "SK", verdicts
        skipped = [t for t in result["tests"] if t["verdict"] == "SK"]
        assert all("cancelled" in t["message"] for t in skipped)
        assert (result["verdict"], result["error"]["code"]) == ("SK", "cancelled")
        again = server.call("DELETE", sent.body["status_url"])
        refused(again, 409, "already_final")


@pytest.mark.docker
def test_a_client_generated_from_the_openapi_document_submits_and_reads_a_result(
    workers: Any, redis_db: redis.Redis, tmp_path: Path
) -> None:
    generator = Path(sys.executable).with_name("openapi-python-client")
    workers("generated")
    with api_server(tmp_path) as server:
        server.token = make_key("generated")["token"]
        spec = tmp_path / "openapi.json"
        spec.write_text(json.dumps(server.call("GET", "/openapi-3.0.json").body))
        made = subprocess.run(
            [str(generator), "generate", "--path", str(spec), "--meta", "none"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        package = next(p for p in tmp_path.iterdir() if (p / "client.py").exists())
        sys.path.insert(0, str(tmp_path))
        try:
            client_module = importlib.import_module(f"{package.name}.client")
            create = importlib.import_module(f"{package.name}.api.default.create_submission")
            get = importlib.import_module(f"{package.name}.api.default.get_submission")
            models = importlib.import_module(f"{package.name}.models")
            client = client_module.AuthenticatedClient(base_url=server.url, token=server.token)
            body = models.ApiSubmission.from_dict(ONE_TEST)
            accepted = create.sync(client=client, body=body)
            assert isinstance(accepted, models.SubmissionAccepted), accepted
            deadline = time.monotonic() + 60
            while (status := get.sync(sid=accepted.id, client=client)).state != "done":
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
            assert status.result.verdict == "AC"
            assert status.result.tests[0].stdout == "42\n"
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m.split(".")[0] == package.name]:
                del sys.modules[name]
            shutil.rmtree(package, ignore_errors=True)
