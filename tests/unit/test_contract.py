"""The submission contract: every way a submission can be rejected gets a precise RJ code."""

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from worker.compare import CompareMode, Comparison
from worker.contract import (
    Maxima,
    SubmissionResult,
    TestResult,
    Verdict,
    json_schemas,
    parse_submission,
    rejected,
)
from worker.errors import SubmissionRejected
from worker.languages import LANGUAGES, OPTIMISATIONS, WARNINGS

LANGS = frozenset(LANGUAGES)
MAXIMA = Maxima(tests=3, source_kb=1, stdin_kb=1)


def good(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "language": "python",
        "source": "print(input())",
        "tests": [{"stdin": "1\n", "expected_stdout": "1\n"}],
    }
    base.update(changes)
    return base


def rejection(raw: Any) -> SubmissionRejected:
    with pytest.raises(SubmissionRejected) as info:
        parse_submission(raw, MAXIMA, LANGS)
    return info.value


def test_minimal_submission_gets_documented_defaults() -> None:
    sub = parse_submission(good(), MAXIMA, LANGS)
    assert sub.tests[0].id == "0"
    assert sub.tests[0].stdin == b"1\n"
    assert sub.judging.limits.cpu_time_ms == 2000
    assert sub.judging.limits.memory_mb == 256
    assert sub.judging.checker == Comparison(CompareMode.TOKENS)
    assert (sub.program.entry, sub.program.args, sub.program.options) == ("main.py", (), ())
    assert not sub.stop_on_first_failure


def test_base64_fields_are_decoded() -> None:
    enc = base64.b64encode
    raw = good(
        encoding="base64",
        source=enc(b"\xff\x00").decode(),
        tests=[{"stdin": enc(b"\x01").decode(), "expected_stdout": enc(b"\x02").decode()}],
    )
    sub = parse_submission(raw, MAXIMA, LANGS)
    assert sub.program.files[0].data == b"\xff\x00"
    assert sub.tests[0].stdin == b"\x01"
    assert sub.tests[0].expected_stdout == b"\x02"


def test_float_tolerances_are_taken() -> None:
    sub = parse_submission(good(compare={"mode": "float", "rel_tol": 0.5}), MAXIMA, LANGS)
    assert sub.judging.checker == Comparison(CompareMode.FLOAT, abs_tol=1e-6, rel_tol=0.5)


@pytest.mark.parametrize(
    ("raw", "code", "where"),
    [
        ([1, 2], "not_an_object", "JSON object"),
        (good(language="cobol"), "unknown_language", "cobol"),
        ({"source": "x", "tests": [{}]}, "missing_field", "language"),
        (good(source=5), "wrong_type", "source"),
        (good(tests="abc"), "wrong_type", "tests"),
        (good(limits={"cpu_time_ms": "100"}), "wrong_type", "limits.cpu_time_ms"),
        (good(colour="red"), "unknown_field", "colour"),
        (good(tests=[{"stdin": "", "bogus": 1}]), "unknown_field", "tests.0.bogus"),
        (good(tests=[]), "no_tests", "at least one"),
        (good(tests=[{}] * 4), "too_many_tests", "at most 3"),
        (good(source="x" * 1025), "source_too_large", "1025 bytes"),
        (good(tests=[{"stdin": "x" * 1025}]), "stdin_too_large", "tests.0.stdin"),
        (good(limits={"memory_mb": 513}), "limit_too_high", "limits.memory_mb"),
        (good(limits={"cpu_time_ms": 0}), "invalid_value", "limits.cpu_time_ms"),
        (good(compare={"mode": "fuzzy"}), "invalid_value", "compare.mode"),
        (good(encoding="base64", source="!!"), "invalid_base64", "source"),
        (good(source="\udcff"), "invalid_utf8", "source"),
        (good(tests=[{"id": "a"}, {"id": "a"}]), "duplicate_test_id", "'a'"),
        (good(encoding="latin-1"), "invalid_value", "encoding"),
        (None, "not_an_object", "got null"),
        (good(tests=[1]), "wrong_type", "tests.0"),
        (good(tests=[[{}]]), "wrong_type", "tests.0"),
        (good(limits=[]), "wrong_type", "limits"),
        (good(id="\udc80"), "invalid_utf8", "id"),
        (good(tests=[{"id": "\udc80"}]), "invalid_utf8", "tests.0.id"),
        (good(tests=[{"\udc80": ""}]), "invalid_utf8", "tests.0: field name '\\udc80'"),
    ],
)
def test_bad_submission_is_rejected_precisely(raw: Any, code: str, where: str) -> None:
    exc = rejection(raw)
    assert exc.code == code
    assert where in exc.message


CPP = {"language": "cpp", "source": "int main(){}", "tests": [{"stdin": "1"}]}
PROGRAM = {"language": "cpp", "source": "int main(){}"}


def cpp(**changes: Any) -> dict[str, Any]:
    return {**CPP, **changes}


def grouped(groups: list[dict[str, Any]], tests: list[str | None], **extra: Any) -> Any:
    return cpp(tests=[{"group": g} if g else {} for g in tests], groups=groups, **extra)


@pytest.mark.parametrize(
    ("raw", "code", "where"),
    [
        (cpp(checker={"name": "nope"}), "unknown_checker", "checker: not a built-in checker"),
        (cpp(checker={"name": "float", "zz": 1}), "unknown_field", "checker.zz"),
        (cpp(checker={"name": "tokens"}, compare={"mode": "exact"}), "conflicting_fields",
         "compare"),
        (cpp(checker={"language": "cobol", "source": ""}), "unknown_language", "checker.language"),
        (cpp(checker={"language": "cpp", "sorce": ""}), "unknown_field", "checker.sorce"),
        (cpp(checker={"language": "python"}), "missing_field", "checker.source"),
        (cpp(checker={"language": "python", "files": [{"name": "answer", "content": ""}],
                      "entry": "answer"}), "bad_file_name", "checker.files.0.name: 'answer'"),
        (cpp(files=[{"name": "../x.h", "content": ""}]), "bad_file_name", "files.0.name"),
        (cpp(files=[{"name": "/etc/x", "content": ""}]), "bad_file_name", "relative path"),
        (cpp(files=[{"name": "a//b", "content": ""}]), "bad_file_name", "empty"),
        (cpp(files=[{"name": "/".join("a" * 9), "content": ""}]), "bad_file_name", "9 parts"),
        (cpp(files=[{"name": "a b.h", "content": ""}]), "bad_file_name", "A-Z a-z"),
        (cpp(files=[{"name": "main", "content": ""}]), "bad_file_name", "of its own"),
        (cpp(files=[{"name": "main.cpp", "content": ""}]), "duplicate_file", "first at source"),
        (cpp(files=[{"name": "x.h", "content": ""}] * 2), "duplicate_file", "files.1.name"),
        (cpp(files=[{"name": f"f{i}.h", "content": ""} for i in range(64)]), "too_many_files",
         "65 files"),
        ({**CPP, "source": None, "files": [{"name": "a.cpp", "content": ""}]} , "missing_entry",
         "'main.cpp' is not among the files (a.cpp)"),
        (cpp(source=None, files=[{"name": "a.h", "content": ""}], entry="a.h"), "bad_entry",
         "not a cpp source file"),
        ({"language": "cpp", "tests": [{}]}, "missing_field", "source: Field required"),
        (cpp(files=[{"name": "b.h", "content": "x" * 1024}]), "source_too_large", "in all"),
        (cpp(files=[{"name": "b.h", "content": "!", "encoding": "base64"}]), "invalid_base64",
         "files.0.content"),
        (cpp(compiler_options=["-fplugin=x.so"]), "compiler_option_not_allowed", "'-fplugin"),
        (cpp(compiler_options=["-O2; rm -rf /"]), "compiler_option_not_allowed", "options.0"),
        (cpp(compiler_options=["-O2"] * 17), "too_many_options", "17 options"),
        (good(compiler_options=["-O"]), "compiler_option_not_allowed", "for python"),
        (cpp(args=["a\0b"]), "bad_args", "args.0"),
        (cpp(args=["x"] * 33), "bad_args", "33 arguments"),
        (cpp(interactor={"language": "python", "source": ""}), "unsupported_interactor",
         "use c or cpp"),
        (cpp(interactor={**PROGRAM}, checker={"name": "tokens"}), "conflicting_fields",
         "a built-in checker has no output"),
        (grouped([{"name": "a", "points": 1}], ["zz"]), "unknown_group", "tests.0.group: 'zz'"),
        (cpp(tests=[{"group": "a"}]), "unknown_group", "names no group"),
        (grouped([{"name": "a", "points": 1}, {"name": "a", "points": 1}], ["a"]),
         "duplicate_group", "groups.1.name"),
        (grouped([{"name": "a", "points": 1}, {"name": "b", "points": 1}], ["a"]),
         "empty_group", "'b' has no tests"),
        (grouped([{"name": "a", "points": 1, "depends_on": ["x"]}], ["a"]), "unknown_group",
         "groups.0.depends_on.0"),
        (grouped([{"name": "a", "points": 1, "depends_on": ["b"]},
                  {"name": "b", "points": 1, "depends_on": ["c"]},
                  {"name": "c", "points": 1, "depends_on": ["a"]}], ["a", "b", "c"]),
         "group_cycle", "a -> b -> c -> a"),
        (grouped([{"name": "a", "points": 1}], ["a"], max_score=100), "points_mismatch",
         "add up to 1"),
        (cpp(max_score=5), "points_mismatch", "no groups"),
        (grouped([{"name": "a", "points": -1}], ["a"]), "invalid_value", "groups.0.points"),
        (grouped([{"name": "a", "points": 1, "policy": "max"}], ["a"]), "invalid_value",
         "groups.0.policy"),
        (cpp(problem="p1"), "conflicting_fields", "gives no tests"),
        ({**PROGRAM, "problem": "p1", "checker": {"name": "exact"}}, "conflicting_fields",
         "gives no checker"),
        ({**PROGRAM}, "missing_field", "tests: Field required (or give `problem`)"),
    ],
)  # fmt: skip
def test_bad_contract_1_1_input_is_rejected_precisely(raw: Any, code: str, where: str) -> None:
    exc = rejection(raw)
    assert exc.code == code
    assert where in exc.message


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (good(compare={"mode": "float", "abs_tol": INF}), "compare.abs_tol: inf"),
        (good(compare={"mode": "float", "abs_tol": -INF}), "compare.abs_tol: -inf"),
        (good(compare={"mode": "float", "rel_tol": NAN}), "compare.rel_tol: nan"),
        (good(limits={"cpu_time_ms": INF}), "limits.cpu_time_ms: inf"),
        (good(limits={"memory_mb": NAN}), "limits.memory_mb: nan"),
        (good(tests=[{}, {"stdin": INF}]), "tests.1.stdin: inf"),
        (good(tests=[{"id": NAN}]), "tests.0.id: nan"),
        (good(id=-INF), "id: -inf"),
        (good(colour=[1, {"shade": NAN}]), "colour.1.shade: nan"),  # unknown, yet not unknown_field
        (good(limits={"memory_mb": 10**400}), "limits.memory_mb: an integer of 1329 bits"),
        # str() of an int this long raises ValueError: the message must not need it
        (good(limits={"memory_mb": 10**5000}), "limits.memory_mb: an integer of 16610 bits"),
        (good(compare={"mode": "float", "abs_tol": -(10**400)}), "compare.abs_tol: an integer"),
    ],
)
def test_a_non_finite_number_anywhere_is_an_invalid_value_naming_its_place(
    raw: Any, where: str
) -> None:
    exc = rejection(raw)
    assert exc.code == "invalid_value"
    assert exc.message.startswith(where)
    assert "not a finite number" in exc.message


@pytest.mark.parametrize("number", ["1e999", "-1e999", "Infinity", "-Infinity", "NaN"])
def test_json_text_with_a_non_finite_number_is_rejected_not_raised(number: str) -> None:
    """Python's json, which the workers decode messages with, reads these as float infinities
    and NaN; a tolerance of 1e999 used to crash the task instead of being rejected."""
    text = '{"language": "python", "source": "x", "tests": [{}], "compare": {"abs_tol": %s}}'
    exc = rejection(json.loads(text % number))
    assert exc.code == "invalid_value"
    assert exc.message.startswith("compare.abs_tol: ")


def test_nesting_a_million_deep_is_walked_and_named_in_a_short_message() -> None:
    nested: list[Any] = [NAN]
    for _ in range(1_000_000):
        nested = [nested]
    exc = rejection(good(colour=nested))
    assert exc.code == "invalid_value"
    assert exc.message.startswith("colour.0.0.0.")
    assert len(exc.message) < 300


def test_a_field_name_megabytes_long_is_quoted_short() -> None:
    exc = rejection(good(**{"x" * 1_000_000: 1}))
    assert exc.code == "unknown_field"
    assert len(exc.message) < 300


def test_rejected_result_is_rj_with_error_and_echoes_a_string_id() -> None:
    result = rejected("sub-1", SubmissionRejected("no_tests", "tests: none"))
    assert isinstance(result, SubmissionResult)
    assert result.verdict == Verdict.RJ
    assert result.submission_id == "sub-1"
    assert result.error is not None and result.error.code == "no_tests"
    assert rejected(42, SubmissionRejected("x", "y")).submission_id is None
    # a lone surrogate is no UTF-8: echoed, it would break a strict JSON parser reading the result
    assert rejected("\udc80", SubmissionRejected("x", "y")).submission_id is None


def test_checked_in_json_schemas_match_the_models() -> None:
    folder = Path(__file__).parents[2] / "docs" / "schema"
    for name, schema in json_schemas().items():
        on_disk = json.loads((folder / name).read_text())
        assert on_disk == schema, f"docs/schema/{name} is stale: run `runner schema`"


def test_schema_accepts_a_valid_submission_and_rejects_an_unknown_field() -> None:
    schema = json_schemas()["submission.schema.json"]
    jsonschema.validate(good(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good(colour="red"), schema)


# -- options: bounded, and only what the compiler accepts ----------------------------------

LONG = "-D" + "X" * 200_000  # a macro name exec cannot even pass (E2BIG): it was IE


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (cpp(compiler_options=[LONG]), "compiler_options.0: 200002 characters, at most 256"),
        (cpp(checker={**PROGRAM, "compiler_options": ["-O2", LONG]}),
         "checker.compiler_options.1: 200002 characters"),
        (cpp(interactor={**PROGRAM, "compiler_options": [LONG]}),
         "interactor.compiler_options.0: 200002 characters"),
        (cpp(compiler_options=["-D" + "X" * 255]), "compiler_options.0: 257 characters"),
        (cpp(compiler_options=["-std=c++17", "-U" + "Y" * 300]), "compiler_options.1: 302"),
        (cpp(compiler_options=["-Uñ"]), "'-Uñ' is not allowed"),  # not a macro name
        ({**CPP, "language": "c", "compiler_options": ["-std=c23"]}, "'-std=c23' is not allowed"),
        ({**CPP, "language": "c", "compiler_options": ["-std=gnu23"]}, "'-std=gnu23'"),
        (cpp(compiler_options=["-std=c++26"]), "'-std=c++26' is not allowed"),
        (cpp(compiler_options=["-std=c2x"]), "'-std=c2x' is not allowed for cpp"),
    ],
)  # fmt: skip
def test_an_option_too_long_or_unknown_to_the_compiler_is_refused(raw: Any, where: str) -> None:
    exc = rejection(raw)
    assert exc.code == "compiler_option_not_allowed"
    assert where in exc.message
    assert len(exc.message) < 400  # 200 characters of the option at most


@pytest.mark.parametrize(
    ("language", "options"),
    [
        ("cpp", ["-D" + "X" * 254, "-std=c++23", "-std=gnu++2b", "-UNDEBUG", "-DN=1.5e+3"]),
        ("c", ["-std=c2x", "-std=gnu2x", "-std=c17", "-Ofast", "-Wpedantic", "-w"]),
    ],
)
def test_the_longest_option_and_the_newest_standards_the_compiler_knows_are_taken(
    language: str, options: list[str]
) -> None:
    sub = parse_submission(
        {**CPP, "language": language, "compiler_options": options}, MAXIMA, LANGS
    )
    assert sub.program.options == tuple(options)


def test_the_contract_documents_exactly_the_standards_the_allow_list_takes() -> None:
    """docs/contract.md names each standard in backquotes; tests/sandbox/test_options.py
    compiles a program with each one, so the docs promise nothing the compiler refuses."""
    docs = (Path(__file__).parents[2] / "docs" / "contract.md").read_text()
    allowed = docs[docs.index("Compiler options allowed") :]
    allowed = allowed[: allowed.index("\n\n")]
    documented = set(re.findall(r"`((?:c|gnu)(?:\+\+)?[0-9][0-9a-z]|-\w+)`", allowed))
    steps = [LANGUAGES[lang].compile for lang in ("c", "cpp")]
    standards = {std for step in steps if step is not None for std in step.standards}
    assert {d for d in documented if not d.startswith("-")} == standards
    assert {d for d in documented if d.startswith("-O") or d.startswith("-W") or d == "-w"} == {
        *OPTIMISATIONS,
        *WARNINGS,
    }
    assert "256 characters" in allowed


# -- every number in a result is one JSON can carry -------------------------------------------


@pytest.mark.parametrize(
    ("groups", "where"),
    [
        ([{"name": "a", "points": 1e308}, {"name": "b", "points": 1e308}], "groups: the points"),
        ([{"name": "a", "points": 1.7e308}, {"name": "b", "points": 10**308}], "add up to inf"),
    ],
)  # fmt: skip
def test_points_that_add_up_to_infinity_are_an_invalid_value(
    groups: list[dict[str, Any]], where: str
) -> None:
    """Each is finite, their sum is not: the result's score was Infinity, which is not JSON."""
    exc = rejection(grouped(groups, ["a", "b"]))
    assert exc.code == "invalid_value"
    assert where in exc.message


def test_no_result_can_hold_an_infinite_or_nan_number() -> None:
    for value in (INF, -INF, NAN):
        with pytest.raises(ValidationError, match="finite number"):
            SubmissionResult(
                submission_id=None, verdict=Verdict.AC, passed=0, total=0, tests=[], score=value
            )
        with pytest.raises(ValidationError, match="finite number"):
            TestResult(id="t", verdict=Verdict.WA, score=value)


# -- a value quoted in a message: 200 characters of it at most ---------------------------------

HUGE = "g" * 100_000


@pytest.mark.parametrize(
    ("raw", "code", "where"),
    [
        (grouped([{"name": "a", "points": 1}], [HUGE]), "unknown_group", "tests.0.group: 'ggg"),
        (cpp(tests=[{"group": HUGE}]), "unknown_group", "tests.0.group: 'ggg"),
        (grouped([{"name": "a", "points": 1, "depends_on": [HUGE]}], ["a"]), "unknown_group",
         "groups.0.depends_on.0: 'ggg"),
        ({**CPP, "source": None, "files": [{"name": "a.cpp", "content": ""}], "entry": HUGE},
         "missing_entry", "entry: 'ggg"),
        (cpp(entry=HUGE), "bad_file_name", "entry: 'ggg"),
        (cpp(files=[{"name": HUGE, "content": ""}]), "bad_file_name", "files.0.name: 'ggg"),
        (cpp(compiler_options=[HUGE]), "compiler_option_not_allowed", "100000 characters"),
        (good(language=HUGE), "unknown_language", "language: 'ggg"),
        (cpp(checker={"language": HUGE, "source": ""}), "unknown_language", "checker.language"),
    ],
)  # fmt: skip
def test_a_value_100_kb_long_is_quoted_200_characters_at_most(
    raw: Any, code: str, where: str
) -> None:
    exc = rejection(raw)
    assert exc.code == code
    assert where in exc.message
    assert "g" * 200 not in exc.message and len(exc.message) < 400


@pytest.mark.parametrize(
    ("given", "name"),
    [
        *(("c++", "cpp"), ("CPP", "cpp"), ("g++", "cpp"), ("py", "python")),
        *(("Python3", "python"), ("js", "javascript"), ("node", "javascript"), ("gcc", "c")),
    ],
)
def test_a_language_is_named_by_its_name_or_an_alias_in_any_case(given: str, name: str) -> None:
    sub = parse_submission(
        good(language=given, source="int main() {}" if name in ("c", "cpp") else "1"),
        MAXIMA,
        LANGS,
    )
    assert sub.program.language == name
    assert sub.program.entry == LANGUAGES[name].source_file
    checker = {"language": given, "source": "int main() {}"}
    if name in ("c", "cpp"):  # an interactor must be C or C++: an alias says so too
        judged = parse_submission(good(interactor=checker), MAXIMA, LANGS)
        assert judged.judging.interactor is not None
        assert judged.judging.interactor.language == name


def test_no_alias_names_two_languages() -> None:
    names = [alias.lower() for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)]
    assert len(names) == len(set(names))
