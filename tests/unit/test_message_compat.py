"""Messages keep their JSON byte for byte: workers and producers of one release interoperate,
and a registered problem keeps its id. The fixture was captured from the code before limits,
groups, programs and checkers each became one model; a change here is a wire change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fakeredis

from tests.unit.fleet import open_intake, parsed
from worker.contract import parse_problem
from worker.data import storage
from worker.data.problems import problem_id
from worker.languages import LANGUAGES
from worker.messages import ProblemRecord, RunMeta
from worker.producer.workflow import meta_of
from worker.settings import Settings

FIXTURE = Path(__file__).parent / "fixtures" / "messages.json"
CHECKER = {"language": "python", "source": "import sys\nsys.exit(0)\n"}
INTERACTOR = {"language": "c", "source": "int main(void) { return 0; }\n"}
GROUPS = {
    "groups": [
        {"name": "small", "points": 40},
        {"name": "big", "points": 60.5, "policy": "min", "depends_on": ["small"]},
    ],
    "tests": [
        {"id": "a", "stdin": "1\n", "expected_stdout": "1\n", "group": "small"},
        {"id": "b", "stdin": "2\n", "expected_stdout": "2\n", "group": "big"},
        {"id": "c", "stdin": "3\n", "group": "big"},
    ],
}
PROBLEMS: dict[str, dict[str, Any]] = {
    "default": {"tests": [{"stdin": "x"}]},
    "float": {
        "tests": [{"stdin": "x", "expected_stdout": "1.0"}],
        "limits": {"cpu_time_ms": 1500, "memory_mb": 128},
        "checker": {"name": "float", "abs_tol": 0.5},
    },
    "compare": {"tests": [{"stdin": "x"}], "compare": {"mode": "lines"}},
    "program_checker": {**GROUPS, "checker": CHECKER, "limits": {"processes": 3}},
    "interactor": {**GROUPS, "interactor": INTERACTOR, "checker": CHECKER},
}


def _meta(judged: dict[str, Any]) -> RunMeta:
    submission = parsed(
        {"id": "s1", "tenant": "t", "language": "python", "source": "print(1)\n", **judged}
    )
    packed: dict[str, bytes] = {}
    judging = open_intake(fakeredis.FakeServer()).judging(submission.judging, packed)
    meta = meta_of(submission, "run1", storage.stored_program(submission.program, packed), judging)
    return meta.model_copy(update={"sent_ms": 1})


def _record(raw: dict[str, Any]) -> tuple[str, str]:
    settings = Settings()
    name, judging = parse_problem(raw, settings.maxima(), frozenset(LANGUAGES))
    packed: dict[str, bytes] = {}
    tests = storage.test_specs(judging.tests, 4, packed)
    meta = _meta(raw)
    record = ProblemRecord(name=name, judging=meta.judging, tests=tests)
    return problem_id(judging), record.model_dump_json()


def current() -> dict[str, Any]:
    captured: dict[str, Any] = {}
    for name, raw in PROBLEMS.items():
        meta = _meta(raw)
        pid, record = _record(raw)
        captured[name] = {
            "meta_json": meta.model_dump_json(),
            "meta_encoded": json.dumps(meta.encode()),
            "problem_id": pid,
            "record_json": record,
        }
    return captured


def test_messages_encode_as_they_did() -> None:
    assert current() == json.loads(FIXTURE.read_text())


def test_messages_read_back_as_they_were() -> None:
    for captured in json.loads(FIXTURE.read_text()).values():
        meta = RunMeta.model_validate_json(captured["meta_json"])
        assert meta.model_dump_json() == captured["meta_json"]
        record = ProblemRecord.model_validate_json(captured["record_json"])
        assert record.model_dump_json() == captured["record_json"]
