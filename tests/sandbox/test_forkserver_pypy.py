"""PyPy's fork server (images/pypy/forkserver.py) against real sandboxes: a job it forks must
look, behave and end exactly like ``pypy3 main.py`` exec'ed by the supervisor, byte for byte,
but for what the server's docstring lists (and STATE leaves out): /proc/self/cmdline and
environ, the garbage collector's statistics, the CPU time of the start."""

from __future__ import annotations

import dataclasses
import difflib

import pytest

from tests.sandbox.helpers import FAST
from tests.sandbox.idioms import IDIOMS
from tests.sandbox.test_forkserver import ENDINGS, seen
from worker.compare import Comparison
from worker.contract import TestCase, Verdict
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.programs import File
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import Job, RunReport

pytestmark = pytest.mark.docker

PYPY = LANGUAGES["pypy"]

# Everything a program can see of how it was started.
STATE = r"""
import gc, os, resource, signal, site, sys
print(list(globals()))
print(__file__, __name__, __package__, __spec__, __cached__, __doc__, __loader__, __builtins__)
print(type(__loader__).__name__, __loader__.name, __loader__.path, __annotations__)
print(sys.argv, sys.path, sys.flags, sys.executable, sys.warnoptions, sys.dont_write_bytecode)
print(sorted(sys.modules))
print(list(vars(sys.modules["__main__"])) == list(globals()))
print(list(os.environ.items()))
print(sorted(sys.modules["posix"].environ.items()))
print(os.getcwd(), os.getresuid(), os.getresgid(), os.getgroups(), os.umask(0o22))
print(os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid(), os.stat("/proc/self").st_uid)
print(open("/proc/self/oom_score_adj").read().strip())
print([(n, resource.getrlimit(getattr(resource, n))) for n in dir(resource) if n[:7] == "RLIMIT_"])
print(sorted(os.listdir("/proc/self/fd")))
print([signal.getsignal(s) for s in range(1, signal.NSIG)])
print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
for f in (sys.stdin, sys.stdout, sys.stderr):
    raw = f.buffer.raw
    print(f.encoding, f.errors, f.line_buffering, f.write_through, f.seekable(), f.isatty(),
          f.mode, raw.name, raw.mode, f.buffer.seekable(), f.fileno())
print(sys.stdin is sys.__stdin__, sys.stdout is sys.__stdout__, sys.stderr is sys.__stderr__)
print([line for line in open("/proc/self/status") if line[:3] in ("Cap", "NoN", "Sec")])
print(gc.isenabled(), sys.getrecursionlimit(), sys.getswitchinterval())
print(site.USER_BASE, site.USER_SITE, site.ENABLE_USER_SITE, os.getppid())
print(input(), sys.stdin.read())
import _thread, threading  # noqa: E402 - after sys.modules was printed
print(_thread.stack_size(), threading.current_thread() is threading.main_thread(),
      threading.active_count(), threading.main_thread().name)
import ctypes  # noqa: E402
attr = ctypes.create_string_buffer(256)
size = ctypes.c_size_t()
libc = ctypes.CDLL(None)
libc.pthread_getattr_default_np(attr)
libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
print("new threads' stack", size.value, resource.getrlimit(resource.RLIMIT_STACK))
"""

# What a program sees below its own frames: nothing, as app_main's frames are hidden.
FRAMES = r"""
import inspect, sys, traceback, warnings
try:
    sys._getframe(1)
except ValueError as exc:
    print("no frame below the script's:", exc)
print(sys._getframe().f_back, [(f.function, f.lineno) for f in inspect.stack()])
traceback.print_stack()
warnings.warn("at the top", stacklevel=2)
def nested():
    warnings.warn("two up", stacklevel=3)
nested()
"""

# How deep a program can recurse, at the default limit and at a raised one, and how a stack
# overflow ends: the depth counts every frame below, hidden ones too.
DEPTH = r"""
import sys
def down(n):
    try:
        return down(n + 1)
    except RecursionError:
        return n
print(down(0), flush=True)
sys.setrecursionlimit(20000)
print(down(0), flush=True)
"""

PYPY_ENDINGS = {
    **ENDINGS,
    "depth": DEPTH,
    "overflow": "import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n): return f(n + 1) + 1\nf(0)\n",
    "memory": "x = [0] * (100 * 1024 * 1024)\nprint(len(x))\n",
    "unclosed": (
        "f = open('out.txt', 'w')\nf.write('kept')\n"
        "out = open(1, 'w')\nout.write('via fd 1\\n')\nprint('print')\n"
    ),
    "thread_exception": (
        "import threading\n"
        "def boom():\n    raise ValueError('in a thread')\n"
        "t = threading.Thread(target=boom)\nt.start()\nt.join()\nprint('after')\n"
    ),
    "daemon": (
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(10,), daemon=True).start()\nprint('main')\n"
    ),
    "missing_module": "import no_such_module\n",
    "null_byte": "print('a')\0\n",
}


def pypy_job(source: bytes, server: bool, stdin: bytes = b"", **limits: int) -> Job:
    return Job(
        uid=0,
        argv=PYPY.command("main.py"),
        env=PYPY.job_env,
        files=(File("main.py", source),),
        server=PYPY.forkserver if server else (),
        stdin=stdin,
        **{
            "wall_ms": 10_000,
            "cpu_ms": 5000,
            "mem_kb": 512 * 1024,
            "procs": 8,
            "nofile": 64,
            "stack_kb": 65536,
            "fsize_kb": 1024,
            "out_bytes": 1 << 20,
            **limits,
        },
    )


def run(
    pools: SandboxPools, source: str, server: bool, stdin: bytes = b"", **limits: int
) -> RunReport:
    report = pools.run(PYPY.image, pypy_job(source.encode(), server, stdin, **limits), 60)
    assert report.status == "ok", report.error
    assert report.via == ("server" if server else "exec"), report.server_error
    return report


def same(server_run: RunReport, exec_run: RunReport) -> None:
    """The two runs seen alike, or the lines where they differ."""
    forked, execed = seen(server_run), seen(exec_run)
    if forked != execed:
        lines = difflib.unified_diff(
            [repr(part) for part in execed[:2]]
            + execed[2].decode(errors="replace").splitlines()
            + ["--- stderr"]
            + execed[3].decode(errors="replace").splitlines(),
            [repr(part) for part in forked[:2]]
            + forked[2].decode(errors="replace").splitlines()
            + ["--- stderr"]
            + forked[3].decode(errors="replace").splitlines(),
            "exec'ed",
            "forked",
            lineterm="",
        )
        pytest.fail("\n".join(lines))


def test_a_forked_pypy_job_starts_exactly_like_an_execed_pypy3(pools: SandboxPools) -> None:
    exec_run = run(pools, STATE, server=False, stdin=b"line one\nrest\n")
    server_run = run(pools, STATE, server=True, stdin=b"line one\nrest\n")
    assert exec_run.exit_code == 0, exec_run.stderr
    same(server_run, exec_run)
    # not vacuous: the probe printed the capabilities (none), the threads' stack of a start
    assert b"CapEff:\\t0000000000000000" in server_run.stdout
    assert b"new threads' stack 67108864 (67108864, 67108864)" in server_run.stdout


def test_a_forked_pypy_job_sees_no_frame_below_its_own(pools: SandboxPools) -> None:
    exec_run = run(pools, FRAMES, server=False)
    assert exec_run.exit_code == 0, exec_run.stderr
    same(run(pools, FRAMES, server=True), exec_run)
    assert b"no frame below the script's" in exec_run.stdout


@pytest.mark.parametrize("name", sorted(PYPY_ENDINGS))
def test_a_forked_pypy_job_ends_exactly_like_an_execed_pypy3(
    pools: SandboxPools, name: str
) -> None:
    source = PYPY_ENDINGS[name]
    same(run(pools, source, server=True), run(pools, source, server=False))


@pytest.mark.parametrize("name", sorted(IDIOMS))
def test_contestants_idioms_run_in_pypy_exactly_as_under_an_execed_pypy3(
    pools: SandboxPools, name: str
) -> None:
    source, stdin = IDIOMS[name]
    same(
        run(pools, source, server=True, stdin=stdin), run(pools, source, server=False, stdin=stdin)
    )


def test_a_forked_pypy_job_is_not_vacuously_alike(pools: SandboxPools) -> None:
    """The probes ran what they say: the depth a program reaches, and its traceback."""
    depth = run(pools, DEPTH, server=True)
    low, high = map(int, depth.stdout.split())
    assert 900 < low < high, depth.stdout  # PyPy counts its JIT-inlined frames its own way
    ended = run(pools, ENDINGS["traceback"], server=True)
    assert ended.exit_code == 1
    assert ended.stderr.startswith(b'Traceback (most recent call last):\n  File "/box/')


def test_forked_pypy_jobs_get_fresh_randomness(pools: SandboxPools) -> None:
    source = "import os, random\nprint(random.random(), os.urandom(8).hex())\n"
    outputs = {run(pools, source, server=True).stdout for _ in range(3)}
    assert len(outputs) == 3


def test_a_pypy_job_cannot_signal_or_inspect_the_fork_server(pools: SandboxPools) -> None:
    source = (
        "import os\n"
        "me = os.getpid()\n"
        "for pid in (int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me):\n"
        "    print(pid, open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[0])\n"
    )
    report = run(pools, source, server=True)
    assert report.stdout == b"1 b'/opt/runner/supervisor'\n", report.stderr


def test_what_a_fork_cannot_give_is_execed(pools: SandboxPools) -> None:
    """A stack limit beyond the server's layout, and a user site directory under $HOME (its
    work dir): pypy3 is exec'ed from the job, as the exec path would."""
    source = "import sys\nprint(open('/proc/self/cmdline', 'rb').read().split(b'\\0'), sys.path)\n"
    deep = run(pools, source, server=True, stack_kb=4 << 30)
    assert deep.stdout.startswith(b"[b'/usr/bin/pypy3', b'main.py', b'']"), deep.stderr
    site_dir = ".local/lib/pypy3.9/site-packages"
    job = pypy_job(source.encode(), server=True)
    job = dataclasses.replace(job, files=(*job.files, File(f"{site_dir}/x.pth", b"\n")))
    report = pools.run(PYPY.image, job, 60)
    assert report.via == "server", report.server_error
    assert report.stdout.startswith(b"[b'/usr/bin/pypy3', b'main.py', b'']"), report.stderr
    assert b"/.local/lib/pypy3.9/site-packages" in report.stdout


def test_limits_are_enforced_on_forked_pypy_jobs(judge: Judge) -> None:
    pypy = LANGUAGES["pypy"]
    program = judge.compile(pypy, b"x = bytearray(300 * 1024 * 1024)\nprint(len(x))\n").program
    assert program is not None
    hog = judge.run_test(program, TestCase("m", b"", None), FAST, Comparison())
    assert hog.verdict == Verdict.MLE, hog
    spin = judge.compile(pypy, b"while True:\n    pass\n").program
    assert spin is not None
    busy = judge.run_test(spin, TestCase("c", b"", None), FAST, Comparison())
    assert busy.verdict == Verdict.TLE, busy
    assert busy.cpu_time_ms >= FAST.cpu_time_ms
