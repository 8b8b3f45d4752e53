"""What a language's runtime is told of the job's limits (``{memory_mb}`` and ``{stack_kb}`` in
its command, as a JVM's -Xmx and -Xss), and what it says when it runs out of memory its own way
(``Language.out_of_memory``: MLE, not RE). No Docker."""

from dataclasses import replace

import pytest

from worker.compare import Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.judging.judge import Judge
from worker.judging.runs import program_job
from worker.languages import LANGUAGES
from worker.programs import File, Program
from worker.sandbox.fake import FakePool, report

SIZED = replace(
    LANGUAGES["c"],
    run=("/usr/bin/vm", "-Xmx{memory_mb}m", "-Xss{stack_kb}k", "{entry}"),
    out_of_memory=("OutOfMemoryError: heap",),
    max_stack_kb=1024 * 1024,
)
LIMITS = Limits(cpu_time_ms=1000, wall_time_ms=2000, memory_mb=64, output_kb=4, processes=4)
TEST = TestCase("t1", b"", b"42\n")
verdict_of = Judge(FakePool(None)).verdict  # the verdict rules of a report, no run


def test_the_command_is_told_the_jobs_memory_and_stack() -> None:
    job = program_job(Program(SIZED, (File("main.c", b""),)), LIMITS, ("x",))
    assert job.argv == ("/usr/bin/vm", "-Xmx64m", "-Xss65536k", "main.c", "x")
    assert job.stack_kb == 65536 and job.mem_kb == 65536


def test_a_stack_above_what_the_runtime_takes_is_its_largest() -> None:
    job = program_job(
        Program(SIZED, (File("main.c", b""),)), LIMITS.model_copy(update={"memory_mb": 2048})
    )
    assert "-Xss1048576k" in job.argv and "-Xmx2048m" in job.argv
    assert job.stack_kb == 2048 * 1024  # the rlimit stays the job's


def test_a_command_that_needs_a_limit_it_was_not_given_says_which() -> None:
    with pytest.raises(ValueError, match=r"c: run needs \{memory_mb\}"):
        SIZED.command("main.c")
    assert LANGUAGES["c"].command("main.c") == ("./main",)  # none needed, none asked


@pytest.mark.parametrize(
    ("fields", "verdict"),
    [
        ({"exit_code": 1, "stderr": b'Exception in "main" OutOfMemoryError: heap\n'}, Verdict.MLE),
        ({"signal": 6, "exit_code": -1, "stderr": b"OutOfMemoryError: heap"}, Verdict.MLE),
        ({"exit_code": 1, "stderr": b"StackOverflowError"}, Verdict.RE),
        # caught, and the answer right: the program's business
        ({"stdout": b"42\n", "stderr": b"OutOfMemoryError: heap"}, Verdict.AC),
    ],
)
def test_a_run_that_failed_saying_it_ran_out_of_memory_is_mle(
    fields: dict[str, object], verdict: Verdict
) -> None:
    result = verdict_of(TEST, report(**fields), LIMITS, Comparison(), SIZED.out_of_memory)
    assert result.verdict == verdict, result
    if verdict is Verdict.MLE:
        assert result.message == "memory limit exceeded (64 MB)"


def test_other_languages_words_decide_nothing() -> None:
    fields = {"exit_code": 1, "stderr": b"OutOfMemoryError: heap"}
    assert verdict_of(TEST, report(**fields), LIMITS, Comparison()).verdict == Verdict.RE
