"""The rooms stay apart: a producer (a web app sending submissions) loads no Docker or sandbox
code, however it imports the package."""

from __future__ import annotations

import subprocess
import sys

import pytest

WORKER_SIDE = (
    "docker",
    "worker.sandbox",
    "worker.judging.judge",
    "worker.pipeline.runtime",
    "worker.pipeline.tasks",
)


@pytest.mark.parametrize("imports", ["worker.client", "worker.contract", "worker"])
def test_the_producer_side_imports_no_docker_or_sandbox_code(imports: str) -> None:
    code = (
        f"import sys, {imports}\n"
        f"print(sorted(m for m in sys.modules if m.startswith({WORKER_SIDE!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_worker_side_names_of_the_package_load_when_used() -> None:
    import worker

    assert worker.Judge.__module__ == "worker.judging.judge"
    assert "FakePool" in worker.__all__ and worker.FakePool.__name__ == "FakePool"
