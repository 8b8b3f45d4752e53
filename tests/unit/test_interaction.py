"""Interactive verdicts (worker/judging/interaction.py): the program's own ending decides before
what the interactor made of it, and the interactor is blamed (IE, checker_failed) only for failing
on its own. Pinned with scripted pair reports, and with real local processes wired as the
supervisor wires a pair (the fake pool), including an interactor still writing when the
program ends."""

from __future__ import annotations

import signal

import pytest

from worker.compare import Comparison
from worker.contract import Limits, TestCase, TestResult, Verdict
from worker.errors import SandboxError
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.programs import File, Program
from worker.sandbox.fake import FakePool, pair_report, report
from worker.sandbox.protocol import Job, RunReport

LIMITS = Limits(cpu_time_ms=1000, wall_time_ms=2000, memory_mb=64, processes=4)
TEST = TestCase("g", b"7 30", None)
PROGRAM = Program(LANGUAGES["python"], (File("main.py", b""),))
INTERACTOR = Program(LANGUAGES["cpp"], (File("main", b""),), "main")
PIPE, SEGV, KILL = signal.SIGPIPE, signal.SIGSEGV, signal.SIGKILL
AC, WA, RE, TLE, MLE, IE = (Verdict.AC, Verdict.WA, Verdict.RE, Verdict.TLE, Verdict.MLE,
                            Verdict.IE)  # fmt: skip


def killed_by(sig: int, **fields: object) -> dict[str, object]:
    return {"signal": sig, "exit_code": -1, **fields}


def play(program: dict[str, object], interactor: dict[str, object]) -> TestResult:
    """The verdict of a pair whose reports say ``program`` and ``interactor``."""

    def script(image: str, job: Job) -> RunReport:
        assert job.partner is not None
        return pair_report(report(**program), report(**interactor))

    return Judge(FakePool(script)).run_test(PROGRAM, TEST, LIMITS, interactor=INTERACTOR)


# The interactor died of SIGPIPE: it wrote to a program that had ended. Never IE: the program's
# own ending decides; a clean one cut the interactor short (WA). Each was IE before.
@pytest.mark.parametrize(
    ("program", "verdict", "message"),
    [
        ({}, WA, "the program ended the interaction before the interactor finished"),
        (killed_by(SEGV), RE, "killed by signal SIGSEGV"),
        ({"exit_code": 3}, RE, "exited with code 3"),
        ({"exit_code": 120, "stderr": b"BrokenPipeError"}, RE, "exited with code 120"),
        (killed_by(PIPE), RE, "killed by signal SIGPIPE"),
        (killed_by(KILL, killed="cpu"), TLE, "CPU time"),
        (killed_by(KILL, killed="memory"), MLE, "memory"),
        (killed_by(KILL, killed="wall", wall_us=2_000_000), TLE, "wall time"),
    ],
)
def test_an_interactor_killed_by_sigpipe_leaves_the_verdict_to_the_programs_ending(
    program: dict[str, object], verdict: Verdict, message: str
) -> None:
    result = play(program, killed_by(PIPE, stderr=b"wrote 1000 lines"))
    assert (result.verdict, result.error_code) == (verdict, None), result
    assert message in result.message


@pytest.mark.parametrize(
    ("interactor", "message"),
    [
        (killed_by(SEGV, stderr=b"oops"), "interactor killed by SIGSEGV: oops"),
        (killed_by(KILL, killed="cpu"), "interactor exceeded its cpu limit"),
        (killed_by(KILL, killed="wall"), "interactor exceeded its wall limit"),
        (killed_by(KILL, killed="memory"), "interactor exceeded its memory limit"),
        ({"exit_code": 3, "stderr": b"FAIL bad input file"}, "interactor failed: FAIL bad input"),
        ({"exit_code": 42}, "interactor exited with code 42"),
        ({"exit_code": 7, "stderr": b"points 2"}, "interactor gave points outside [0, 1]"),
    ],
)
@pytest.mark.parametrize(
    "program", [{}, {"exit_code": 1}, killed_by(PIPE)], ids=["clean", "exit1", "sigpipe"]
)
def test_an_interactor_that_fails_on_its_own_is_the_problems_fault(
    program: dict[str, object], interactor: dict[str, object], message: str
) -> None:
    """Whatever the program then did at its EOF or broken pipe: IE, code checker_failed."""
    result = play(program, interactor)
    assert (result.verdict, result.error_code) == (IE, "checker_failed"), result
    assert result.message.startswith(message)


def test_a_program_that_keeps_its_interactor_busy_then_runs_out_of_time_is_tle() -> None:
    """A flood of whitespace keeps the interactor parsing while the program idles: the
    interactor, given its end of file when the program is killed, ends by itself."""
    result = play(
        killed_by(KILL, killed="wall", wall_us=2_000_000, cpu_us=50_000),
        {"exit_code": 1, "cpu_us": 1_900_000, "stderr": b"wrong answer unexpected EOF"},
    )
    assert result.verdict == Verdict.TLE, result


def test_a_hung_interactor_is_the_problems_fault_not_the_programs_tle() -> None:
    result = play(
        killed_by(KILL, killed="wall", wall_us=2_000_000, cpu_us=10_000),
        killed_by(KILL, killed="wall", wall_us=7_000_000, cpu_us=7_000_000),
    )
    assert (result.verdict, result.error_code) == (IE, "checker_failed"), result
    assert "interactor hung" in result.message


@pytest.mark.parametrize(
    ("program", "interactor", "verdict", "message"),
    [
        # the interactor's word on the game beats an exit the program made at its EOF
        ({"exit_code": 1}, {"exit_code": 1, "stderr": b"wrong answer 31 queries"}, WA, "31"),
        (killed_by(PIPE), {"exit_code": 1, "stderr": b"wrong answer 31 queries"}, WA, "31"),
        ({}, {"exit_code": 8}, WA, "unexpected end of output"),
        # but not a crash of its own
        (killed_by(SEGV), {"exit_code": 1, "stderr": b"wrong answer"}, RE, "SIGSEGV"),
        # a won game: the program's own non-zero exit is still RE...
        ({"exit_code": 3}, {"stderr": b"ok guessed"}, RE, "exited with code 3"),
        # ...but a write past the end of a game it won is not held against it, as an
        # interactor's extra line is not
        (killed_by(PIPE), {"stderr": b"ok guessed"}, AC, "ok guessed"),
        ({}, {"stderr": b"ok guessed"}, AC, "ok guessed"),
    ],
)
def test_the_interactors_verdict_and_the_programs_ending(
    program: dict[str, object], interactor: dict[str, object], verdict: Verdict, message: str
) -> None:
    result = play(program, interactor)
    assert (result.verdict, result.error_code) == (verdict, None), result
    assert message in result.message


def test_a_sandbox_that_cannot_run_the_pair_is_the_fleets_fault() -> None:
    def broken(image: str, job: Job) -> RunReport:
        raise SandboxError("supervisor exited")

    result = Judge(FakePool(broken)).run_test(PROGRAM, TEST, LIMITS, interactor=INTERACTOR)
    assert (result.verdict, result.error_code) == (IE, None)
    failed = play({"status": "error", "error": "fork: EAGAIN"}, {})
    assert (failed.verdict, failed.error_code) == (IE, None)


# -- real local processes, wired as the supervisor wires a pair ---------------------------

# Shell scripts as interactors (run as ./main input output answer). This one writes until its
# write fails, then says WA as testlib would at the program's EOF.
FLOOD = (
    "#!/bin/sh\n{trap}while echo y; do :; done 2>/dev/null\n"
    "echo 'wrong answer unexpected EOF' >&2\nexit 1\n"
)
# Plays one round, waits for the program's EOF, then writes until a write fails.
EXTRA_LINE = (
    "#!/bin/sh\n{trap}read guess\necho =\ncat >/dev/null\n"
    "while echo bye; do :; done 2>/dev/null\n"
    "echo 'ok guessed in 1' >&2\nexit 0\n"
)


def local_pair(source: str, script: str, ignore_sigpipe: bool) -> TestResult:
    """``script`` as the interactor, with SIGPIPE ignored (as the supervisor runs partners,
    inherited across exec) or at its default (as an interactor that asks for it back)."""
    interactor = Program(
        LANGUAGES["c"],
        (File("main", script.format(trap="trap '' PIPE\n" if ignore_sigpipe else "").encode(),
              0o755),),
        "main",
    )  # fmt: skip
    program = Program(LANGUAGES["python"], (File("main.py", source.encode()),))
    return Judge(FakePool()).run_test(program, TEST, LIMITS, Comparison(), interactor=interactor)


ENDED_EARLY = "the program ended the interaction before the interactor finished"


@pytest.mark.parametrize(
    ("source", "sigpipe", "sig_ign"),
    [
        # a clean exit cut the game short: WA, ours when the interactor died of SIGPIPE
        ("pass", (WA, ENDED_EARLY), (WA, "unexpected EOF")),
        ("import os\nos.abort()", (RE, "SIGABRT"), (RE, "SIGABRT")),
        # a non-zero exit: its RE, or the interactor's word on the game when it has one
        ("raise SystemExit(3)", (RE, "code 3"), (WA, "unexpected EOF")),
    ],
)
@pytest.mark.parametrize("ignore_sigpipe", [False, True], ids=["sigpipe", "sig_ign"])
def test_a_program_that_ends_while_the_interactor_still_writes_is_never_ie(
    source: str,
    sigpipe: tuple[Verdict, str],
    sig_ign: tuple[Verdict, str],
    ignore_sigpipe: bool,
) -> None:
    result = local_pair(source, FLOOD, ignore_sigpipe)
    verdict, message = sig_ign if ignore_sigpipe else sigpipe
    assert (result.verdict, result.error_code) == (verdict, None), result
    assert message in result.message


CORRECT = "print(7, flush=True)\nassert input() == '='\n"


def test_an_interactor_that_writes_past_the_game_gets_epipe_and_accepts() -> None:
    """As the supervisor runs partners: SIGPIPE ignored, the extra line fails with EPIPE and
    the interactor says its verdict."""
    result = local_pair(CORRECT, EXTRA_LINE, ignore_sigpipe=True)
    assert (result.verdict, result.message) == (AC, "ok guessed in 1"), result


def test_an_interactor_that_asks_for_sigpipe_back_and_dies_of_it_is_not_ie() -> None:
    """It said nothing: the program ended the game before it finished (documented WA)."""
    result = local_pair(CORRECT, EXTRA_LINE, ignore_sigpipe=False)
    assert (result.verdict, result.error_code) == (WA, None), result
    assert ENDED_EARLY in result.message
