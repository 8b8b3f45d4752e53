"""Every language passes its self-test in real sandboxes, through the very path a submission
takes (compile step, fork server, cell); one whose runtime cannot run fails it, saying why."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker.judging.judge import Judge
from worker.judging.selftest import Health, self_test
from worker.languages import LANGUAGES

pytestmark = pytest.mark.docker


def test_every_language_passes_its_self_test(judge: Judge) -> None:
    health = Health({})
    health.run(judge, 512, LANGUAGES)
    assert health.reasons() == dict.fromkeys(LANGUAGES, "")


@pytest.mark.parametrize("language", ["javascript", "c"])
def test_a_language_whose_runtime_is_broken_fails_saying_why(judge: Judge, language: str) -> None:
    broken = replace(LANGUAGES[language], run=("/usr/bin/no-such-runtime", "{entry}"))
    said = self_test(judge, broken, 512)
    assert said.startswith("its self-test ended "), said
    assert "no-such-runtime" in said or "No such file" in said, said
