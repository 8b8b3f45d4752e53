"""A real ``runner api`` process for the tests, and a small HTTP client for it."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port, serving
from tests.fleet.conftest import RUNNER


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any  # JSON when the answer is JSON, else text


@dataclass
class Api:
    url: str
    log: Path
    token: str = ""

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 90,
    ) -> Answer:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        key = self.token if token is None else token
        if key:
            sent["Authorization"] = f"Bearer {key}"
        sent.update(headers or {})
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return _answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            return _answer(exc.code, dict(exc.headers), exc.read())


def _answer(status: int, headers: dict[str, str], body: bytes) -> Answer:
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("content-type", "").startswith("application/json"):
        return Answer(status, lowered, json.loads(body))
    return Answer(status, lowered, body.decode(errors="replace"))


@contextmanager
def api_server(tmp: Path, **env: str) -> Iterator[Api]:
    """``runner api`` on a free loopback port with the suite's Redis and ``env``; stopped after."""
    port = free_port()
    api = Api(f"http://127.0.0.1:{port}", tmp / f"api-{port}.log")
    argv = [str(RUNNER), "api", "--port", str(port)]

    def up() -> bool:
        return api.call("GET", "/healthz", timeout=2).status == 200

    with serving(argv, api.log, up, **env):
        yield api


def make_key(name: str, *flags: str) -> dict[str, Any]:
    """``runner keys create NAME --json FLAGS``: the key, its token and webhook secret."""
    done = subprocess.run(
        [str(RUNNER), "keys", "create", name, "--json", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]
