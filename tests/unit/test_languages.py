"""The language registry: one module per language, found by the package, checked as it loads;
and every place that names languages derives from it (the contract's schema, the CLI's help,
docs/contract.md's table, the image catalogue, the benchmarks, the examples the demo judges).
Each failure names the language or the place that drifted."""

from __future__ import annotations

import pkgutil
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import worker.languages
from worker.cli import parser
from worker.cli.judging import example_language, language_of
from worker.contract import json_schemas
from worker.images.catalog import IMAGES, SUPERVISOR, images_for
from worker.languages import LANGUAGES, Language, check
from worker.languages.model import Compile

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_but_the_model_is_a_language_named_after_it() -> None:
    modules = {m.name for m in pkgutil.iter_modules(worker.languages.__path__)}
    assert set(LANGUAGES) == modules - {"model"}
    assert list(LANGUAGES) == sorted(LANGUAGES)  # one order everywhere: the names'


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("LANGUAGE = None\n", "worker/languages/cobol.py: LANGUAGE is None, not a Language"),
        (
            "x = 1\n",
            "worker/languages/cobol.py defines no LANGUAGE (every module here but model.py must)",
        ),
        (
            "from worker.languages.python import LANGUAGE\n",
            "worker/languages/cobol.py: LANGUAGE.name is 'python'; a language's module is "
            "named after it (python.py)",
        ),
    ],
)
def test_a_module_that_is_no_language_stops_the_import_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, error: str
) -> None:
    (tmp_path / "cobol.py").write_text(source)
    monkeypatch.setattr(worker.languages, "__path__", [*worker.languages.__path__, str(tmp_path)])
    try:
        with pytest.raises((TypeError, ValueError)) as refused:
            worker.languages._discover()
    finally:
        sys.modules.pop("worker.languages.cobol", None)
    assert str(refused.value) == error


PY = LANGUAGES["python"]


@pytest.mark.parametrize(
    ("changed", "error"),
    [
        (replace(PY, name="snake", aliases=("PY",)), "snake: alias 'PY' already names python"),
        (replace(PY, name="snake", aliases=()), "snake: images: 'python' is declared by python"),
        (
            replace(PY, name="snake", aliases=(), images=(), image="pythn"),
            "snake: image 'pythn' is declared by no language's images",
        ),
        (
            replace(PY, name="snake", aliases=(), images=(), source_file="main.rb"),
            "snake: source_file 'main.rb' is not one of its sources ('.py',)",
        ),
    ],
)
def test_a_registry_that_would_mislead_is_refused_naming_the_field(
    changed: Language, error: str
) -> None:
    with pytest.raises(ValueError) as refused:
        check({**LANGUAGES, changed.name: changed})
    assert str(refused.value).startswith(error), refused.value


def test_the_catalogue_is_the_supervisor_and_the_images_languages_declare() -> None:
    declared = [spec for lang in LANGUAGES.values() for spec in lang.images]
    assert list(IMAGES.values()) == [SUPERVISOR, *declared]
    assert set(images_for(LANGUAGES)) == {spec.key for spec in declared}
    assert images_for(["cpp"]) == ["gcc", "native"]  # C++ compiles and runs in C's images


def test_the_contracts_schema_names_every_language_and_alias() -> None:
    for schema in ("submission.schema.json", "problem.schema.json"):
        said = json_schemas()[schema]["$defs"]
        text = str(said) + str(json_schemas()[schema].get("properties", ""))
        missing = [
            alias for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)
            if alias not in text
        ]  # fmt: skip
        assert not missing, f"{schema} does not name {missing}"


def test_the_clis_help_names_every_language() -> None:
    submit = parser()._subparsers._group_actions[0].choices["submit"]  # type: ignore[union-attr]
    shown = " ".join(submit.format_help().split())
    missing = [name for name in LANGUAGES if name not in shown]
    assert not missing, f"`runner submit --help` does not name {missing}"


def row(lang: Language) -> str:
    """docs/contract.md's row for ``lang``."""
    quoted = lambda items: " ".join(f"`{item}`" for item in items)  # noqa: E731
    before = "compiled" if lang.compiled else "syntax-checked" if lang.syntax_checked else ""
    cells = [
        f"`{lang.name}`",
        quoted(lang.aliases),
        lang.display,
        lang.version,
        f"`{lang.source_file}`",
        quoted(lang.sources),
        before,
        str(lang.runtime_threads),
    ]
    return "| " + " | ".join(cells) + " |"


def test_the_contracts_language_table_is_the_registry() -> None:
    docs = (ROOT / "docs/contract.md").read_text()
    table = re.search(r"<!-- languages:[^\n]*\n(.*?)<!-- /languages -->", docs, re.S)
    assert table, "docs/contract.md has lost its <!-- languages --> table"
    rows = table.group(1).strip().splitlines()[2:]
    expected = [row(lang) for lang in LANGUAGES.values()]
    assert rows == expected, "docs/contract.md's language table should read:\n" + "\n".join(
        expected
    )


def test_every_language_has_an_example_the_demo_judges() -> None:
    """scripts/demo submits examples/*/main.*, each in the language its name says."""
    covered = {
        example_language(str(folder), entry.name)
        for folder in (ROOT / "examples").iterdir()
        for entry in folder.glob("main.*")
    }
    lacking = [name for name in LANGUAGES if name not in covered]
    assert not lacking, f"no example under examples/ is in {', '.join(lacking)}"
    demo = (ROOT / "scripts/demo").read_text()
    named = [name for name in LANGUAGES if re.search(rf"lang={re.escape(name)}\b", demo)]
    assert not named, f"scripts/demo names {named} itself: it should ask the registry"


def test_the_playground_has_a_sample_in_every_language() -> None:
    playground = (ROOT / "worker/api/static/playground.js").read_text()
    samples = playground[playground.index("const SAMPLES = {") : playground.index("};")]
    named = set(re.findall(r"^  (\w+): ", samples, re.M))
    lacking = [name for name in LANGUAGES if name not in named]
    assert not lacking, (
        f"the playground (worker/api/static/playground.js) has no sample in {lacking}"
    )


def test_the_benchmarks_cover_every_language() -> None:
    """scripts/bench sandbox times each language's self-test (an echo); tests/bench checks
    a figure of each."""
    from scripts.benchmarks import sandbox
    from tests.bench import test_quick

    assert sandbox.LANGUAGES is LANGUAGES and test_quick.LANGUAGES is LANGUAGES


def test_a_suffix_two_languages_take_is_the_one_it_names() -> None:
    """.py is CPython's and PyPy's: `runner submit main.py` is Python, as it always was."""
    assert language_of("main.py") == "python"
    assert example_language("examples/collatz-pypy", "main.py") == "pypy"
    assert example_language("examples/sum-python", "main.py") == "python"
    assert example_language("examples/any-pair-checker", "main.py") == "python"


def test_a_compile_step_may_take_only_the_entry() -> None:
    """fpc compiles one file and finds the units it uses itself: ``{entry}`` is the first of
    the sources (the judge puts the entry first), ``{sources}`` all of them."""
    one = Compile(image="fpc", argv=("fpc", "-O2", "{options}", "{entry}"))
    assert one.command(["main.pas", "unit1.pas"], ["-Cr"]) == ("fpc", "-O2", "-Cr", "main.pas")
    every = Compile(image="gcc", argv=("gcc", "{sources}"))
    assert every.command(iter(["main.c", "util.c"]), []) == ("gcc", "main.c", "util.c")
