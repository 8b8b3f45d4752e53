"""The HTTP API's own Prometheus metrics (worker.api.metrics), scraped from a real ``runner api``
process: requests by route template and status, and their latency."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.fleet.api import api_server, make_key
from tests.fleet.conftest import flush

pytestmark = [pytest.mark.redis]


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series] = float(value)
    return found


def test_requests_are_counted_by_route_template_and_status_and_timed(
    redis_db: redis.Redis, tmp_path: Path
) -> None:
    flush()
    with api_server(tmp_path) as api:
        api.token = make_key("metrics")["token"]
        assert api.call("GET", "/v1/languages").status == 200
        assert api.call("GET", "/v1/submissions/0123abcd").status == 404
        assert api.call("GET", "/v1/submissions/0123abcd", token="").status == 401
        assert api.call("GET", "/no/such/route").status == 404
        # no key: Prometheus scrapes it as it scrapes /healthz
        scraped = api.call("GET", "/metrics", token="")
    assert scraped.status == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    found = samples(scraped.body)
    total = "runner_api_requests_total"
    assert found[f'{total}{{method="GET",route="/v1/languages",status="200"}}'] == 1
    assert found[f'{total}{{method="GET",route="/v1/submissions/{{sid}}",status="404"}}'] == 1
    assert found[f'{total}{{method="GET",route="/v1/submissions/{{sid}}",status="401"}}'] == 1
    assert found[f'{total}{{method="GET",route="unmatched",status="404"}}'] == 1
    timed = 'runner_api_request_seconds_count{method="GET",route="/v1/submissions/{sid}"}'
    assert found[timed] == 2
    assert found['runner_api_request_seconds_sum{method="GET",route="/v1/languages"}'] > 0
    # a path asked for never becomes a label: ids and scans add no series
    assert "0123abcd" not in scraped.body and "/no/such" not in scraped.body
    flush()
