"""fakeredis has no INFO: report what a Redis without ``maxmemory`` reports, so admission's
memory check (tested on its own with other figures) lets work in."""

from __future__ import annotations

import fakeredis
import pytest


@pytest.fixture(autouse=True)
def _fakeredis_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        fakeredis.FakeRedis, "info", lambda self, section=None: {"maxmemory": 0}, raising=False
    )
