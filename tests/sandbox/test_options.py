"""The compiler options allow-list is exactly what the images' compilers accept: a trivial
program compiles (never CE) in the runner-gcc image, through the judge, with every form the
allow-list documents, one at a time: each standard, each optimisation level, each warning
option, a macro defined (the longest one allowed too) and undefined. The contract once promised
``-std=c23``, which GCC 12 refuses."""

from __future__ import annotations

import pytest

from worker.judging.judge import Judge
from worker.languages import LANGUAGES, OPTIMISATIONS, WARNINGS

pytestmark = pytest.mark.docker

SOURCES = {"c": b"int main(void) { return 0; }\n", "cpp": b"int main() { return 0; }\n"}
MACROS = ("-DONLINE_JUDGE", "-DLIMIT=1.5e+3", "-D" + "X" * 254, "-UONLINE_JUDGE")


def documented(language: str) -> list[str]:
    step = LANGUAGES[language].compile
    assert step is not None
    return [f"-std={std}" for std in step.standards] + [*OPTIMISATIONS, *WARNINGS, *MACROS]


@pytest.mark.parametrize(
    ("language", "option"),
    [(language, option) for language in SOURCES for option in documented(language)],
)
def test_every_documented_option_compiles(judge: Judge, language: str, option: str) -> None:
    lang = LANGUAGES[language]
    assert lang.option_allowed(option)  # what is compiled here is what submissions may ask
    compiled = judge.compile(lang, SOURCES[language], options=[option])
    assert compiled.verdict is None, (compiled.message, compiled.result)
    assert compiled.program is not None
