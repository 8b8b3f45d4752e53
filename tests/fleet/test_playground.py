"""The playground page in headless Chromium, driven over the DevTools protocol: a real
submission goes from the page through the API to real workers, and each test's verdict
appears as its event arrives."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import websocket
from PIL import Image, ImageStat

from tests.conftest import serving
from tests.fleet.api import Api, api_server, make_key
from tests.fleet.conftest import chromium_argv

pytestmark = [pytest.mark.docker, pytest.mark.redis]

WINDOW = (1400, 900)


class Page:
    """One page of a headless Chromium, spoken to over the DevTools protocol."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(ws_url, timeout=60)
        self._next = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self._ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == self._next:
                assert "error" not in message, message
                return message["result"]  # type: ignore[no-any-return]

    def eval(self, expression: str) -> Any:
        answer = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in answer, answer
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := self.eval(expression)):
            assert time.monotonic() < deadline, f"not true after {timeout} s: {expression}"
            time.sleep(0.2)
        return value

    def close(self) -> None:
        self._ws.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    log = tmp_path / "chromium.log"
    argv = chromium_argv(
        tmp_path,
        WINDOW,
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
    )
    listening = "DevTools listening on "
    with serving(argv, log, lambda: listening in log.read_text()):
        endpoint = log.read_text().split(listening, 1)[1].split()[0]
        port = endpoint.split(":")[2].split("/")[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = [t for t in json.load(reply) if t["type"] == "page"]
        opened = Page(targets[0]["webSocketDebuggerUrl"])
        yield opened
        opened.close()


@pytest.fixture
def api(workers: Any, redis_db: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    workers("playground")
    with api_server(tmp_path) as server:
        server.token = make_key("browser")["token"]
        yield server


def test_a_submission_from_the_playground_shows_each_verdict(
    page: Page, api: Api, tmp_path: Path
) -> None:
    page.call("Page.enable")
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=WINDOW[0],
        height=WINDOW[1],
        deviceScaleFactor=1,
        mobile=False,
    )
    page.call("Page.navigate", url=api.url + "/")
    page.wait_for("document.querySelectorAll('#language option').length > 0")
    assert page.eval("document.getElementById('language').value") == "python"
    page.eval(
        f"""
        document.getElementById('key').value = {json.dumps(api.token)};
        document.getElementById('add-test').click();
        document.getElementById('add-test').click();
        const rows = document.querySelectorAll('#tests .test');
        rows[2].querySelector('.stdin').value = '2 2\\n';
        rows[2].querySelector('.expected').value = '5\\n';
        rows[3].querySelector('.stdin').value = '20 22\\n';  // no expected output: just run it
        document.getElementById('run').click();
        true
        """
    )
    verdict = page.wait_for("document.getElementById('verdict').dataset.verdict")
    assert verdict == "WA"
    shown = page.eval("[...document.querySelectorAll('#results tr')].map(r => r.dataset.verdict)")
    assert shown == ["AC", "AC", "WA", "AC"]
    message = page.eval("document.querySelector('#results tr:nth-child(3) td.message').textContent")
    assert "expected '5', got '4'" in message
    # each test's output where its verdict is: for the one with no expected output, all there is
    outputs = page.eval(
        "[...document.querySelectorAll('#results td.output pre.stdout')].map(p => p.textContent)"
    )
    assert outputs == ["3\n", "42\n", "4\n", "42\n"], outputs
    assert "passed 3/4" in page.eval("document.getElementById('verdict').textContent")
    shot = tmp_path / "playground.png"
    shot.write_bytes(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == WINDOW
        gray = image.convert("L")
        assert ImageStat.Stat(gray).stddev[0] > 10  # not a blank or an error page

    # the page sends the key it is given: a wrong one is refused, and the page says so
    page.eval(
        "document.getElementById('key').value = 'rk_wrong'; "
        "document.getElementById('run').click(); true"
    )
    page.wait_for("document.getElementById('status').textContent.includes('HTTP 401')")
