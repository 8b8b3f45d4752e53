"""Soak: thousands of jobs alternating hostile and honest programs on the same sandboxes. Every
honest job gets exactly the verdict, output and memory figure it gets as the first job of a
fresh sandbox, whatever the hostile jobs before it left, changed or broke."""

from __future__ import annotations

import os
import textwrap
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import docker
import pytest

from tests.conftest import started_pools
from tests.sandbox.idioms import IDIOMS
from worker.compare import Comparison
from worker.contract import Limits, TestCase, TestResult, Verdict
from worker.judging.judge import Judge, Program
from worker.languages import LANGUAGES
from worker.sandbox.container import Sandbox
from worker.sandbox.pool import UidSource
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import Job, RunReport
from worker.settings import Settings

pytestmark = pytest.mark.docker

# 5,000 by default (the figure); RUNNER_SOAK_JOBS trims it for a quick local look.
JOBS = int(os.environ.get("RUNNER_SOAK_JOBS", "5000"))
LIMITS = Limits(cpu_time_ms=1000, wall_time_ms=3000, memory_mb=96, output_kb=64, processes=8)
SHORT = LIMITS.model_copy(update={"cpu_time_ms": 60})  # for the hostile programs that spin
FRESH = 4  # fresh sandboxes each honest job runs on, for the reference
# How much one program's memory figure varies between fresh sandboxes by itself (where the
# kernel places its mappings, and which file pages it maps around a fault, vary): measured
# here, up to about 550 KB across eight fresh sandboxes and 250 KB beyond their range over a
# soak. Whatever a hostile job could leave behind is megabytes.
NOISE_KB = 512

# One hostile C program, its attack chosen by its input: each leaves something behind for the
# next job or takes something from it (memory, /dev/shm, /tmp, processes, descriptors, the OOM
# killer's choice, per-user budgets), hides what it uses from what processes show (children the
# kernel reaps, data the kernel holds), or ends badly (limits, signals, its cell's processes
# killed).
HOSTILE_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
static void fill(const char *dir, int files) { /* 64 KB each, then the dir locked */
    char path[256], chunk[1 << 16];
    memset(chunk, 'z', sizeof chunk);
    mkdir(dir, 0700);
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/%d", dir, i);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        if (fd < 0 || write(fd, chunk, sizeof chunk) != sizeof chunk) break;
        close(fd);
    }
    chmod(dir, 0311);
}
int main(void) {
    char what[16] = {0};
    if (scanf("%15s", what) != 1) return 9;
    if (!strcmp(what, "sysv")) { /* 64 MB given away to another owner, a queue, semaphores */
        int id = shmget(0x50a6, 64 << 20, IPC_CREAT | 0666);
        char *p = (char *)shmat(id, 0, 0);
        memset(p, 1, 64 << 20);
        shmdt(p);
        struct shmid_ds ds;
        shmctl(id, IPC_STAT, &ds);
        ds.shm_perm.uid = 0;
        shmctl(id, IPC_SET, &ds);
        msgget(0x50a6, IPC_CREAT | 0666);
        semget(0x50a6, 4, IPC_CREAT | 0666);
    } else if (!strcmp(what, "shm")) { /* until the memory limit ends it */
        fill("/dev/shm/locked", 1 << 20);
    } else if (!strcmp(what, "tmp")) {
        fill("/tmp/locked", 512);
    } else if (!strcmp(what, "workdir")) { /* its own dir locked from the inside */
        fill("held", 512);
        chmod(".", 0);
    } else if (!strcmp(what, "sleeper")) {
        if (fork() == 0) { setsid(); if (fork() == 0) { close(1); sleep(60); } _exit(0); }
    } else if (!strcmp(what, "oom")) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY);
        if (fd >= 0) write(fd, "-1000", 5);
    } else if (!strcmp(what, "hog")) { /* MLE */
        for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); }
    } else if (!strcmp(what, "forks")) {
        for (int i = 0; i < 64; i++) if (fork() == 0) { pause(); }
    } else if (!strcmp(what, "killall")) {
        kill(-1, SIGKILL);
    } else if (!strcmp(what, "segv")) {
        raise(SIGSEGV);
    } else if (!strcmp(what, "spin")) {
        for (volatile long i = 0;; i++) {}
    } else if (!strcmp(what, "ignchld")) { /* children the kernel reaps, burning CPU: TLE */
        signal(SIGCHLD, SIG_IGN);
        for (;;) if (fork() == 0) { for (volatile long i = 0; i < 100000000L; i++) {} _exit(0); }
    } else if (!strcmp(what, "msgq")) { /* kernel memory in SysV queues: MLE */
        static struct { long type; char text[8000]; } m = {1, {0}};
        for (int q; (q = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) >= 0;)
            for (int k = 0; k < 2; k++) msgsnd(q, &m, sizeof m.text, IPC_NOWAIT);
        pause();
    } else if (!strcmp(what, "sockbuf")) { /* in Unix socket buffers: MLE */
        static char chunk[1 << 16];
        for (int i = 0; i < 60; i++) {
            int sv[2], big = 4 << 20;
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) break;
            setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
            fcntl(sv[0], F_SETFL, O_NONBLOCK);
            while (write(sv[0], chunk, sizeof chunk) > 0) {}
        }
        pause();
    } else if (!strcmp(what, "xattr")) { /* in extended attributes of its own file: MLE */
        static char value[60000];
        int fd = open("x", O_CREAT | O_RDWR, 0600);
        char name[32];
        for (int i = 0; i < 4000; i++) {
            snprintf(name, sizeof name, "user.%d", i);
            if (fsetxattr(fd, name, value, sizeof value, 0) < 0) break;
        }
        pause();
    } else if (!strcmp(what, "inotify")) { /* every inotify instance it may have */
        while (inotify_init1(0) >= 0) {}
    } else if (!strcmp(what, "aio")) { /* the host's AIO budget: refused */
        unsigned long ctx = 0;
        if (syscall(SYS_io_setup, 65536, &ctx) == 0) return 8;
    } else if (!strcmp(what, "stdin")) { /* make room by shrinking its input: refused */
        if (ftruncate(0, 0) == 0 || write(0, "x", 1) == 1) return 7;
    }
    puts(what);
    return 0;
}
"""
# what each attack is judged: the same every time, whatever came before
HOSTILE_VERDICTS = {
    **{
        f"c:{a}": Verdict.AC
        for a in ("sysv", "tmp", "workdir", "sleeper", "oom", "forks", "killall")
    },
    "c:shm": Verdict.MLE,
    "c:hog": Verdict.MLE,
    "c:segv": Verdict.RE,
    "c:spin": Verdict.TLE,
    "c:ignchld": Verdict.TLE,
    **{f"c:{attack}": Verdict.MLE for attack in ("msgq", "sockbuf", "xattr")},
    **{f"c:{attack}": Verdict.AC for attack in ("inotify", "aio", "stdin")},
    **{f"py:{attack}": Verdict.AC for attack in ("sysv", "state", "threads", "sleeper")},
    **{f"py:{attack}": Verdict.RE for attack in ("killall", "atexit_crash", "fds")},
    "py:shm_full": Verdict.MLE,
    "py:hog": Verdict.MLE,
    "py:flood": Verdict.OLE,
}
ATTACKS_C = [name[2:] for name in HOSTILE_VERDICTS if name.startswith("c:")]

# The same in Python, through the fork server: what a job could do to the server's copy of
# the interpreter or to the next forked job.
HOSTILE_PY = {
    "sysv": (
        "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "seg = libc.shmget(0x50a7, 32 << 20, 0o1666)\naddr = libc.shmat(seg, None, 0)\n"
        "ctypes.memset(addr, 1, 32 << 20)\n"
    ),
    "shm_full": (
        "import os\nos.mkdir('/dev/shm/x')\ntry:\n    for i in range(10 ** 4):\n"
        "        open(f'/dev/shm/x/{i}', 'wb').write(b'z' * (1 << 16))\nexcept OSError:\n"
        "    pass\nos.chmod('/dev/shm/x', 0o311)\n"
    ),
    "state": (  # what a forked job changes in its copy of the server's interpreter
        "import sys, os, builtins, random, io\nbuiltins.print = None\nsys.modules['os'] = None\n"
        "sys.setrecursionlimit(50)\nsys.stdout = io.StringIO()\nrandom.seed(1)\n"
        "os.environ['PYTHONHASHSEED'] = '1'\nos.chdir('/')\n"
    ),
    "threads": (  # daemon threads still at work as the job ends
        "import threading, sys, time\ndef spam():\n    for _ in range(1000):\n"
        "        sys.stdout.write('x')\n    time.sleep(60)\n"
        "for _ in range(4):\n    threading.Thread(target=spam, daemon=True).start()\n"
    ),
    "flood": "while True:\n    print('x' * 1000)\n",
    "sleeper": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n",
    "killall": "import os\nos.kill(-1, 9)\n",
    "hog": "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n",
    "atexit_crash": (
        "import atexit, os\natexit.register(lambda: os.kill(os.getpid(), 11))\nprint('bye')\n"
    ),
    "fds": "import os\nfds = [os.open('/dev/null', os.O_RDONLY) for _ in range(900)]\n",
}

# Honest programs, each with its input: allocations, scratch files, shared memory used the
# intended way, and contestants' own idioms.
HONEST_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
int main(void) {
    long mb, sum = 0;
    if (scanf("%ld", &mb) != 1) return 9;
    volatile char *p = malloc(mb << 20);
    for (long i = 0; i < mb << 20; i += 4096) p[i] = 1;
    for (long i = 0; i < mb << 20; i += 4096) sum += p[i];
    FILE *f = fopen("/tmp/scratch", "w");
    fprintf(f, "%ld", sum);
    fclose(f);
    int id = shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0600);
    char *s = (char *)shmat(id, 0, 0);
    memset(s, 2, 1 << 20);
    shmdt(s);
    shmctl(id, IPC_RMID, 0);
    printf("%ld\n", sum);
    return 0;
}
"""
HONEST_C_INPUTS = (b"8\n", b"40\n", b"70\n")

HONEST_PY = {
    "allocate": (
        "import sys\nn = int(sys.stdin.readline())\ndata = bytearray(n << 20)\n"
        "for i in range(0, len(data), 4096):\n    data[i] = 1\nprint(sum(data[::4096]))\n",
        b"40\n",
    ),
    "scratch": (
        "import multiprocessing, os, tempfile\nlock = multiprocessing.Lock()\n"
        "with tempfile.NamedTemporaryFile('w+') as f:\n    f.write('x' * 60000)\n"
        "    f.seek(0)\n    print(len(f.read()), len(os.listdir('/dev/shm')))\n",
        b"",
    ),
    **{
        name: IDIOMS[name]
        for name in (
            "fastio",
            "atexit_stringio",
            "recursion_default_limit",
            "thread_stack_size_trick",
            "exit_huge",
        )
    },
}


@dataclass(frozen=True)
class Seen:
    """What an honest job must get the same on a reused sandbox as on a fresh one."""

    verdict: Verdict
    stdout: str
    exit_code: int | None
    memory_kb: int

    @classmethod
    def of(cls, result: TestResult) -> Seen:
        return cls(result.verdict, result.stdout, result.exit_code, result.memory_kb)


class FreshSandboxes:
    """A runner that gives every job a sandbox of its own, started for it, with the pools'
    settings: the reference a reused sandbox must be indistinguishable from."""

    def __init__(self, client: docker.DockerClient, pools: SandboxPools, uid_base: int) -> None:
        self._client = client
        self._pools = pools
        self._uids = UidSource(uid_base)

    def run(self, image: str, job: Job, deadline: float) -> RunReport:
        spec = self._pools.specs[image]
        sandbox = Sandbox(self._client, spec)
        try:
            sandbox.ping()
            return sandbox.run(
                replace(job, uid=self._uids.take(), isolation=spec.isolation), deadline
            )
        finally:
            sandbox.remove()

    def identity(self, image: str) -> str:
        return self._pools.identity(image)

    def state(self) -> list[dict[str, object]]:
        return []

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def soaked(
    docker_client: docker.DockerClient, images: dict[str, str], settings: Settings
) -> Iterator[SandboxPools]:
    """One sandbox per image, never recycled for the length of the soak."""
    kinds = ["gcc", "native", "python"]
    with started_pools(docker_client, settings, images=kinds, max_jobs=10 * JOBS) as pools:
        yield pools


Stream = list[tuple[str, Program, bytes, Limits]]  # (name, program, stdin, limits)


def streams(judge: Judge) -> tuple[Stream, Stream, Stream]:
    """The hostile and honest jobs of each language, compiled once."""

    def program(language: str, source: str) -> Program:
        compiled = judge.compile(LANGUAGES[language], textwrap.dedent(source).encode())
        assert compiled.program is not None, compiled
        return compiled.program

    hostile_c, honest_c = program("c", HOSTILE_C), program("c", HONEST_C)
    hostile: Stream = [
        (f"c:{a}", hostile_c, a.encode(), SHORT if a in ("spin", "ignchld") else LIMITS)
        for a in ATTACKS_C
    ]
    hostile_py: Stream = [
        (f"py:{name}", program("python", source), b"", LIMITS)
        for name, source in HOSTILE_PY.items()
    ]
    honest: Stream = [(f"c:{stdin!r}", honest_c, stdin, LIMITS) for stdin in HONEST_C_INPUTS]
    honest += [
        (f"py:{name}", program("python", source), stdin, LIMITS)
        for name, (source, stdin) in HONEST_PY.items()
    ]
    return hostile, hostile_py, honest


def run(judge: Judge, job: tuple[str, Program, bytes, Limits]) -> TestResult:
    name, program, stdin, limits = job
    return judge.run_test(program, TestCase(name, stdin, None), limits, Comparison())


def test_honest_jobs_after_hostile_ones_get_what_a_fresh_sandbox_gives(
    soaked: SandboxPools, docker_client: docker.DockerClient, settings: Settings
) -> None:
    judge = Judge(soaked)
    hostile_c, hostile_py, honest = streams(judge)
    rounds = {
        "native": (hostile_c, [job for job in honest if job[0].startswith("c:")]),
        "python": (hostile_py, [job for job in honest if job[0].startswith("py:")]),
    }
    hostile_seen: dict[str, set[Verdict]] = defaultdict(set)
    honest_seen: dict[str, list[Seen]] = defaultdict(list)

    def soak(image: str) -> None:
        attacks, honest_jobs = rounds[image]
        for i in range(JOBS // 4):  # two images, each a hostile and an honest job a round
            bad = attacks[i % len(attacks)]
            hostile_seen[bad[0]].add(run(judge, bad).verdict)
            good = honest_jobs[i % len(honest_jobs)]
            honest_seen[good[0]].append(Seen.of(run(judge, good)))

    with ThreadPoolExecutor(2) as executor:
        list(executor.map(soak, rounds))

    # every job on the same two sandboxes: none broke, none was recycled
    for state in soaked.state():
        assert (state["created"], state["recycles"]) == (1, {}), state
    assert {name: sorted(v) for name, v in hostile_seen.items()} == {
        name: [verdict] for name, verdict in HOSTILE_VERDICTS.items()
    }

    fresh_judge = Judge(FreshSandboxes(docker_client, soaked, settings.job_uid_base))
    with ThreadPoolExecutor(2) as executor:
        fresh_runs = list(executor.map(lambda job: Seen.of(run(fresh_judge, job)), honest * FRESH))
    fresh: dict[str, list[Seen]] = defaultdict(list)
    for job, seen in zip(honest * FRESH, fresh_runs, strict=True):
        fresh[job[0]].append(seen)

    for name, reference in fresh.items():
        shown = {(s.verdict, s.stdout, s.exit_code) for s in reference}
        assert len(shown) == 1, (name, reference)  # the programs are deterministic
        low = min(s.memory_kb for s in reference) - NOISE_KB
        high = max(s.memory_kb for s in reference) + NOISE_KB
        for seen in honest_seen[name]:
            assert {(seen.verdict, seen.stdout, seen.exit_code)} == shown, (name, seen)
            assert low <= seen.memory_kb <= high, (name, seen.memory_kb, reference)
