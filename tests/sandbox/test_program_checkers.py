"""Program checkers in real sandboxes: a testlib-style C++ checker with its own header, a Python
one, a float checker, partial points, a checker that crashes, one that tries to read the
contestant's files; and programs of several files, compiler options and arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sandbox.helpers import FAST
from worker.compare import CompareMode, Comparison
from worker.contract import TestCase, Verdict
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.programs import File, Program

pytestmark = [pytest.mark.docker]

EXAMPLE = Path(__file__).parents[2] / "examples" / "any-pair-checker"


def build(
    judge: Judge, language: str, files: dict[str, str], entry: str = "", **kw: object
) -> Program:
    compiled = judge.compile(
        LANGUAGES[language],
        [File(n, d.encode()) for n, d in files.items()],
        entry=entry,
        **kw,  # type: ignore[arg-type]
    )
    assert compiled.program is not None, (compiled.message, compiled.result)
    return compiled.program


@pytest.fixture(scope="module")
def pair_checker(judge: Judge) -> Program:
    """The example's checker: C++ against its own copy of a testlib-style header."""
    files = {name: (EXAMPLE / name).read_text() for name in ("check.cpp", "testlib_lite.h")}
    return build(judge, "cpp", files, "check.cpp")


def program(judge: Judge, source: str) -> Program:
    return build(judge, "python", {"main.py": source})


@pytest.mark.parametrize(
    ("output", "verdict", "message"),
    [
        ("3 4", Verdict.AC, "ok 3 + 4 = 7"),
        ("1 6", Verdict.AC, "ok 1 + 6 = 7"),  # not the answer file's pair, and right
        ("4 3", Verdict.WA, "the smaller comes first"),
        ("3 5", Verdict.WA, "3 + 5 = 8, not 7"),
        ("three four", Verdict.WA, "presentation error: wrong output format expected an integer"),
        ("3 4 5", Verdict.WA, "extra output"),
    ],
)
def test_a_testlib_style_cpp_checker_judges_answers_with_many_right_ones(
    judge: Judge, pair_checker: Program, output: str, verdict: Verdict, message: str
) -> None:
    contestant = program(judge, f"print({output!r})")
    result = judge.run_test(contestant, TestCase("t", b"7\n", b"3 4\n"), FAST, pair_checker)
    assert (result.verdict, result.stdout) == (verdict, output + "\n")
    assert message in result.message


def test_a_wrong_answer_file_is_the_checkers_failure_not_the_contestants(
    judge: Judge, pair_checker: Program
) -> None:
    result = judge.run_test(
        program(judge, "print(3, 4)"), TestCase("t", b"7\n", b"3 3\n"), FAST, pair_checker
    )
    assert (result.verdict, result.error_code) == (Verdict.IE, "checker_failed")
    assert result.message.startswith("checker failed: FAIL the answer file's pair 3 3")


PARTIAL = """
import sys
out = open(sys.argv[2]).read().split()
want = open(sys.argv[3]).read().split()
right = sum(a == b for a, b in zip(out, want))
if right == len(want):
    sys.exit(0)
sys.stderr.write(f"points {right / len(want)} {right} of {len(want)} right\\n")
sys.exit(7)
"""


def test_a_python_checker_gives_partial_points(judge: Judge) -> None:
    checker = build(judge, "python", {"check.py": PARTIAL}, "check.py")
    result = judge.run_test(
        program(judge, "print('1 2 0 0')"), TestCase("t", b"", b"1 2 3 4"), FAST, checker
    )
    assert (result.verdict, result.score) == (Verdict.WA, 0.5)
    assert "2 of 4 right" in result.message


def test_the_float_checker_takes_its_tolerance(judge: Judge) -> None:
    contestant = program(judge, "print(3.14159)")
    case = TestCase("t", b"", b"3.1416\n")
    close = Comparison(CompareMode.FLOAT, abs_tol=1e-4, rel_tol=0)
    tight = Comparison(CompareMode.FLOAT, abs_tol=1e-6, rel_tol=0)
    assert judge.run_test(contestant, case, FAST, close).verdict == Verdict.AC
    assert judge.run_test(contestant, case, FAST, tight).verdict == Verdict.WA


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("int main() { int *p = 0; return *p; }", "checker killed by SIGSEGV"),
        ("int main() { for (;;) {} }", "checker exceeded its cpu limit"),
        ("int main() { return 42; }", "checker exited with code 42"),
    ],
)
def test_a_checker_that_crashes_or_hangs_is_ie(judge: Judge, source: str, message: str) -> None:
    """The problem's fault, not the contestant's nor the fleet's: checker_failed."""
    checker = build(judge, "c", {"main.c": source})
    result = judge.run_test(program(judge, "print(1)"), TestCase("t", b"", b"1"), FAST, checker)
    assert (result.verdict, result.error_code) == (Verdict.IE, "checker_failed")
    assert message in result.message


SNOOP = """
import os, sys
seen = []
for root in ("/box", "/tmp", "/dev/shm"):
    try:
        seen += [os.path.join(root, n) for n in os.listdir(root)]
    except OSError as exc:
        seen.append(f"{root}: {exc.strerror}")
found = [p for p in seen if "secret" in p or p.endswith("main.py")]
sys.stderr.write(f"saw {sorted(seen)}; found {found}\\n")
sys.exit(1 if found else 0)
"""


def test_a_checker_cannot_read_the_contestants_files(judge: Judge) -> None:
    """The contestant's files (its source, what it wrote) are in a cell and work dir of its
    own, wiped before the checker starts; the checker sees its three files and nothing else."""
    contestant = program(
        judge,
        "open('secret.txt', 'w').write('s3cr3t')\nopen('/tmp/secret', 'w').write('x')\nprint(1)",
    )
    checker = build(judge, "python", {"snoop.py": SNOOP}, "snoop.py")
    result = judge.run_test(contestant, TestCase("t", b"", b"1"), FAST, checker)
    assert result.verdict == Verdict.AC, result.message
    assert "found []" in result.message


def test_a_c_program_of_several_translation_units_and_headers(judge: Judge) -> None:
    files = {
        "main.c": '#include <stdio.h>\n#include "geometry/area.h"\n'
        'int main() { long w, h; scanf("%ld %ld", &w, &h); printf("%ld\\n", area(w, h)); }',
        "geometry/area.h": "long area(long w, long h);",
        "geometry/area.c": '#include "area.h"\nlong area(long w, long h) { return w * h; }',
    }
    compiled = build(judge, "c", files, options=("-std=c11", "-O0", "-DONLINE_JUDGE"))
    result = judge.run_test(compiled, TestCase("t", b"6 7", b"42"), FAST)
    assert result.verdict == Verdict.AC, result


def test_a_python_package_of_modules_and_a_program_that_reads_its_args(judge: Judge) -> None:
    files = {
        "main.py": "import sys\nfrom tools.text import shout\nprint(shout(sys.argv[1:]))",
        "tools/__init__.py": "",
        "tools/text.py": "def shout(words):\n    return ' '.join(words).upper()",
    }
    compiled = build(judge, "python", files)
    result = judge.run_test(
        compiled, TestCase("t", b"", b"HELLO THERE"), FAST, args=("hello", "there")
    )
    assert result.verdict == Verdict.AC, result


def test_a_javascript_program_of_modules(judge: Judge) -> None:
    files = {
        "main.js": "const { twice } = require('./lib/math');\nconsole.log(twice(21));",
        "lib/math.js": "module.exports.twice = (x) => 2 * x;",
    }
    result = judge.run_test(build(judge, "javascript", files), TestCase("t", b"", b"42"), FAST)
    assert result.verdict == Verdict.AC, result


def test_a_syntax_error_in_any_module_is_a_compile_error(judge: Judge) -> None:
    for language, files in (
        ("python", {"main.py": "import helper", "helper.py": "def f(:\n"}),
        ("javascript", {"main.js": "require('./helper')", "helper.js": "function ( {"}),
    ):
        compiled = judge.compile(
            LANGUAGES[language], [File(n, d.encode()) for n, d in files.items()]
        )
        assert compiled.verdict == Verdict.CE, (language, compiled)
        assert compiled.result is not None and "helper" in compiled.result.output
