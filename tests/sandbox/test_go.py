"""Go's own rules, through real sandboxes: the threads Go's runtime starts by itself are not
the program's, so a program of one goroutine runs under a limit of one process whatever it
waits for."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import FAST, judge_source
from worker.contract import Verdict
from worker.judging.judge import Judge

pytestmark = pytest.mark.docker

# One goroutine waiting in the kernel, as one does for an interactor's answer (a read of its
# pipe): past a tick of Go's monitor, the scheduler gives the waiting thread's place to another
# thread, started if none is idle
WAITS = (
    'package main\n\nimport (\n\t"fmt"\n\t"syscall"\n)\n\n'
    "func main() {\n\tpause := syscall.Timespec{Nsec: 5_000_000}\n"
    "\tfor i := 0; i < 20; i++ {\n\t\tsyscall.Nanosleep(&pause, nil)\n\t}\n"
    '\tfmt.Println("waited")\n}\n'
)


def test_a_goroutine_waiting_in_the_kernel_runs_under_a_limit_of_one_process(
    judge: Judge,
) -> None:
    # whether the scheduler needs a thread more depends on timing: several runs
    tests = [(b"", b"waited\n")] * 8
    results = judge_source(judge, "go", WAITS, tests, FAST.model_copy(update=dict(processes=1)))
    assert [r.verdict for r in results] == [Verdict.AC] * 8, results
