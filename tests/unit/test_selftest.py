"""Self-tests and what the fleet does with them, without Docker: each language's echo compiled
and run through a fake pool, a worker's health, the announcements in (fake) Redis, and the
producers' and workers' refusals of a language nobody can judge."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from structlog.testing import capture_logs

from tests.unit.fleet import judged, open_intake, parsed, start_runtime, sub
from worker.cli.operating import languages_lines
from worker.contract import Limits, TestCase
from worker.data import availability
from worker.errors import SandboxError, SubmissionRejected
from worker.judging.judge import Judge
from worker.judging.selftest import INPUT, START_RUNS, Health, self_test
from worker.keyspace import languages_key
from worker.languages import LANGUAGES
from worker.pipeline import runtime
from worker.pipeline.tasks import register_problem, run_test
from worker.programs import File
from worker.sandbox.fake import FakePool, report
from worker.sandbox.protocol import Job, RunReport
from worker.verdicts import LANGUAGE_UNAVAILABLE

Script = Callable[[str, Job], RunReport]


def echoing(image: str, job: Job) -> RunReport:
    """A sandbox in which every compile succeeds and every program echoes its input."""
    if job.collect:
        return report(files={name: File(name, b"\x7fELF", 0o755) for name in job.collect})
    return report(stdout=job.stdin)


def judge(script: Script = echoing) -> Judge:
    return Judge(FakePool(script))


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_language_passes_where_its_program_echoes(language: str) -> None:
    pool = FakePool(echoing)
    assert self_test(Judge(pool), LANGUAGES[language], 512) == ""
    ran = [job for _, job in pool.calls if not job.collect][-1 - START_RUNS :]
    # the known input, through the language's own command, then its start measured exec'ed
    assert [job.stdin for job in ran] == [INPUT, *[b""] * START_RUNS]
    assert all(not job.server and not job.park for job in ran[1:])
    lang, job = LANGUAGES[language], ran[0]
    limits = {"memory_mb": job.mem_kb // 1024, "stack_kb": job.stack_kb}
    assert job.argv == lang.command(lang.source_file, **limits)


def running(**fields: Any) -> Script:
    """Compiles succeed; every program ends with ``fields``."""
    return lambda image, job: echoing(image, job) if job.collect else report(**fields)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (running(stdout=INPUT[:-1]), "its self-test ended WA (output has 32 bytes, expected 33)"),
        (running(stdout=INPUT, stderr=b"warning"), "its self-test wrote on stderr: 'warning'"),
        (
            running(exit_code=127, stderr=b"no libc"),
            "its self-test ended RE (exited with code 127)",
        ),
        (lambda image, job: report(exit_code=1, stderr=b"main.c:1: error"), "did not compile (CE"),
    ],
)
def test_a_self_test_that_does_not_echo_cleanly_says_why(script: Script, reason: str) -> None:
    said = self_test(judge(script), LANGUAGES["c"], 512)
    assert reason in said, said


def test_a_sandbox_that_cannot_run_the_self_test_says_so() -> None:
    def broken(image: str, job: Job) -> RunReport:
        raise SandboxError("no sandbox of javascript would start")

    said = self_test(judge(broken), LANGUAGES["javascript"], 512)
    assert "no sandbox of javascript would start" in said


def failing_in(image_of_failure: str) -> Script:
    def script(image: str, job: Job) -> RunReport:
        if image == image_of_failure and not job.collect:
            return report(signal=11)
        return echoing(image, job)

    return script


def test_health_logs_each_unhealthy_language_and_its_recovery() -> None:
    health = Health({})
    with capture_logs() as logs:
        health.run(judge(failing_in("javascript")), 512, LANGUAGES)
    assert health.healthy() == [name for name in LANGUAGES if name != "javascript"]
    (event,) = [e for e in logs if e["event"] == "language.unhealthy"]
    assert event["language"] == "javascript" and "SIGSEGV" in event["reason"]
    assert "javascript failed its self-test on this worker: its self-test ended RE" in (
        health.why_not("javascript")
    )
    assert health.why_not("python") == ""
    assert health.why_not("cobol") == "this worker does not run cobol (RUNNER_LANGUAGES)"
    pool = FakePool(echoing)
    with capture_logs() as logs:
        health.retest(Judge(pool), 512)
    assert {image for image, _ in pool.calls} == {"javascript"}  # only what had failed
    assert [e["language"] for e in logs if e["event"] == "language.recovered"] == ["javascript"]
    assert health.why_not("javascript") == ""


def test_a_worker_none_of_whose_languages_passed_refuses_to_start() -> None:
    with pytest.raises(runtime.StartRefused, match="no language passed its self-test"):
        runtime.check_healthy(Health({"python": "its self-test ended RE", "c": "ended TLE"}))
    runtime.check_healthy(Health({"python": "", "c": "ended TLE"}))


def test_status_and_ping_lines_name_what_cannot_be_judged_and_why() -> None:
    lines = languages_lines({"c": "", "python": "", "javascript": "its self-test ended RE"})
    assert lines == ["languages: c python", "unhealthy: javascript: its self-test ended RE"]


# -- announcements ----------------------------------------------------------------------------


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


def test_nothing_announced_is_nothing_known_and_refuses_nothing(
    server: fakeredis.FakeServer,
) -> None:
    assert availability.why_unavailable(availability.fresh(client(server), "q"), "python") is None


def test_a_language_one_worker_can_judge_is_available(server: fakeredis.FakeServer) -> None:
    availability.announce(client(server), "q", "a@x", {"python": "ended RE", "c": ""})
    availability.announce(client(server), "q", "b@x", {"python": "", "c": ""})
    assert availability.why_unavailable(availability.fresh(client(server), "q"), "python") is None


def test_a_language_every_worker_failed_or_none_runs_is_unavailable_saying_why(
    server: fakeredis.FakeServer,
) -> None:
    availability.announce(client(server), "q", "a@x", {"python": "its self-test ended RE", "c": ""})
    availability.announce(client(server), "q", "b@x", {"python": "ended TLE", "c": ""})
    announced = availability.fresh(client(server), "q")
    said = availability.why_unavailable(announced, "python")
    assert said == (
        "python failed its self-test on every worker that runs it (a@x and 1 more: its "
        "self-test ended RE)"
    )
    said = availability.why_unavailable(announced, "javascript")
    assert said == "no worker of the fleet runs javascript (RUNNER_LANGUAGES)"


def test_what_the_workers_of_another_queue_said_counts_for_nothing(
    server: fakeredis.FakeServer,
) -> None:
    availability.announce(client(server), "other", "a@x", {"python": "ended RE"})
    assert availability.fresh(client(server), "q") == []


def test_stale_and_withdrawn_announcements_count_for_nothing(
    server: fakeredis.FakeServer,
) -> None:
    redis = client(server)
    stale = int(time.time() * 1000) - (availability.FRESH_S + 1) * 1000
    redis.hset(languages_key("q"), "gone@x", json.dumps({"at": stale, "languages": {"c": "RE"}}))
    redis.hset(languages_key("q"), "odd@x", b"not json")
    assert availability.fresh(redis, "q") == []
    availability.announce(redis, "q", "a@x", {"c": "RE"})
    assert [a.node for a in availability.fresh(redis, "q")] == ["a@x"]
    availability.withdraw(redis, "q", "a@x")
    assert availability.fresh(redis, "q") == []


def test_announcing_forgets_workers_long_gone(server: fakeredis.FakeServer) -> None:
    redis = client(server)
    old = int(time.time() * 1000) - (availability.FORGET_S + 1) * 1000
    redis.hset(languages_key("q"), "old@x", json.dumps({"at": old, "languages": {}}))
    availability.announce(redis, "q", "a@x", {"c": ""})
    assert sorted(redis.hkeys(languages_key("q"))) == [b"a@x"]


# -- producers refuse, workers refuse ----------------------------------------------------------

JS = {"language": "javascript", "source": "console.log(1)", "tests": [{}]}


def refusal(intake: Any, raw: dict[str, Any]) -> SubmissionRejected:
    with pytest.raises(SubmissionRejected) as refused:
        intake.accept(parsed(raw), "run1")
    return refused.value


def test_a_producer_refuses_a_language_no_worker_can_judge_and_keeps_nothing(
    server: fakeredis.FakeServer,
) -> None:
    intake = open_intake(server)
    intake.accept(parsed(JS), "known-nothing")  # nothing announced: the fleet may be starting
    said = {"javascript": "its self-test ended RE", "python": ""}
    availability.announce(client(server), "runner", "a@x", said)
    intake = open_intake(server)  # a producer that has not read the announcements yet
    refused = refusal(intake, JS)
    assert refused.code == LANGUAGE_UNAVAILABLE
    assert refused.message.startswith(
        "language: 'javascript' cannot be judged now: javascript failed its self-test on every "
        "worker that runs it (a@x: its self-test ended RE)"
    )
    checker = {"language": "js", "source": "1"}
    assert "checker.language: 'javascript'" in refusal(intake, sub(1, checker=checker)).message
    assert not client(server).hexists("runner:admitted", "run1")  # nothing admitted
    intake.accept(parsed(sub(1)), "python-run")  # python: nobody said it cannot be judged


def test_a_problems_checker_in_an_unavailable_language_is_refused_too(
    server: fakeredis.FakeServer,
) -> None:
    rt = start_runtime(server)
    checker = {"language": "javascript", "source": "process.exit(0)"}
    problem = {"tests": [{"stdin": "1", "expected_stdout": "1"}], "checker": checker}
    pid = register_problem.apply(args=(problem,)).get()["problem"]
    availability.announce(rt.redis, "runner", "a@x", {"javascript": "ended RE", "python": ""})
    intake = open_intake(server)
    refused = refusal(intake, {"language": "python", "source": "1", "problem": pid})
    assert refused.code == LANGUAGE_UNAVAILABLE and "checker.language" in refused.message


def test_a_worker_refuses_a_run_in_a_language_it_cannot_judge(
    server: fakeredis.FakeServer,
) -> None:
    """The producer knew nothing (no announcement yet): the compile step refuses instead."""
    rt = start_runtime(server)
    rt.health = Health({"javascript": "its self-test ended RE", "python": ""})
    out = judged(rt, JS)
    assert out["verdict"] == "RJ" and out["error"]["code"] == LANGUAGE_UNAVAILABLE
    assert f"(worker {rt.host})" in out["error"]["message"]
    assert judged(rt, sub(2), run="run2")["verdict"] == "AC"


def test_a_test_that_meets_a_worker_that_cannot_judge_its_language_is_ie(
    server: fakeredis.FakeServer,
) -> None:
    """Compiled where it could be (a fleet whose workers differ), run where it cannot."""
    rt = start_runtime(server)
    step = rt.intake.accept(parsed(JS), "run1")
    compiled = step.tasks[0].apply().get()
    rt.health = Health({"python": ""})
    test = step.tasks[1].tasks[0]
    out = run_test.apply(args=(compiled, *test.args)).get()
    assert out["result"]["verdict"] == "IE"
    assert "this worker does not run javascript" in out["result"]["message"]


def test_a_runtimes_start_is_the_least_of_its_exec_ed_starts_and_is_never_charged() -> None:
    """What a worker measured of a runtime's start is taken off a program exec'ed for a test,
    and added to the limit the sandbox enforces; a test forked or parked has no start to take
    off (its runtime started before it)."""
    costs = iter([40_000, 30_000, 35_000])
    ruby = LANGUAGES["ruby"]

    def script(image: str, job: Job) -> RunReport:
        if job.argv != ruby.command(ruby.source_file):  # its syntax check
            return echoing(image, job)
        if not job.stdin:
            return report(cpu_us=next(costs))
        via = "server" if job.stdin == b"forked" else "exec"
        return report(stdout=job.stdin, cpu_us=50_000, via=via)

    pool = FakePool(script)
    judge = Judge(pool)
    assert self_test(judge, ruby, 512) == ""
    assert judge.starts == {"ruby": 30_000}
    program = judge.compile(ruby, b"puts 1\n").program
    assert program is not None
    limits = Limits(cpu_time_ms=1000)
    exec_ed = judge.run_test(program, TestCase("t", b"x", b"x"), limits)
    assert exec_ed.cpu_time_ms == 20
    assert pool.calls[-1][1].cpu_ms == 1030
    forked = judge.run_test(program, TestCase("t", b"forked", b"forked"), limits)
    assert forked.cpu_time_ms == 50
