"""Parked runtimes (images/supervisor/park.c) against real sandboxes: a JavaScript job handed
to a node started ahead for it must look, behave and end exactly like ``node main.js`` exec'ed
by the supervisor, keep every isolation guarantee and its limits, and a runtime parked for
anything else must be thrown away, never used.

What may differ, and is made neutral or left out before comparing (docs/contract.md lists
it): the job's uid (each job has its own); what only a clock shows (process.uptime(),
performance.now(), the CPU time node's own start cost, which the parked job's figures leave
out); /proc/self/cmdline (the parked one's argv has the launcher's two options); and
process.moduleLoadList while main.js first runs, which already names the ES module loader's
internals that node loads once any CommonJS module has loaded (the launcher is one)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator

import docker
import pytest
from structlog.testing import capture_logs

from tests.conftest import started_pools
from worker.compare import Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.judging.judge import Judge, Program
from worker.languages import LANGUAGES
from worker.programs import File
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import Job, RunReport
from worker.settings import Settings

pytestmark = pytest.mark.docker

JS = LANGUAGES["javascript"]

# Everything a program can see of how it was started.
STATE = r"""
const fs = require('fs');
const show = (...a) => console.log(JSON.stringify(a));
show(process.argv, process.argv0, process.execArgv, process.execPath, process.title);
show(Object.entries(process.env));
show(process.cwd(), process.getuid(), process.geteuid(), process.getgid(), process.getegid(),
     process.getgroups(), process.umask());
show(require.main === module, process.mainModule === module, module.id, module.filename,
     module.paths, module.parent, module.children.length, __filename, __dirname);
show(Object.keys(require.cache), Object.keys(require('module')._pathCache));
show(process._preload_modules, Object.keys(process), Object.getOwnPropertyNames(globalThis));
show(fs.readdirSync('/proc/self/fd').map(fd => {
  try { return `${fd} ${fs.readlinkSync('/proc/self/fd/' + fd)}`; } catch (e) { return fd; }
}));
show(fs.readFileSync('/proc/self/status', 'utf8').split('\n').filter(
  l => /^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp|Threads|Sig(Blk|Ign|Cgt)|NSpid|Umask)/.test(l)));
show(fs.readFileSync('/proc/self/limits', 'utf8'));
show(fs.readFileSync('/proc/self/oom_score_adj', 'utf8'), process.pid, process.ppid);
show(fs.readdirSync('/proc').filter(p => /^\d+$/.test(p)));
// but the ES module loader's internals, which node loads once a CommonJS module has loaded:
// the launcher has, main.js not yet; sorted, as the launcher loads some of them earlier
show(process.moduleLoadList.filter(m => !/internal\/(modules\/esm|process\/esm_loader)/.test(m))
  .sort());
show(process.stdin.constructor.name, process.stdout._type, process.stderr._type);
show(Error.stackTraceLimit, new Error('here').stack);
show(require('v8').getHeapStatistics().heap_size_limit, process.eventNames(), process.exitCode);
show(process.getActiveResourcesInfo(), process.allowedNodeEnvironmentFlags.size);
show(fs.openSync('/dev/null', 'r'));
let depth = 0;
function down() { depth++; down(); }
try { down(); } catch (e) { show('stack depth', depth, e.stack); }
show(fs.readFileSync(0, 'utf8'));
"""

# How a program ends: status, signal, what node prints on the way out (stacks included).
ENDINGS = {
    "uncaught": "function f() { throw new Error('boom'); }\nconsole.log('before');\nf();\n",
    "uncaught_later": "setTimeout(function tick() { null.x; }, 1);\n",
    "throw_value": "throw 42;\n",
    "exit_code": "console.log('out');\nprocess.exit(3);\n",
    "exit_big": "process.exit(300);\n",
    "exit_code_set": "process.exitCode = 4;\nconsole.log('set');\n",
    "timers_keep_alive": "setTimeout(() => console.log('late'), 30);\nconsole.log('main');\n",
    "promises": (
        "(async () => { await null; console.log('awaited'); })();\n"
        "Promise.resolve().then(() => console.log('then'));\nconsole.log('sync');\n"
    ),
    "unhandled_rejection": "Promise.reject(new Error('nope'));\n",
    "exit_handlers": (
        "process.on('beforeExit', c => { if (!globalThis.again) { globalThis.again = 1;"
        " console.log('beforeExit', c); setTimeout(() => console.log('more'), 1); } });\n"
        "process.on('exit', c => console.log('exit', c));\nconsole.log('main');\n"
    ),
    "uncaught_handler": (
        "process.on('uncaughtException', (e, origin) => { console.log('caught', e.message,"
        " origin); process.exitCode = 9; });\nthrow new Error('handled');\n"
    ),
    "stack_overflow": "function r(n) { return r(n + 1) + 1; }\nr(0);\n",
    "syntax_error_at_run": "const x = require('./other');\n",
    "signal_self": "process.kill(process.pid, 'SIGSEGV');\n",
    "stdin_to_eof": "process.stdin.pipe(process.stdout);\n",
    "stdin_lines": (
        "const rl = require('readline').createInterface({input: process.stdin});\n"
        "rl.on('line', l => console.log('line', l)).on('close', () => console.log('eof'));\n"
    ),
    "stderr": "console.error('to err');\nconsole.log('to out');\n",
    "big_output": "process.stdout.write('a'.repeat(200000));\n",
    "child_with_exec_argv": (
        "const {fork} = require('child_process');\n"
        "if (process.argv[2]) console.log('child', process.execArgv, require.main === module);\n"
        "else fork(__filename, ['child']).on('exit', c => console.log('child ended', c));\n"
    ),
    "worker_thread": (
        "const {Worker, isMainThread} = require('worker_threads');\n"
        "if (isMainThread) new Worker(__filename).on('exit', c => console.log('worker', c));\n"
        "else console.log('in worker');\n"
    ),
}


@pytest.fixture(scope="module")
def pools(docker_client: docker.DockerClient, settings: Settings) -> Iterator[SandboxPools]:
    """JavaScript's pool alone: one sandbox, so that one job's runtime is parked for the next."""
    with started_pools(docker_client, settings, images=[JS.image]) as pools:
        yield pools


def job(source: str, park: bool, stdin: bytes = b"", **limits: int) -> Job:
    files = (File("main.js", source.encode()), File("other.js", b"module.exports = (;\n"))
    return Job(
        uid=0,
        argv=JS.command("main.js", memory_mb=256),
        env=JS.job_env,
        files=files,
        stdin=stdin,
        park=JS.park if park else (),
        **{
            "cpu_ms": 2000,
            "wall_ms": 5000,
            "mem_kb": 256 * 1024,
            "procs": 8 + JS.runtime_threads,
            "nofile": 64,
            "stack_kb": 65536,
            "fsize_kb": 1024,
            "out_bytes": 1 << 20,
            **limits,
        },
    )


def run(pools: SandboxPools, source: str, parked: bool, stdin: bytes = b"") -> RunReport:
    """``source`` exec'ed, or handed to the runtime parked for it: a first job parks one for
    the same job, which the second is handed."""
    if parked:
        pools.run(JS.image, job("", park=True), 30)
    report = pools.run(JS.image, job(source, park=parked, stdin=stdin), 30)
    assert report.status == "ok", report.error
    assert report.via == ("parked" if parked else "exec"), report.park_error
    assert report.cleanup == "ok"
    return report


def seen(report: RunReport) -> tuple[int, int, str, str, str]:
    """What the program showed, with its (per-job) uid made neutral."""

    def neutral(data: bytes) -> str:
        return re.sub(r"(?<![0-9])\d{6,10}(?![0-9])", "N", data.decode(errors="replace"))

    return (
        report.exit_code,
        report.signal,
        report.killed,
        neutral(report.stdout),
        neutral(report.stderr),
    )


def test_a_parked_job_starts_exactly_like_an_execed_node(pools: SandboxPools) -> None:
    execed = run(pools, STATE, parked=False, stdin=b"line one\nrest\n")
    parked = run(pools, STATE, parked=True, stdin=b"line one\nrest\n")
    assert seen(parked) == seen(execed)
    assert b"main.js" in parked.stdout and b"park" not in parked.stdout


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_a_parked_job_ends_exactly_like_an_execed_node(pools: SandboxPools, name: str) -> None:
    stdin = b"one\ntwo\nno newline"
    assert seen(run(pools, ENDINGS[name], True, stdin)) == seen(
        run(pools, ENDINGS[name], False, stdin)
    )


def test_no_launcher_frame_in_any_stack(pools: SandboxPools) -> None:
    report = run(pools, ENDINGS["uncaught"], parked=True)
    assert b"at f (/box/" in report.stderr
    assert b"park" not in report.stderr
    # the bottom of the stack is node's, as exec'ed
    assert re.search(rb"\n    at node:internal/main/run_main_module:\d+:\d+\n\nNode", report.stderr)


def test_memory_of_a_parked_job_is_its_execed_figure(pools: SandboxPools) -> None:
    """Node's own pages are resident in the parked job as in the exec'ed one: the job's
    memory is its largest process's resident pages either way (memory.c)."""
    source = "const a = new Array(4e6).fill(1.5);\nconsole.log(a.length);\n"
    execed = [run(pools, source, parked=False).maxrss_kb for _ in range(3)]
    parked = [run(pools, source, parked=True).maxrss_kb for _ in range(3)]
    assert abs(min(parked) - min(execed)) < min(execed) * 0.1, (execed, parked)


def test_v8s_heap_limit_is_the_judges(pools: SandboxPools) -> None:
    """node is told the test's memory limit (--max-old-space-size), parked or not: V8 would
    size its heap from the machine."""
    source = "console.log(require('v8').getHeapStatistics().heap_size_limit >> 20);\n"
    for parked in (False, True):
        limit_mb = int(run(pools, source, parked).stdout)
        assert 256 <= limit_mb < 256 + 64, limit_mb


def test_v8s_heap_limit_ends_a_parked_job_as_an_execed_one(pools: SandboxPools) -> None:
    """With room in the sandbox beyond V8's heap (the judge's memory limit: a heap that grows
    meets it first), node dies as it would exec'ed, saying so (the judge's MLE). The rest of
    what it prints (its last collections' timings, native addresses) is not the same twice."""
    hog = "const a = []; for (;;) a.push(new Array(1e5).fill(1.5));\n"
    ends = []
    for parked in (False, True):
        if parked:
            pools.run(JS.image, job("", park=True, mem_kb=1 << 20), 30)
        report = pools.run(JS.image, job(hog, park=parked, mem_kb=1 << 20), 30)
        assert report.via == ("parked" if parked else "exec"), report.park_error
        said = b"FATAL ERROR: Reached heap limit" in report.stderr
        ends.append((report.exit_code, report.signal, report.killed, said))
    assert ends[0] == ends[1] == (-1, 6, "none", True), ends


def test_limits_are_enforced_on_parked_jobs(pools: SandboxPools) -> None:
    judge = Judge(pools)
    limits = Limits(cpu_time_ms=1000, wall_time_ms=3000, memory_mb=128, output_kb=64)

    def verdict(source: str) -> Verdict:
        program = Program(JS, (File("main.js", source.encode()),))
        for _ in range(2):  # the second finds a runtime parked for it
            result = judge.run_test(program, TestCase("t", b"", None), limits, Comparison())
        return result.verdict

    assert verdict("while (true) {}\n") == Verdict.TLE
    assert verdict("const a = []; while (true) a.push(new Array(1e6).fill(1));\n") == Verdict.MLE
    assert verdict("process.stdout.write('x'.repeat(200000));\n") == Verdict.OLE


def test_a_runtime_parked_for_other_limits_is_thrown_away(pools: SandboxPools) -> None:
    pools.run(JS.image, job("", park=True), 30)
    report = pools.run(JS.image, job("console.log('ran')", park=True, cpu_ms=3000), 30)
    assert (report.via, report.stdout, report.cleanup) == ("exec", b"ran\n", "ok")
    assert report.park_error == "parked for another argv, environment or limits"
    # and the next one is parked for the limits that job had
    again = pools.run(JS.image, job("console.log('ran')", park=True, cpu_ms=3000), 30)
    assert (again.via, again.stdout) == ("parked", b"ran\n")


def test_a_job_that_is_not_parked_kills_the_runtime_quietly(pools: SandboxPools) -> None:
    pools.run(JS.image, job("", park=True), 30)
    report = pools.run(JS.image, job("console.log(1)", park=False), 30)
    assert (report.via, report.park_error, report.stdout) == ("exec", "", b"1\n")


def test_a_job_sees_nothing_of_an_earlier_one(pools: SandboxPools) -> None:
    """Each runtime runs one job: what a job leaves in its process, its files or its /tmp is
    gone for the next, and the next job's runtime is nowhere in the job's view."""
    leave = (
        "globalThis.left = 1; process.env.LEFT = '1';\n"
        "require('fs').writeFileSync('/tmp/left', 'x');\n"
        "require('fs').writeFileSync('left', 'x');\n"
    )
    look = (
        "const fs = require('fs');\n"
        "console.log(globalThis.left, process.env.LEFT, fs.existsSync('/tmp/left'),"
        " fs.existsSync('left'), fs.readdirSync('/proc').filter(p => /^\\d+$/.test(p)).length);\n"
    )
    pools.run(JS.image, job(leave, park=True), 30)
    report = pools.run(JS.image, job(look, park=True), 30)
    assert report.via == "parked"
    execed = run(pools, look, parked=False)
    assert report.stdout == execed.stdout == b"undefined undefined false false 2\n"


def test_a_runtime_that_cannot_start_costs_speed_never_a_verdict(pools: SandboxPools) -> None:
    broken = dataclasses.replace(JS, park=("--require", "/nonexistent/park.js"))
    program = Program(broken, (File("main.js", b"console.log('ok')\n"),))
    with capture_logs() as logs:
        results = [
            Judge(pools).run_test(program, TestCase("t", b"", b"ok\n"), Limits(), Comparison())
            for _ in range(2)
        ]
    assert [r.verdict for r in results] == [Verdict.AC, Verdict.AC], results
    (event,) = [e for e in logs if e["event"] == "sandbox.parked_unused"]
    assert "did not start" in event["reason"]


def test_memory_a_parked_job_leaves_behind_is_not_hidden_by_its_runtime(
    pools: SandboxPools,
) -> None:
    """What the sandbox must give back after a run is what it held before its runtime was
    parked: node's own pages, gone with the job, must not make room for what the job left.
    Negative dentries (names looked up that are not there, charged to the sandbox and
    reclaimed only under pressure), a few MB, far fewer than node's own pages, end the
    sandbox, as they do after a job exec'ed (tests/sandbox/test_ledger.py)."""
    source = (
        "const fs = require('fs');\n"
        "for (let i = 0; i < 20000; i++) fs.existsSync('/usr/lib/nothing-' + i);\n"
        "console.log('looked');\n"
    )
    slow = {"cpu_ms": 20_000, "wall_ms": 30_000}
    pools.run(JS.image, job("", park=True, **slow), 60)
    time.sleep(1)  # node, parked, holds all its pages as the run comes
    report = pools.run(JS.image, job(source, park=True, **slow), 60)
    assert (report.via, report.stdout) == ("parked", b"looked\n"), report
    assert report.cleanup == "memory still held after the job", report.cleanup
