"""Python's fork server (images/python/forkserver.py) against real sandboxes: a job it forks
must look, behave and end exactly like ``python3 main.py`` exec'ed by the supervisor, keep
every isolation guarantee, and a broken server must cost speed, never a verdict."""

from __future__ import annotations

import dataclasses
import re

import docker
import pytest
from structlog.testing import capture_logs

from tests.sandbox.helpers import FAST, python_job
from tests.sandbox.idioms import IDIOMS
from worker.compare import Comparison
from worker.contract import TestCase, Verdict
from worker.judging.judge import Judge, Program
from worker.languages import LANGUAGES
from worker.programs import File
from worker.sandbox.container import LABEL_IMAGE, LABEL_OWNER
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import RunReport

pytestmark = pytest.mark.docker

PYTHON = LANGUAGES["python"]

# Everything a program can see of how it was started.
STATE = r"""
import gc, os, resource, signal, site, sys
print(list(globals()))
print(__file__, __name__, __package__, __spec__, __cached__, __doc__, __annotations__)
print(type(__loader__).__name__, __loader__.name, __loader__.path, __builtins__)
print(sys.argv, sys.orig_argv, sys.path, sys.flags, sys.executable)
print(sorted(sys.modules))
print(list(os.environ.items()))
print(os.getcwd(), os.getresuid(), os.getresgid(), os.getgroups(), os.umask(0o22))
print(os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid(), os.stat("/proc/self").st_uid)
print(open("/proc/self/oom_score_adj").read().strip())
print([(n, resource.getrlimit(getattr(resource, n))) for n in dir(resource) if n[:7] == "RLIMIT_"])
print(sorted(os.listdir("/proc/self/fd")))
print([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ)])
print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
for f in (sys.stdin, sys.stdout, sys.stderr):
    print(f.encoding, f.errors, f.line_buffering, f.write_through, f.seekable(), f.isatty(), f.mode)
print([line for line in open("/proc/self/status") if line[:3] in ("Cap", "NoN", "Sec")])
print(gc.get_freeze_count(), gc.isenabled(), gc.get_threshold())
print(any(r is vars(os) for r in gc.get_referrers(os.path)))  # the interpreter's own, tracked
print(site.USER_BASE, site.USER_SITE, site.ENABLE_USER_SITE, os.getppid())
print(input(), sys.stdin.read())
import ctypes  # noqa: E402 - after sys.modules was printed
attr = ctypes.create_string_buffer(256)
size = ctypes.c_size_t()
libc = ctypes.CDLL(None)
libc.pthread_getattr_default_np(attr)
libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
print("new threads' stack", size.value, resource.getrlimit(resource.RLIMIT_STACK))
"""

# What a program sees below its own frames: nothing, as the interpreter runs a script from C.
FRAMES = r"""
import faulthandler, inspect, sys, traceback, warnings
try:
    sys._getframe(1)
except ValueError as exc:
    print("no frame below the script's:", exc)
print([(f.function, f.lineno) for f in inspect.stack()])
traceback.print_stack()
warnings.warn("at the top", stacklevel=2)
def nested():
    warnings.warn("two up", stacklevel=3)
nested()
faulthandler.dump_traceback(all_threads=False)
"""

# How a program ends: status, signal, and what the interpreter prints on the way out.
ENDINGS = {
    "traceback": "def f():\n    raise ValueError('boom')\nprint('before')\nf()\n",
    "exit_message": "import sys\nprint('out')\nsys.exit('bye')\n",
    "exit_code": "raise SystemExit(3)\n",
    "exit_none": "import sys\nsys.exit()\n",
    "exit_big": "raise SystemExit(300)\n",
    "exit_negative": "raise SystemExit(-2)\n",
    "os_exit": "import os\nprint('lost: never flushed')\nos._exit(7)\n",
    "interrupt": "print('x')\nraise KeyboardInterrupt\n",
    "syntax_error": "x = (\n",
    "no_newline": "import sys\nsys.stdout.write('a' * 100000)\n",
    "atexit": "import atexit\natexit.register(print, 'atexit ran')\nprint('main')\n",
    "thread": (
        "import threading, time\n"
        "def late():\n    time.sleep(0.05)\n    print('thread done')\n"
        "threading.Thread(target=late).start()\nprint('main done')\n"
    ),
    "finalizers": (
        "import gc\n"
        "class Loud:\n    def __init__(self, name): self.name = name\n"
        "    def __del__(self): print('finalized', self.name)\n"
        "kept = Loud('global')\ncycle = Loud('cycle')\ncycle.me = cycle\ndel cycle\n"
        "out = open(1, 'w', closefd=False)\nout.write('unflushed file\\n')\n"
        "print('main')\n"
    ),
    "stdout_replaced": "import io, sys\nsys.stdout = io.TextIOWrapper(open(1, 'wb'))\nprint('x')\n",
    "stdout_closed": "import sys\nsys.stdout.close()\n",
    "raise_in_atexit": (
        "import atexit\ndef bad():\n    raise RuntimeError('late')\natexit.register(bad)\n"
    ),
    "stderr": "import sys\nprint('to err', file=sys.stderr)\nprint('to out')\n",
    "kill_self": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
    # the frames below what the interpreter calls from C at exit: none
    "frames_at_exit": (
        "import atexit, sys\n"
        "def show(where, getframe=sys._getframe, out=sys.__stdout__):\n"
        "    names, frame = [], getframe().f_back\n"
        "    while frame is not None:\n"
        "        names.append(frame.f_code.co_name)\n"
        "        frame = frame.f_back\n"
        "    print(where, names, file=out, flush=True)\n"
        "class Late:\n"
        "    def __del__(self, show=show):\n"
        "        show('finalizer')\n"
        "class Out:\n"
        "    def write(self, text):\n"
        "        return sys.__stdout__.write(text)\n"
        "    def flush(self, show=show):\n"
        "        show('flush')\n"
        "atexit.register(show, 'atexit')\n"
        "sys.excepthook = lambda *exc: show('excepthook')\n"
        "late = Late()\n"
        "cycle = Late()\n"
        "cycle.me = cycle\n"
        "del cycle\n"
        "sys.stdout = Out()\n"
        "raise ValueError\n"
    ),
}


def run(pools: SandboxPools, source: str, server: bool, stdin: bytes = b"") -> RunReport:
    job = python_job(
        source.encode(),
        server=None if server else (),
        stdin=stdin,
        cpu_ms=2000,
        mem_kb=256 * 1024,
        procs=8,
        nofile=64,
        stack_kb=65536,
        fsize_kb=1024,
        out_bytes=1 << 20,
    )
    report = pools.run(PYTHON.image, job, 30)
    assert report.status == "ok", report.error
    assert report.via == ("server" if server else "exec"), report.server_error
    return report


def seen(report: RunReport) -> tuple[int, int, bytes, bytes]:
    """What the program showed, with its (per-job) uid and object addresses made neutral."""

    def neutral(data: bytes) -> bytes:
        return re.sub(rb"0x[0-9a-f]+", b"0x", re.sub(rb"\b\d{4,10}\b", b"N", data))

    return report.exit_code, report.signal, neutral(report.stdout), neutral(report.stderr)


def test_a_forked_job_starts_exactly_like_an_execed_interpreter(pools: SandboxPools) -> None:
    exec_run = run(pools, STATE, server=False, stdin=b"line one\nrest\n")
    server_run = run(pools, STATE, server=True, stdin=b"line one\nrest\n")
    assert exec_run.exit_code == 0, exec_run.stderr
    assert seen(server_run) == seen(exec_run)
    # not vacuous: the probe printed the capabilities (none), its uid owns its /proc entry
    assert b"CapEff:\\t0000000000000000" in server_run.stdout
    # new threads get the stack glibc gives a process started under the job's 64 MB limit
    assert b"new threads' stack 67108864 (67108864, 67108864)" in server_run.stdout
    # __main__'s names in the order the interpreter makes them, and a user site under $HOME
    names = "__name__ __doc__ __package__ __loader__ __spec__ __annotations__ __builtins__"
    assert server_run.stdout.startswith(
        repr([*names.split(), "__file__", "__cached__", "gc"])[:-1].encode()
    )
    user_site = rb"\n(/box/\d+)/\.local \1/\.local/lib/python3\.\d+/site-packages True"
    assert re.search(user_site, exec_run.stdout), exec_run.stdout


def test_a_forked_job_sees_no_frame_below_its_own(pools: SandboxPools) -> None:
    """sys._getframe, inspect, traceback, warnings' stacklevel and faulthandler stop at the
    script's frame, as in a script the interpreter runs from C."""
    exec_run = run(pools, FRAMES, server=False)
    assert exec_run.exit_code == 0, exec_run.stderr
    assert seen(run(pools, FRAMES, server=True)) == seen(exec_run)
    assert b"no frame below the script's: call stack is not deep enough" in exec_run.stdout
    assert b"sys:1: UserWarning: at the top" in exec_run.stderr


def test_a_forked_jobs_stdin_is_what_it_is_a_pipe_from_an_interactor(
    pools: SandboxPools,
) -> None:
    """The standard streams are made for the job's own descriptors: with an interactor, stdin
    is a pipe, which cannot seek (the server's own stdin is /dev/null, which can)."""
    probe = (
        "import os, stat, sys\n"
        "for f in (sys.stdin, sys.stdout, sys.stderr):\n"
        "    raw = f.buffer.raw\n"
        "    print(f.seekable(), f.isatty(), f.line_buffering, f.write_through, f.mode,\n"
        "          f.encoding, f.errors, raw.name, raw.mode, raw._blksize, f.buffer.seekable(),\n"
        "          stat.S_ISFIFO(os.fstat(f.fileno()).st_mode), file=sys.stderr)\n"
        "print(input(), file=sys.stderr)\n"
        "print('bye', flush=True)\n"
    )
    partner = python_job(b"print('hello', flush=True)\ninput()\n", server=(), cpu_ms=2000)

    def paired(server: bool) -> RunReport:
        job = python_job(probe.encode(), server=None if server else (), cpu_ms=2000)
        report = pools.run(PYTHON.image, dataclasses.replace(job, partner=partner), 30)
        assert report.partner is not None and report.partner.exit_code == 0, report.partner
        assert report.via == ("server" if server else "exec"), report.server_error
        return report

    exec_run = paired(server=False)
    assert exec_run.stderr.startswith(b"False False False False r utf-8 strict <stdin> rb "), (
        exec_run.stderr
    )
    assert seen(paired(server=True)) == seen(exec_run)


def test_a_user_site_directory_is_processed_as_python3_does(pools: SandboxPools) -> None:
    """A submission may carry ``.local/lib/python3.X/site-packages`` (its $HOME is its work
    dir): python3 adds it to sys.path and runs its .pth files before the script. A fork cannot
    have done that when it started, so such a job is exec'ed, and runs as python3 runs it."""
    site_dir = ".local/lib/python3.11/site-packages"
    files = (
        File(f"{site_dir}/extra.pth", b"mods\nimport sys; print('pth ran', file=sys.stderr)\n"),
        File(f"{site_dir}/mods/helper.py", b"NAME = 'helper from the user site'\n"),
    )
    source = "import helper, sys\nprint(helper.NAME)\nprint(sys.path)\n"

    def with_user_site(server: bool) -> RunReport:
        job = python_job(source.encode(), server=None if server else (), cpu_ms=2000)
        job = dataclasses.replace(job, files=job.files + files)
        report = pools.run(PYTHON.image, job, 30)
        assert report.via == ("server" if server else "exec"), report.server_error
        return report

    exec_run = with_user_site(server=False)
    assert (exec_run.exit_code, exec_run.stderr) == (0, b"pth ran\n"), exec_run.stderr
    assert exec_run.stdout.startswith(b"helper from the user site\n")
    assert seen(with_user_site(server=True)) == seen(exec_run)


def test_a_job_whose_stack_limit_the_servers_layout_cannot_give_is_execed(
    pools: SandboxPools,
) -> None:
    """An exec'ed interpreter is laid out so that its main thread's stack can grow to its
    RLIMIT_STACK; a fork has its server's layout. A job whose limit does not fit there (4 TiB
    here, beyond any layout's room) is exec'ed: it runs as python3 with its own command line."""
    source = "print(open('/proc/self/cmdline', 'rb').read().split(b'\\0'))\n"
    reports = [
        pools.run(
            PYTHON.image,
            python_job(source.encode(), server=None if server else (), stack_kb=4 << 30),
            30,
        )
        for server in (False, True)
    ]
    for report in reports:
        assert report.stdout == b"[b'/usr/bin/python3', b'main.py', b'']\n", report.stderr
    assert [r.via for r in reports] == ["exec", "server"]


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_a_forked_job_ends_exactly_like_an_execed_interpreter(
    pools: SandboxPools, name: str
) -> None:
    source = ENDINGS[name]
    expected = seen(run(pools, source, server=False))
    assert seen(run(pools, source, server=True)) == expected


@pytest.mark.parametrize("name", sorted(IDIOMS))
def test_contestants_idioms_run_exactly_as_under_an_execed_interpreter(
    pools: SandboxPools, name: str
) -> None:
    source, stdin = IDIOMS[name]
    expected = seen(run(pools, source, server=False, stdin=stdin))
    assert seen(run(pools, source, server=True, stdin=stdin)) == expected


def test_serving_jobs_changes_nothing_a_later_job_inherits(
    pools: SandboxPools, docker_client: docker.DockerClient
) -> None:
    """Every job is a copy of the server as it stood when it started: serving jobs writes
    nothing into the server, so a job's memory figure does not depend on how many jobs its
    sandbox ran before (seen from the host, where the server's /proc entry is readable)."""
    run(pools, "print('started')\n", server=True)
    spec = pools.specs[PYTHON.image]
    (container,) = docker_client.containers.list(
        filters={"label": [f"{LABEL_OWNER}={spec.owner}", f"{LABEL_IMAGE}={spec.image}"]}
    )
    (server,) = [
        pid
        for pid, args in docker_client.api.top(container.id, "-eo pid,args")["Processes"]
        if "forkserver" in args
    ]

    def memory() -> list[str]:
        with open(f"/proc/{server}/smaps_rollup") as f:
            return [line for line in f if line.startswith(("Rss", "Anonymous", "Private"))]

    before = memory()
    for name in sorted(IDIOMS) * 2:
        source, stdin = IDIOMS[name]
        run(pools, source, server=True, stdin=stdin)
    assert memory() == before


def test_forked_jobs_get_fresh_randomness(pools: SandboxPools) -> None:
    source = "import os, random\nprint(random.random(), os.urandom(8).hex())\n"
    outputs = {run(pools, source, server=True).stdout for _ in range(3)}
    assert len(outputs) == 3


def test_a_job_cannot_signal_or_inspect_the_fork_server(pools: SandboxPools) -> None:
    """The server is not in the job's PID namespace: its /proc shows the job and its cell's
    init alone, and no pid of the job's reaches the server."""
    source = (
        "import os\n"
        "me = os.getpid()  # a forked job looks like its server\n"
        "for pid in (int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me):\n"
        "    print(pid, open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[0])\n"
    )
    report = run(pools, source, server=True)
    assert report.stdout == b"1 b'/opt/runner/supervisor'\n", report.stderr
    assert run(pools, "print('still served')\n", server=True).stdout == b"still served\n"


def test_a_broken_fork_server_falls_back_to_exec_and_is_logged(pools: SandboxPools) -> None:
    broken = dataclasses.replace(PYTHON, forkserver=("/nonexistent/python3",))
    program = Program(broken, (File("main.py", b"print(input())\n"),))
    with capture_logs() as logs:
        result = Judge(pools).run_test(
            program, TestCase("t", b"hello\n", b"hello\n"), FAST, Comparison()
        )
    assert result.verdict == Verdict.AC, result
    (event,) = [e for e in logs if e["event"] == "sandbox.forkserver_unused"]
    assert "did not start" in event["reason"]
    # the image's own server is started again for the next job that asks for it
    assert run(pools, "print('back')\n", server=True).stdout == b"back\n"


def test_limits_are_enforced_on_forked_jobs(judge: Judge) -> None:
    """The supervisor watches a forked job as it watches an exec'ed one (memory, CPU)."""
    program = judge.compile(PYTHON, b"x = bytearray(200 * 1024 * 1024)\nprint(len(x))\n").program
    assert program is not None
    hog = judge.run_test(program, TestCase("m", b"", None), FAST, Comparison())
    assert hog.verdict == Verdict.MLE, hog
    spin = judge.compile(PYTHON, b"while True:\n    pass\n").program
    assert spin is not None
    busy = judge.run_test(spin, TestCase("c", b"", None), FAST, Comparison())
    assert busy.verdict == Verdict.TLE, busy
    assert busy.cpu_time_ms >= FAST.cpu_time_ms


def test_a_fork_server_that_stops_answering_fails_the_job_and_recycles_the_sandbox(
    pools: SandboxPools,
) -> None:
    """The job may exist half set up, even as root: no uid cleanup can be trusted to find it."""
    mute = (
        "/usr/bin/python3",
        "-c",
        # keeps its end of the socket open (a closed one would read as a dead server)
        "import socket, time\nserver = socket.socket(fileno=3)\nserver.send(b'ready')\n"
        "time.sleep(600)\n",
    )
    job = python_job(b"print('never')\n", server=mute)
    image = pools.specs[PYTHON.image].image
    (before,) = [s for s in pools.state() if s["image"] == image]
    report = pools.run(PYTHON.image, job, 30)
    assert (report.status, report.error) == ("error", "fork server did not answer")
    assert report.cleanup == "the fork server failed during a job"
    (after,) = [s for s in pools.state() if s["image"] == image]
    assert after["recycles"] != before["recycles"]
    assert run(pools, "print('fresh sandbox')\n", server=True).stdout == b"fresh sandbox\n"
