"""Verdict rules, pinned with scripted supervisor reports and with real local programs run by
the fake pool (no Docker)."""

import json
import signal

import pytest

from worker.compare import Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.errors import SandboxError, SandboxTimeout
from worker.judging.judge import Judge
from worker.judging.runs import SHOWN_BYTES
from worker.languages import LANGUAGES
from worker.programs import File, Program
from worker.sandbox.fake import FakePool, report
from worker.sandbox.protocol import Job, RunReport

LIMITS = Limits(cpu_time_ms=1000, wall_time_ms=2000, memory_mb=64, output_kb=4, processes=4)
TEST = TestCase("t1", b"", b"42\n")
verdict_of = Judge(FakePool(None)).verdict  # the verdict rules of a report, no run


def decide(**fields: object) -> tuple[Verdict, str]:
    result = verdict_of(TEST, report(**fields), LIMITS, Comparison())
    return result.verdict, result.message


@pytest.mark.parametrize(
    ("fields", "verdict", "message"),
    [
        ({"stdout": b"42"}, Verdict.AC, ""),
        ({"stdout": b"41\n"}, Verdict.WA, "expected '42', got '41'"),
        ({"killed": "cpu", "signal": 9, "exit_code": -1}, Verdict.TLE, "CPU time"),
        ({"cpu_us": 1_000_001}, Verdict.TLE, "CPU time"),
        ({"signal": signal.SIGXCPU, "exit_code": -1}, Verdict.TLE, "CPU time"),
        ({"killed": "wall", "signal": 9, "exit_code": -1}, Verdict.TLE, "wall time"),
        ({"killed": "memory", "signal": 9, "exit_code": -1}, Verdict.MLE, "64 MB"),
        ({"oom_kills": 1, "signal": 9, "exit_code": -1}, Verdict.MLE, "memory"),
        ({"maxrss_kb": 64 * 1024 + 1, "stdout": b"42"}, Verdict.MLE, "memory"),
        ({"killed": "output", "signal": 9, "exit_code": -1}, Verdict.OLE, "4 KB"),
        ({"signal": signal.SIGXFSZ, "exit_code": -1}, Verdict.OLE, "file size"),
        ({"signal": signal.SIGSEGV, "exit_code": -1}, Verdict.RE, "SIGSEGV"),
        ({"exit_code": 3, "stdout": b"42"}, Verdict.RE, "code 3"),
        ({"status": "error", "error": "exec ./main: ENOENT"}, Verdict.IE, "ENOENT"),
    ],
)
def test_verdict_from_report(fields: dict[str, object], verdict: Verdict, message: str) -> None:
    got, why = decide(**fields)
    assert got == verdict
    assert message in why


def test_memory_limit_wins_over_cpu_when_killed_for_memory() -> None:
    assert decide(killed="memory", cpu_us=5_000_000)[0] == Verdict.MLE


def test_signal_is_reported_by_name_and_exit_code_is_null() -> None:
    result = verdict_of(TEST, report(signal=11, exit_code=-1), LIMITS, Comparison())
    assert result.signal == "SIGSEGV"
    assert result.exit_code is None


def test_test_without_expected_output_passes_on_clean_exit() -> None:
    result = verdict_of(TestCase("x", b"", None), report(stdout=b"anything"), LIMITS, Comparison())
    assert result.verdict == Verdict.AC


def test_shown_output_is_capped_with_flag_and_non_utf8_is_replaced() -> None:
    out = b"\xff" + b"a" * (SHOWN_BYTES + 10)
    result = verdict_of(TestCase("x", b"", None), report(stdout=out), LIMITS, Comparison())
    assert result.stdout_truncated
    assert SHOWN_BYTES * 2 // 3 <= len(result.stdout) <= SHOWN_BYTES
    assert result.stdout.startswith("\ufffd")


@pytest.mark.parametrize("byte", [b"\x00", b"\xff", b"\n", b"a"])
def test_a_result_stays_small_whatever_the_program_prints(byte: bytes) -> None:
    """Bytes JSON must escape (a control byte is six characters) cannot make a stored
    result grow past SHOWN_BYTES per stream; what is cut is flagged."""
    out = byte * SHOWN_BYTES
    result = verdict_of(
        TestCase("x", b"", None), report(stdout=out, stderr=out), LIMITS, Comparison()
    )
    for text, cut in (
        (result.stdout, result.stdout_truncated),
        (result.stderr, result.stderr_truncated),
    ):
        assert len(json.dumps(text)) - 2 <= SHOWN_BYTES
        assert cut == (len(json.dumps(byte.decode(errors="replace"))) > 3)


def test_times_are_reported_in_milliseconds() -> None:
    result = verdict_of(
        TEST, report(cpu_us=12_400, wall_us=15_600, stdout=b"42"), LIMITS, Comparison()
    )
    assert (result.cpu_time_ms, result.wall_time_ms) == (12, 16)


def test_broken_sandbox_is_retried_once_then_ie() -> None:
    calls = []

    def script(image: str, job: Job) -> RunReport:
        calls.append(image)
        raise SandboxError("supervisor exited")

    judge = Judge(FakePool(script))
    program = Program(LANGUAGES["python"], (File("main.py", b""),))
    result = judge.run_test(program, TEST, LIMITS, Comparison())
    assert result.verdict == Verdict.IE
    assert "supervisor exited" in result.message
    assert len(calls) == 2


def test_silent_sandbox_is_not_retried() -> None:
    calls = []

    def script(image: str, job: Job) -> RunReport:
        calls.append(image)
        raise SandboxTimeout("no answer")

    result = Judge(FakePool(script)).run_test(
        Program(LANGUAGES["python"], ()), TEST, LIMITS, Comparison()
    )
    assert result.verdict == Verdict.IE
    assert len(calls) == 1


def test_run_job_carries_limits_and_language_threads() -> None:
    pool = FakePool(lambda image, job: report(stdout=b"42"))
    program = Program(LANGUAGES["javascript"], (File("main.js", b""),))
    Judge(pool).run_test(program, TestCase("a", b"in", b"42"), LIMITS, Comparison())
    image, job = pool.calls[0]
    assert image == "javascript"
    assert job.stdin == b"in"
    assert job.cpu_ms == 1000 and job.wall_ms == 2000 and job.mem_kb == 64 * 1024
    assert job.procs == LIMITS.processes + LANGUAGES["javascript"].runtime_threads
    assert job.out_bytes == 4 * 1024


# --- real programs through the fake pool (local processes) ----------------------------------


def judge_source(language: str, source: bytes, stdin: bytes, expected: bytes | None) -> Verdict:
    judge = Judge(FakePool())
    compiled = judge.compile(LANGUAGES[language], source)
    if compiled.program is None:
        assert compiled.verdict is not None
        return compiled.verdict
    result = judge.run_test(
        compiled.program, TestCase("0", stdin, expected), Limits(), Comparison()
    )
    return result.verdict


def test_python_syntax_error_is_ce_with_the_error_shown() -> None:
    judge = Judge(FakePool())
    compiled = judge.compile(LANGUAGES["python"], b"print(1\n")
    assert compiled.verdict == Verdict.CE
    assert compiled.result is not None
    assert "SyntaxError" in compiled.result.output
    assert "Traceback" not in compiled.result.output


def test_python_program_is_judged_ac_and_wa() -> None:
    source = b"print(int(input()) * 2)\n"
    assert judge_source("python", source, b"21\n", b"42\n") == Verdict.AC
    assert judge_source("python", source, b"20\n", b"42\n") == Verdict.WA


def test_c_compile_error_is_ce_and_good_program_is_compiled_once_and_runs() -> None:
    assert judge_source("c", b"int main( {", b"", None) == Verdict.CE
    good = b'#include <stdio.h>\nint main(){int x;scanf("%d",&x);printf("%d\\n",x+1);}\n'
    assert judge_source("c", good, b"41", b"42") == Verdict.AC


def test_cpp_runtime_error_is_re() -> None:
    source = b"#include <cstdlib>\nint main(){ std::abort(); }\n"
    assert judge_source("cpp", source, b"", None) == Verdict.RE
