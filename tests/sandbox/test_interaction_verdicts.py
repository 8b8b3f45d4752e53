"""Interactive problems judged in real sandboxes: the example's guessing game, with a program
that wins, loses, exceeds its queries, hangs, crashes, or ends while the interactor still
writes, and an interactor that crashes or hangs itself; each side's failure is blamed on that
side, and the program's own ending decides first (worker/judging/interaction.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.contract import Limits, TestCase, TestResult, Verdict
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.programs import File, Program

pytestmark = [pytest.mark.docker]

GAME = Path(__file__).parents[2] / "examples" / "guess-interactive"
LIMITS = Limits(cpu_time_ms=1000, wall_time_ms=2000, memory_mb=64, processes=8)
SEARCH = (GAME / "main.py").read_text()


def compiled(judge: Judge, language: str, source: str, static: bool = False) -> Program:
    result = judge.compile(LANGUAGES[language], source.encode(), static=static)
    assert result.program is not None, (result.message, result.result)
    return result.program


@pytest.fixture(scope="module")
def interactor(judge: Judge) -> Program:
    return compiled(judge, "cpp", (GAME / "interactor.cpp").read_text(), static=True)


def play(judge: Judge, interactor: Program, source: str, game: str = "700 30") -> TestResult:
    program = compiled(judge, "python", source)
    return judge.run_test(
        program, TestCase("g", game.encode(), None), LIMITS, interactor=interactor
    )


def test_a_binary_search_wins_and_the_interactors_word_is_the_message(
    judge: Judge, interactor: Program
) -> None:
    result = play(judge, interactor, SEARCH)
    assert result.verdict == Verdict.AC
    assert result.message.startswith("ok guessed 700 in")


def test_a_c_program_plays_too(judge: Judge, interactor: Program) -> None:
    source = (
        "#include <stdio.h>\n#include <string.h>\nint main(){long lo=1,hi=1000000000;char a[4];"
        'for(;;){long m=(lo+hi)/2;printf("%ld\\n",m);fflush(stdout);if(scanf("%3s",a)!=1)return 1;'
        'if(!strcmp(a,"="))return 0;if(!strcmp(a,"<"))hi=m-1;else lo=m+1;}}'
    )
    program = compiled(judge, "c", source)
    result = judge.run_test(
        program, TestCase("g", b"31337 30", None), LIMITS, interactor=interactor
    )
    assert result.verdict == Verdict.AC, result


@pytest.mark.parametrize(
    ("source", "game", "verdict", "message"),
    [
        (SEARCH, "987654321 10", Verdict.WA, "more than 10 queries"),  # loses: out of queries
        ("while True:\n    print(5, flush=True)\n    input()", "7 30", Verdict.WA, "more than 30"),
        ("print(1, flush=True)", "7 30", Verdict.WA, "stopped after 1 queries"),  # gives up
        ("import time\ntime.sleep(30)", "7 30", Verdict.TLE, "wall time"),  # hangs: idle counts
        ("while True:\n    pass", "7 30", Verdict.TLE, "CPU time"),
        (
            "import os\nos.abort()",
            "7 30",
            Verdict.RE,
            "SIGABRT",
        ),  # a crash is not the interactor's WA
        ("print(7, flush=True)\ninput()\nraise SystemExit(3)", "7 30", Verdict.RE, "code 3"),
    ],
)
def test_the_programs_own_failures_are_its_own(
    judge: Judge, interactor: Program, source: str, game: str, verdict: Verdict, message: str
) -> None:
    result = play(judge, interactor, source, game)
    assert result.verdict == verdict, result
    assert message in result.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("int main() { int *p = 0; return *p; }", "interactor killed by SIGSEGV"),
        ("int main() { return 3; }", "interactor failed"),
        ("int main() { return 42; }", "interactor exited with code 42"),
        ("int main() { for (;;) {} }", "interactor"),  # hung and busy: not the program's TLE
    ],
)
def test_an_interactor_that_fails_is_ie_never_the_programs_fault(
    judge: Judge, source: str, message: str
) -> None:
    broken = compiled(judge, "c", source, static=True)
    result = play(judge, broken, SEARCH)
    assert (result.verdict, result.error_code) == (Verdict.IE, "checker_failed"), result
    assert message in result.message


# Interactors given a mode in their input file: "default" puts SIGPIPE back at its default, as
# an interactor may (it then dies writing to a program that has ended); "inherit" keeps what the
# supervisor gave it (ignored: such a write fails with EPIPE and it goes on).
MODE = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static long secret;
static void mode(int argc, char **argv) {
    char how[16] = "";
    FILE *in = argc > 1 ? fopen(argv[1], "r") : NULL;
    if (!in || fscanf(in, "%ld %15s", &secret, how) != 2) {
        fprintf(stderr, "FAIL bad input file\n");
        _exit(3);
    }
    if (!strcmp(how, "default")) signal(SIGPIPE, SIG_DFL);
}
"""
# Writes 1 MB (the pipe holds 64 KB) before it reads anything, then says WA as testlib would at
# the program's EOF.
FLOOD = (
    MODE
    + r"""
int main(int argc, char **argv) {
    static char line[4096];
    mode(argc, argv);
    memset(line, 'y', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (int i = 0; i < 256; i++)
        if (write(1, line, sizeof line) < 0) break;
    fprintf(stderr, "wrong answer the program stopped reading\n");
    return 1;
}
"""
)
# The example's game, except that once the program has won it waits for the program's EOF, then
# writes lines until a write fails: a sure way to lose the race a testlib interactor's last line
# runs (a program may close its stdout before its stdin, so one line could still fit).
EXTRA_LINE = (
    MODE
    + r"""
int main(int argc, char **argv) {
    long guess, queries = 0;
    mode(argc, argv);
    while (scanf("%ld", &guess) == 1) {
        queries++;
        if (guess == secret) {
            printf("=\n");
            fflush(stdout);
            while (getchar() != EOF) {}
            while (printf("bye\n") >= 0 && fflush(stdout) == 0) {}
            fprintf(stderr, "ok guessed %ld in %ld queries\n", secret, queries);
            return 0;
        }
        printf("%s\n", guess > secret ? "<" : ">");
        fflush(stdout);
    }
    fprintf(stderr, "wrong answer the program stopped after %ld queries\n", queries);
    return 1;
}
"""
)
ENDED_EARLY = "the program ended the interaction before the interactor finished"


@pytest.fixture(scope="module")
def flood(judge: Judge) -> Program:
    return compiled(judge, "c", FLOOD, static=True)


@pytest.fixture(scope="module")
def extra_line(judge: Judge) -> Program:
    return compiled(judge, "c", EXTRA_LINE, static=True)


WA, RE = Verdict.WA, Verdict.RE
STOPPED = "wrong answer the program stopped reading"  # the interactor's own word


@pytest.mark.parametrize(
    ("language", "source", "default", "inherit"),
    [
        # a clean exit cut the game short: WA, ours when the interactor died of SIGPIPE
        ("python", "pass", (WA, ENDED_EARLY), (WA, STOPPED)),
        ("c", "int main(void) { return 0; }", (WA, ENDED_EARLY), (WA, STOPPED)),
        # a crash is the program's own, whatever the interactor made of it
        ("python", "import os\nos.abort()", (RE, "SIGABRT"), (RE, "SIGABRT")),
        ("c", "int main(void) { *(volatile int *)0 = 0; }", (RE, "SIGSEGV"), (RE, "SIGSEGV")),
        # a non-zero exit: its RE, or the interactor's word on the game when it has one
        ("python", "raise SystemExit(3)", (RE, "code 3"), (WA, STOPPED)),
        ("c", "int main(void) { return 3; }", (RE, "code 3"), (WA, STOPPED)),
    ],
)
@pytest.mark.parametrize("how", ["default", "inherit"])
def test_a_program_that_ends_while_the_interactor_still_writes_is_judged_never_ie(
    judge: Judge,
    flood: Program,
    how: str,
    language: str,
    source: str,
    default: tuple[Verdict, str],
    inherit: tuple[Verdict, str],
) -> None:
    """The interactor has 1 MB to write when the program ends: it dies of SIGPIPE (how:
    default) or gets EPIPE and says WA (inherit: as the supervisor runs it). Both were IE
    ("interactor killed by SIGPIPE") on the old main."""
    program = compiled(judge, language, source)
    result = judge.run_test(
        program, TestCase("g", f"7 {how}".encode(), None), LIMITS, interactor=flood
    )
    verdict, message = default if how == "default" else inherit
    assert (result.verdict, result.error_code) == (verdict, None), result
    assert message in result.message


def test_an_interactor_that_dies_of_sigpipe_after_a_won_game_is_not_ie(
    judge: Judge, extra_line: Program
) -> None:
    """One that asked for SIGPIPE back and writes past the end of the game dies of it, having
    said nothing: the program ended the game before it finished (WA, documented). It was IE."""
    result = play(judge, extra_line, SEARCH, "700 default")
    assert (result.verdict, result.error_code) == (Verdict.WA, None), result
    assert ENDED_EARLY in result.message


def test_an_interactor_that_writes_past_a_won_game_gets_epipe_and_accepts(
    judge: Judge, extra_line: Program
) -> None:
    """As the supervisor runs interactors (SIGPIPE ignored, inherited across exec), the extra
    line fails with EPIPE and the interactor says its verdict. It was IE."""
    result = play(judge, extra_line, SEARCH, "700 inherit")
    assert (result.verdict, result.error_code) == (Verdict.AC, None), result
    assert result.message.startswith("ok guessed 700 in")


def test_the_program_cannot_read_the_interactors_input_or_answer(
    judge: Judge, interactor: Program
) -> None:
    """The secret is in the interactor's input file, in its own cell and work dir: a program
    looking for it under /box, /proc and its own directory finds nothing, and must play."""
    snoop = (
        "import glob, os\nfound = []\n"
        "for path in glob.glob('/box/*/input') + glob.glob('/proc/*/cwd/input'):\n"
        "    try:\n        found.append(open(path).read())\n    except OSError:\n        pass\n"
        "print(found[0].split()[0] if found else 1, flush=True)\n"
    )
    result = play(judge, interactor, snoop, "424242 30")
    assert result.verdict == Verdict.WA, result
    assert "stopped after 1 queries" in result.message


def test_a_program_checker_reads_what_the_interactor_wrote(
    judge: Judge, interactor: Program
) -> None:
    """The interactor writes the queries used to its output file; a checker then gives full
    points for at most 20 and half for more."""
    checker = judge.compile(
        LANGUAGES["python"],
        [
            File(
                "check.py",
                b"import sys\nq = int(open(sys.argv[2]).read())\n"
                b"if q <= 20:\n    sys.exit(0)\n"
                b"sys.stderr.write(f'points 0.5 used {q} queries')\nsys.exit(7)\n",
            )
        ],
        entry="check.py",
    ).program
    assert checker is not None
    program = compiled(judge, "python", SEARCH)
    result = judge.run_test(
        program, TestCase("g", b"1 30", None), LIMITS, checker, interactor=interactor
    )
    assert (result.verdict, result.score) == (Verdict.WA, 0.5), result
    assert "used 29 queries" in result.message
