"""A limit is one field of :class:`worker.contract.Limits`: the wire form, the operator's
ceilings and the job the sandbox runs are read from its fields, so a field added there reaches
all three (and this test fails until its enforcement reaches the job)."""

from __future__ import annotations

import pytest

from worker.contract import Limits, json_schemas, parse_submission
from worker.contract.limits import ceiling
from worker.errors import SubmissionRejected
from worker.judging.runs import program_job
from worker.languages import LANGUAGES
from worker.programs import File, Program
from worker.settings import Settings

LIMITS = list(Limits.model_fields)
PROGRAM = Program(LANGUAGES["python"], (File("main.py", b"print(1)"),))


@pytest.mark.parametrize("name", LIMITS)
def test_every_limit_is_on_the_wire_optional_with_its_default(name: str) -> None:
    schema = json_schemas()["submission.schema.json"]["$defs"]["LimitsIn"]
    default = Limits.model_fields[name].default
    assert schema["properties"][name]["description"].endswith(f", default {default}")
    assert name not in schema.get("required", [])


@pytest.mark.parametrize("name", LIMITS)
def test_every_limit_has_a_setting_that_caps_it(name: str) -> None:
    variable = f"RUNNER_MAX_{name.upper()}"
    assert variable in {v for v, _, _ in Settings.describe()}
    assert getattr(Settings().ceilings(), name) == ceiling(name).default
    capped = Settings.from_env({variable: "20"}).maxima()
    raw = {"language": "python", "source": "", "tests": [{}], "limits": {name: 21}}
    with pytest.raises(SubmissionRejected, match=f"limits.{name}: 21 is above"):
        parse_submission(raw, capped, frozenset(LANGUAGES))


@pytest.mark.parametrize("name", LIMITS)
def test_every_limit_reaches_the_job_the_sandbox_runs(name: str) -> None:
    given = Limits()
    raised = given.model_copy(update={name: getattr(given, name) + 1})
    assert program_job(PROGRAM, raised) != program_job(PROGRAM, given)
