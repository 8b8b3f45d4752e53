"""A fleet in one process for unit tests: a runtime over fakeredis and a fake pool, and a
canvas run eagerly as the fleet would run it (compile, every test, the join)."""

from __future__ import annotations

from typing import Any

import fakeredis

from worker.contract import Maxima, Submission, parse_submission
from worker.languages import LANGUAGES
from worker.pipeline import runtime
from worker.pipeline.tasks import join_results, run_test
from worker.producer.intake import Intake
from worker.producer.workflow import TEST_TASK
from worker.sandbox.fake import FakePool, Script, report
from worker.settings import Settings


def sub(n: int = 3, stdin: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Python echo with ``n`` tests that pass (each its own input, unless ``stdin``)."""
    tests = [
        {"id": f"t{i}", "stdin": stdin or str(i), "expected_stdout": stdin or str(i)}
        for i in range(n)
    ]
    return {"language": "python", "source": "print(input())", "tests": tests, **extra}


def parsed(raw: dict[str, Any]) -> Submission:
    return parse_submission(raw, Maxima(), frozenset(LANGUAGES))


def open_intake(server: fakeredis.FakeServer, **env: str) -> Intake:
    settings = Settings.from_env({f"RUNNER_{k.upper()}": v for k, v in env.items()})
    return Intake.open(settings, lambda url: fakeredis.FakeRedis(server=server))


ECHO: Script = lambda image, job: report(stdout=job.stdin)  # noqa: E731


def start_runtime(
    server: fakeredis.FakeServer, script: Script | None = ECHO, **env: str
) -> runtime.Runtime:
    """A runtime installed for the tasks; ``script`` answers jobs (None: run them locally)."""
    intake = open_intake(server, **env)
    rt = runtime.build(intake.settings, FakePool(script), intake=intake)
    runtime.install(rt)
    return rt


def run_all(work: Any) -> dict[str, Any]:
    """A canvas run eagerly, as the fleet would: compile, every test, the join."""
    steps = work.tasks
    compiled = steps[0].apply().get() if steps[0].task != TEST_TASK else None
    chord = steps[1] if compiled is not None else work
    parts = []
    for task in chord.tasks:
        args = (compiled, *task.args) if compiled is not None else task.args
        parts.append(run_test.apply(args=args).get())
    return join_results.apply(args=(parts, *chord.body.args)).get()  # type: ignore[no-any-return]


def judged(rt: runtime.Runtime, raw: dict[str, Any], run: str = "run1") -> dict[str, Any]:
    """A submission accepted and run to its result."""
    return run_all(rt.intake.accept(parsed(raw), run))
