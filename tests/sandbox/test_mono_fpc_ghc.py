"""C#, Pascal and Haskell on their own rules, through the real judge: the judge's limits
decide whatever the runtime's own would, a runtime that says it ran out of memory is MLE, FPC's
runtime errors keep their codes, the RTS takes no option from a test's arguments, and the
threads a runtime starts by itself are not the program's."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import FAST, judge_source, verdict
from worker.contract import TestCase, Verdict
from worker.judging.judge import Judge
from worker.languages import LANGUAGES

pytestmark = pytest.mark.docker

# more than the kernel will map at once: the runtime fails to allocate, nothing is charged
UNMAPPABLE = {
    "csharp": "struct Big { public long a, b, c, d, e, f, g, h; }\n"
    "class P { static void Main() { var a = new Big[int.MaxValue / 2]; a[1].a = 1; } }\n",
    "pascal": "var p: pointer;\nbegin\n  GetMem(p, high(ptrint) div 2);\n"
    "  writeln(ptrint(p))\nend.\n",
    "haskell": "import Data.Array.IO\nimport Data.Word\n\nmain :: IO ()\nmain = do\n"
    "  a <- newArray (0, 100 * 10 ^ (9 :: Int)) 0 :: IO (IOUArray Int Word8)\n"
    "  readArray a 5 >>= print\n",
}
# the same after 40 KB of debugging on stderr, before the runtime's own words
DEBUG_FIRST = {
    "csharp": UNMAPPABLE["csharp"].replace(
        "static void Main() {",
        "static void Main() { System.Console.Error.Write(new string('x', 40000));",
    ),
    "pascal": UNMAPPABLE["pascal"].replace(
        "begin\n",
        "var i: longint;\nbegin\n  for i := 1 to 4000 do write(stderr, 'debugging ');\n",
        1,
    ),
    "haskell": "import System.IO\n"
    + UNMAPPABLE["haskell"].replace(
        "main = do\n", "main = do\n  hPutStr stderr (replicate 40000 'x')\n"
    ),
}
# a recursion without end: the stack limit is the memory limit (GHC's stack is on its heap)
RECURSION = {
    "csharp": "class P {\n"
    "    static int F(int n) { return n == 0 ? 0 : 1 + F(n - 1) + 0 * F(0); }\n"
    "    static void Main() { System.Console.WriteLine(F(100000000)); }\n}\n",
    "pascal": "function f(n: longint): longint;\nbegin\n"
    "  if n = 0 then f := 0 else f := 1 + f(n - 1)\nend;\nbegin\n  writeln(f(100000000))\nend.\n",
    "haskell": "f :: Int -> Integer\nf 0 = 0\nf n = 1 + f (n - 1)\n\nmain :: IO ()\n"
    "main = print (f 100000000)\n",
}


@pytest.mark.parametrize("lang", sorted(UNMAPPABLE))
def test_memory_the_runtime_could_not_get_is_mle(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, UNMAPPABLE[lang])
    assert result.verdict == Verdict.MLE, result
    assert result.memory_kb < FAST.memory_mb * 1024  # the kernel's ledger never saw it


@pytest.mark.parametrize("lang", sorted(DEBUG_FIRST))
def test_the_runtimes_words_after_much_stderr_still_say_mle(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, DEBUG_FIRST[lang])
    assert (result.verdict, result.stderr_truncated) == (Verdict.MLE, True), result


@pytest.mark.parametrize("lang", sorted(RECURSION))
def test_a_recursion_without_end_is_mle(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, RECURSION[lang])
    assert result.verdict == Verdict.MLE, result


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("var p: ^longint;\nbegin\n  p := nil;\n  p^ := 1\nend.\n", 216),
        ("var a, b: longint;\nbegin\n  a := 1; b := 0;\n  writeln(a div b)\nend.\n", 200),
    ],
    ids=["access-violation", "division-by-zero"],
)
def test_pascal_runtime_errors_are_re_with_their_code(judge: Judge, source: str, code: int) -> None:
    result = verdict(judge, "pascal", source)
    assert (result.verdict, result.exit_code, result.signal) == (Verdict.RE, code, None)
    assert f"Runtime error {code}" in result.stderr, result


def test_haskell_rts_options_are_the_programs_arguments(judge: Judge) -> None:
    source = "import System.Environment\n\nmain :: IO ()\nmain = getArgs >>= print\n"
    compiled = judge.compile(LANGUAGES["haskell"], source.encode())
    assert compiled.program is not None, compiled
    args = ["+RTS", "-M1k", "-K1k", "-RTS", "x"]
    result = judge.run_test(compiled.program, TestCase("0", b"", None), FAST, args=args)
    assert result.verdict == Verdict.AC, result
    assert result.stdout == '["+RTS","-M1k","-K1k","-RTS","x"]\n'


@pytest.mark.parametrize("lang", ["csharp", "pascal", "haskell"])
def test_a_program_limited_to_one_process_still_runs(judge: Judge, lang: str) -> None:
    """The runtime's own threads (Mono's 2) are added to the program's limit."""
    (result,) = judge_source(
        judge,
        lang,
        LANGUAGES[lang].selftest,
        [(b"echo", b"echo")],
        FAST.model_copy(update=dict(processes=1)),
    )
    assert result.verdict == Verdict.AC, result
