"""What the kernel charges is what a job is judged by: CPU time from the sandbox's cgroup, so
no way of spawning or reaping hides any; memory from what the kernel holds for the job, so
no data parked in kernel buffers escapes its limit; each job alone on its network and its
/proc; no budget of the host or of another sandbox within a job's reach. Real sandboxes; each
program stores its data and checks it, so a figure that misses it would judge it AC."""

from __future__ import annotations

import ctypes
import os
import textwrap
import threading
import time
from dataclasses import replace

import pytest

from tests.sandbox.helpers import compile_static, judge_source, native, python_job
from worker.contract import Limits, TestResult, Verdict
from worker.judging.judge import Judge
from worker.programs import File
from worker.sandbox.pools import SandboxPools

pytestmark = pytest.mark.docker

TIGHT = Limits(cpu_time_ms=1000, wall_time_ms=6000, memory_mb=32, output_kb=64, processes=8)


def judged(judge: Judge, language: str, source: str, limits: Limits = TIGHT) -> TestResult:
    (result,) = judge_source(judge, language, textwrap.dedent(source), limits=limits)
    return result


# ------------------------------------------------------------------------------------ CPU


# Children burn CPU one after another while the parent ignores SIGCHLD: the kernel reaps them
# itself, so their time reaches no wait4 of any ancestor (about 2.5 s under a 1 s limit).
IGNORED_CHILDREN_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static void burn(void) {
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 250000000UL; i++) x += i;
}
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = FLAGS;
    sigaction(SIGCHLD, &sa, NULL);
    for (int i = 0; i < 10; i++) {
        pid_t pid = fork();
        if (pid == 0) { burn(); _exit(0); }
        while (kill(pid, 0) == 0) usleep(1000);
    }
    puts("done");
    return 0;
}
"""

IGNORED_CHILDREN_PY = """
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for _ in range(10):
    pid = os.fork()
    if pid == 0:
        x = 0
        for i in range(3_000_000):
            x += i
        os._exit(0)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.001)
print("done")
"""


@pytest.mark.parametrize("flags", ["0", "SA_NOCLDWAIT"])
def test_cpu_of_children_the_kernel_reaps_counts_in_c(judge: Judge, flags: str) -> None:
    result = judged(judge, "c", IGNORED_CHILDREN_C.replace("FLAGS", flags))
    assert result.verdict == Verdict.TLE, result
    assert result.cpu_time_ms >= TIGHT.cpu_time_ms


def test_cpu_of_children_the_kernel_reaps_counts_in_python(judge: Judge) -> None:
    result = judged(judge, "python", IGNORED_CHILDREN_PY)
    assert result.verdict == Verdict.TLE, result
    assert result.cpu_time_ms >= TIGHT.cpu_time_ms


def test_honest_cpu_time_is_what_the_program_itself_used(judge: Judge) -> None:
    """The cgroup's figure for a program that hides nothing is its own CPU time, the program's
    start included (a few milliseconds), never the supervisor's watching."""
    result = judged(
        judge,
        "python",
        """
        import resource
        x = 0
        for i in range(4_000_000):
            x += i
        own = resource.getrusage(resource.RUSAGE_SELF)
        print(round(1000 * (own.ru_utime + own.ru_stime)))
        """,
        TIGHT.model_copy(update=dict(cpu_time_ms=5000, memory_mb=64)),
    )
    assert result.verdict == Verdict.AC, result
    own_ms = int(result.stdout)
    assert own_ms <= result.cpu_time_ms <= own_ms + 25, (own_ms, result.cpu_time_ms)


# ------------------------------------------------------------------------------------ memory

# Each stores its data in the kernel, reads it back and checks it; 32 MB limit.
KERNEL_HELD_C = {
    "message queues": r"""
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
struct { long type; char text[8000]; } msg;
int main(void) {
    static int ids[12000];
    int n = 0;
    for (; n < 12000; n++) { /* 16 KB a queue: 190 MB in all */
        ids[n] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        if (ids[n] < 0) break;
        msg.type = 1;
        memset(msg.text, 'a' + n % 26, sizeof msg.text);
        if (msgsnd(ids[n], &msg, sizeof msg.text, IPC_NOWAIT) < 0) break;
        if (msgsnd(ids[n], &msg, sizeof msg.text, IPC_NOWAIT) < 0) break;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            if (msgrcv(ids[i], &msg, sizeof msg.text, 0, IPC_NOWAIT) < 0
                || msg.text[100] != 'a' + i % 26)
                return puts("lost");
    printf("kept %d MB\n", n * 16 / 1024);
    return 0;
}
""",
    "unix sockets": r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static char buf[65536];
int main(void) {
    int pairs[100][2], n = 0;
    long total = 0;
    for (; n < 100 && total < (200L << 20); n++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[n]) < 0) break;
        int size = 4 << 20;
        setsockopt(pairs[n][0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        fcntl(pairs[n][0], F_SETFL, O_NONBLOCK);
        memset(buf, 'a' + n % 26, sizeof buf);
        for (long w; (w = write(pairs[n][0], buf, sizeof buf)) > 0;) total += w;
    }
    for (int i = 0; i < n; i++) {
        fcntl(pairs[i][1], F_SETFL, O_NONBLOCK);
        if (read(pairs[i][1], buf, 1000) != 1000 || buf[999] != 'a' + i % 26) return puts("lost");
    }
    printf("kept %ld MB\n", total >> 20);
    return 0;
}
""",
    "pipes": r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char buf[65536];
int main(void) {
    int pipes[200][2], n = 0;
    long total = 0;
    for (; n < 200; n++) {
        if (pipe(pipes[n]) < 0) break;
        fcntl(pipes[n][1], F_SETPIPE_SZ, 1 << 20);
        fcntl(pipes[n][1], F_SETFL, O_NONBLOCK);
        memset(buf, 'a' + n % 26, sizeof buf);
        long before = total;
        for (long w; (w = write(pipes[n][1], buf, sizeof buf)) > 0;) total += w;
        if (total == before) break;
    }
    for (int i = 0; i < n; i++)
        if (read(pipes[i][0], buf, 1000) != 1000 || buf[999] != 'a' + i % 26) return puts("lost");
    printf("kept %ld MB\n", total >> 20);
    return 0;
}
""",
    "extended attributes": r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>
static char buf[60000];
int main(void) {
    int fd = open("x", O_CREAT | O_RDWR, 0600), n = 0; /* in its work dir */
    char name[32];
    for (; n < 2000; n++) {
        snprintf(name, sizeof name, "user.a%d", n);
        memset(buf, 'a' + n % 26, sizeof buf);
        if (fsetxattr(fd, name, buf, sizeof buf, 0) < 0) break;
    }
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "user.a%d", i);
        if (fgetxattr(fd, name, buf, sizeof buf) != sizeof buf || buf[5] != 'a' + i % 26)
            return puts("lost");
    }
    printf("kept %d MB\n", n * 60 / 1024);
    return 0;
}
""",
}


@pytest.mark.parametrize("where", sorted(KERNEL_HELD_C))
def test_data_the_kernel_holds_counts_as_memory(judge: Judge, where: str) -> None:
    # a uid's pipes hold about 30 MB at most (fs.pipe-user-pages-soft): a lower limit for them
    limits = TIGHT.model_copy(update=dict(memory_mb=16)) if where == "pipes" else TIGHT
    result = judged(judge, "c", KERNEL_HELD_C[where], limits)
    assert result.verdict == Verdict.MLE, result
    assert result.memory_kb > limits.memory_mb * 1024


def test_unix_socket_buffers_count_in_python(judge: Judge) -> None:
    result = judged(
        judge,
        "python",
        """
        import socket
        pairs = []
        for n in range(60):
            a, b = socket.socketpair()
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            a.setblocking(False)
            try:
                while True:
                    a.send(bytes([97 + n % 26]) * 65536)
            except BlockingIOError:
                pass
            pairs.append((a, b))
        assert all(b.recv(10) == bytes([97 + n % 26]) * 10 for n, (a, b) in enumerate(pairs))
        print("kept")
        """,
    )
    assert result.verdict == Verdict.MLE, result


INET = {
    "c": r"""
#include <stdio.h>
#include <sys/socket.h>
int main(void) {
    int tcp = socket(AF_INET, SOCK_STREAM, 0), tcp6 = socket(AF_INET6, SOCK_STREAM, 0);
    int udp = socket(AF_INET, SOCK_DGRAM, 0), netlink = socket(16 /* AF_NETLINK */, SOCK_RAW, 0);
    perror("socket");
    printf("%d %d %d %d\n", tcp, tcp6, udp, netlink);
    return 0;
}
""",
    "python": """
import socket
for family in (socket.AF_INET, socket.AF_INET6):
    try:
        socket.socket(family)
    except PermissionError as exc:
        print(exc.errno)
""",
    "javascript": """
const net = require('net');
const server = net.createServer();
server.on('error', (e) => { console.log(e.code); });
server.listen(5555, '127.0.0.1');
""",
}
INET_SAYS = {"c": "-1 -1 -1 -1\n", "python": "13\n13\n", "javascript": "EACCES\n"}


@pytest.mark.parametrize("language", sorted(INET))
def test_no_socket_whose_buffers_the_kernel_would_not_charge(judge: Judge, language: str) -> None:
    """TCP and UDP buffers escape a cgroup v1 sandbox's memory (its TCP accounting is off):
    a job may create Unix sockets only; anything else is refused with EACCES."""
    result = judged(judge, language, INET[language], TIGHT.model_copy(update=dict(memory_mb=96)))
    assert result.verdict == Verdict.AC, result
    assert result.stdout == INET_SAYS[language]


def test_stdin_is_read_only(judge: Judge) -> None:
    """A job cannot write or truncate its input, neither by its descriptor nor by reopening
    it: shrinking it would lower the sandbox's memory below what it held as the job started."""
    (result,) = judge_source(
        judge,
        "python",
        textwrap.dedent(
            """
            import os
            for how in ("write", "reopen", "truncate"):
                try:
                    if how == "write":
                        os.write(0, b"x")
                    elif how == "reopen":
                        open("/dev/stdin", "r+b")
                    else:
                        os.truncate("/proc/self/fd/0", 0)
                    print(how, "allowed")
                except OSError as exc:
                    print(how, exc.errno)
            print(len(open("/dev/stdin", "rb").read()))
            """
        ),
        [(b"x" * 1000, None)],
    )
    assert result.verdict == Verdict.AC, result
    assert result.stdout == "write 9\nreopen 13\ntruncate 13\n1000\n"


# Fills 24 MB of its work dir a megabyte at a time (its own memory stays small), reads it back.
FILL = """
with open("mine", "wb") as out:
    for _ in range(24):
        out.write(b"z" * (1 << 20))
print(open("mine", "rb").read(5))
"""


def test_a_given_file_shrunk_still_counts(pools: SandboxPools) -> None:
    """24 MB of data it was given, truncated to nothing, make no room for 24 MB of its own
    under a 20 MB limit."""
    job = python_job(b"import os\nos.truncate('data.bin', 0)\n" + FILL.encode(), mem_kb=20 << 10)
    job = replace(job, files=(*job.files, File("data.bin", b"d" * (24 << 20))), cpu_ms=2000)
    report = pools.run("python", job, 30)
    assert report.killed == "memory" or report.maxrss_kb > 20 << 10, report


def test_stdin_cannot_be_shrunk_to_make_room(pools: SandboxPools) -> None:
    shrink = b"import os\ntry:\n    os.ftruncate(0, 0)\nexcept OSError:\n    pass\n"
    job = python_job(shrink + FILL.encode(), mem_kb=20 << 10, cpu_ms=2000)
    report = pools.run("python", replace(job, stdin=b"i" * (24 << 20)), 30)
    assert report.killed == "memory" or report.maxrss_kb > 20 << 10, report


# Three children take 40 MB each and make themselves undumpable (their /proc entries become
# root's: no look from outside reads their memory), while the program talks to an interactor.
HIDDEN_CHILDREN = """
import ctypes, os, sys, time
for _ in range(3):
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, first
        held = bytearray(40 << 20)
        for i in range(0, len(held), 4096):
            held[i] = 1
        time.sleep(2)
        os._exit(0)
time.sleep(0.5)
print("ready", flush=True)
print(sys.stdin.readline().strip())
"""
ANSWERS = "import sys, time\nsys.stdin.readline()\ntime.sleep(0.5)\nprint('done', flush=True)\n"


def test_memory_of_undumpable_children_counts_beside_an_interactor(pools: SandboxPools) -> None:
    partner = replace(python_job(ANSWERS.encode(), server=()), mem_kb=64 << 10, wall_ms=8000)
    job = python_job(HIDDEN_CHILDREN.encode(), mem_kb=64 << 10, cpu_ms=3000, procs=8)
    report = pools.run("python", replace(job, partner=partner), 30)
    assert report.partner is not None and report.cleanup == "ok", report
    assert report.killed == "memory", report
    assert (report.partner.killed, report.partner.signal) == ("none", 0), report.partner


# ------------------------------------------------------------------------------------ network


def test_each_job_has_a_network_of_its_own(judge: Judge) -> None:
    """A job sees no socket and no connection of any other job or of the sandbox's own
    processes: a connection an earlier job made (which would linger in TIME_WAIT) is not in
    its /proc/net, and neither are the supervisor's and fork server's sockets."""
    connect = """
    import socket
    try:
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        client.sendall(b"token")
        print(peer.recv(5))
        client.close()  # the connection waits in TIME_WAIT on this side
    except PermissionError:
        print("refused")
    """
    assert judged(judge, "python", connect).verdict == Verdict.AC
    look = """
    tables = ("tcp", "tcp6", "udp", "unix")
    print([len(open(f"/proc/net/{t}").readlines()) - 1 for t in tables])
    print(sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
    """
    result = judged(judge, "python", look)
    assert result.verdict == Verdict.AC, result
    assert result.stdout == "[0, 0, 0, 0]\n['lo']\n"


# ------------------------------------------------------------------------------------ /proc

PID_STATUS = {
    "python": "import os\nprint(open(f'/proc/{os.getpid()}/status').read().split()[1])\n"
    "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n",
    "c": r"""
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    char path[64], name[64];
    snprintf(path, sizeof path, "/proc/%d/status", getpid());
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "Name: %63s", name) != 1) { puts("no status"); return 1; }
    puts(name);
    DIR *d = opendir("/proc");
    int pids = 0;
    for (struct dirent *e; (e = readdir(d));) pids += atoi(e->d_name) > 0;
    printf("%d\n", pids);
    return 0;
}
""",
    "javascript": "const fs = require('fs');\n"
    "console.log(fs.readFileSync(`/proc/${process.pid}/status`, 'utf8').split(/\\s+/)[1]);\n"
    "console.log(fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).sort());\n",
}
PID_SAYS = {
    "python": "python3\n['1', '2']\n",
    "c": "main\n2\n",
    "javascript": "node\n[ '1', '2' ]\n",
}


@pytest.mark.parametrize("language", sorted(PID_STATUS))
def test_proc_is_the_jobs_own(judge: Judge, language: str) -> None:
    """/proc/<getpid()> is the job's, and /proc lists its cell's init and itself alone."""
    result = judged(
        judge, language, PID_STATUS[language], TIGHT.model_copy(update=dict(memory_mb=96))
    )
    assert result.verdict == Verdict.AC, result
    assert result.stdout == PID_SAYS[language]


# ------------------------------------------------------------------------------------ budgets

# Four processes take every inotify instance they can (each is held to 64 descriptors) and
# keep them: more than the 128 a user may have on the host.
INOTIFY_HOG = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
r, w = os.pipe()
for _ in range(4):
    if os.fork() == 0:
        n = 0
        while n < 10000 and libc.inotify_init1(0) >= 0:
            n += 1
        os.write(w, b"%d\\n" % n)
        time.sleep(HOLD)
        os._exit(0)
os.close(w)
counts = b""
while counts.count(b"\\n") < 4:
    counts += os.read(r, 100)
print(sum(map(int, counts.split())), flush=True)
time.sleep(HOLD)
"""


def test_a_jobs_inotify_instances_are_never_the_hosts(judge: Judge) -> None:
    """Per-user budgets count against the owner of the cell's user namespace: the sandbox's
    own uid, so that a job holding every inotify instance it can leaves the host's root and
    the jobs of other sandboxes theirs."""
    libc = ctypes.CDLL(None, use_errno=True)
    results: list[TestResult] = []
    hog = threading.Thread(
        target=lambda: results.append(
            judged(
                judge,
                "python",
                INOTIFY_HOG.replace("HOLD", "3"),
                TIGHT.model_copy(update=dict(memory_mb=64)),
            )
        )
    )
    hog.start()
    time.sleep(1.5)  # it has taken them by now
    fd = libc.inotify_init1(0)
    assert fd >= 0, f"the host's root got no inotify instance: {os.strerror(ctypes.get_errno())}"
    os.close(fd)
    other = judged(
        judge,
        "c",
        r"""
#include <stdio.h>
#include <sys/inotify.h>
int main(void) {
    int n = 0;
    while (n < 10000 && inotify_init1(0) >= 0) n++;
    printf("%d\n", n);
    return 0;
}
""",
    )
    hog.join()
    (held,) = results
    assert held.verdict == Verdict.AC, held
    assert other.verdict == Verdict.AC, other
    assert int(held.stdout) >= 120, held.stdout  # it did hold about all a user may
    assert int(other.stdout) == 61, other.stdout  # what 64 descriptors allow: none taken


def test_no_job_can_reserve_the_hosts_aio_events(judge: Judge) -> None:
    """fs.aio-max-nr is one budget for the whole host: kernel AIO is refused (ENOSYS, as on a
    kernel without it); POSIX AIO in libc uses threads and works."""
    result = judged(
        judge,
        "c",
        r"""
#include <errno.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    aio_context_t ctx = 0;
    long rc = syscall(SYS_io_setup, 65536, &ctx);
    printf("%ld %d\n", rc, rc < 0 ? errno : 0);
    return 0;
}
""",
    )
    assert result.verdict == Verdict.AC, result
    assert result.stdout == f"-1 {38}\n"  # ENOSYS


# ------------------------------------------------------------------------------------ the peak

# About 30 MB in pipes (what a uid's pipes may hold), taken and let go as fast as it can.
BURST = """
import fcntl, os
pipes, held = [], 0
for _ in range(40):
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError:
        break
    os.set_blocking(w, False)
    try:
        while True:
            held += os.write(w, b"x" * 65536)
    except BlockingIOError:
        pipes.append((r, w))
print(held >> 20)
"""


def test_the_peak_is_the_kernels_and_each_tests_own(pools: SandboxPools) -> None:
    """On this host (cgroup v1, cgroupfs) the peak is the kernel's high-water mark, reset for
    each test: a burst held for less than a look's interval counts, and a big test's peak is
    not a later small one's."""
    assert {state["peak"] for state in pools.state()} == {"exact"}
    big = "held = bytearray(200 << 20)\nfor i in range(0, len(held), 4096):\n    held[i] = 1\n"
    report = pools.run("python", python_job(big.encode(), mem_kb=256 << 10), 30)
    assert report.killed == "none" and report.maxrss_kb > 200 << 10, report
    quick = python_job(b"import os\nos.pipe()\n", mem_kb=32 << 10)
    assert pools.run("python", quick, 30).maxrss_kb < 16 << 10
    # a burst shorter than a look's interval: the kernel's mark has it
    report = pools.run("python", python_job(BURST.encode(), mem_kb=16 << 10), 30)
    assert report.maxrss_kb > 16 << 10 or report.killed == "memory", report


# ------------------------------------------------------------------------------------ leftovers

# Leaves 200 MB of semaphore arrays in its IPC namespace, which the kernel frees a little
# after the cell ends: while the next job runs, were the next job's window opened at once.
LEAVE_SEMS = r"""
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/sem.h>
int main(void) {
    int n = 0;
    while (n < 100 && semget(IPC_PRIVATE, 32000, IPC_CREAT | 0600) >= 0) n++;
    printf("%d\n", n);
    return 0;
}
"""
# Then stores 150 MB in message queues, checks them and waits a little.
HOLD_QUEUES = r"""
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>
struct { long type; char text[8000]; } m;
int main(void) {
    static int ids[10000];
    int n = 0;
    for (m.type = 1; n < 9600 && (ids[n] = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) >= 0; n++) {
        memset(m.text, 'a' + n % 26, sizeof m.text);
        if (msgsnd(ids[n], &m, sizeof m.text, IPC_NOWAIT) || msgsnd(ids[n], &m, sizeof m.text, 0))
            break;
    }
    usleep(300000);
    for (int i = 0; i < n; i++)
        if (msgrcv(ids[i], &m, sizeof m.text, 0, IPC_NOWAIT) < 0 || m.text[9] != 'a' + i % 26)
            return puts("lost");
    printf("%d MB\n", n * 16 / 1024);
    return 0;
}
"""


def test_what_a_job_leaves_in_the_kernel_never_makes_room_for_the_next(judge: Judge) -> None:
    """The next job's window opens once the sandbox holds what it held before the last run:
    memory the kernel frees late cannot be taken out of the next job's figure."""
    roomy = TIGHT.model_copy(update=dict(memory_mb=256, processes=8))
    for _ in range(2):
        left = judged(judge, "c", LEAVE_SEMS, roomy)
        assert left.verdict == Verdict.AC and int(left.stdout) > 50, left
        hidden = judged(judge, "c", HOLD_QUEUES, TIGHT.model_copy(update=dict(memory_mb=64)))
        assert hidden.verdict == Verdict.MLE, hidden


# Looks up names that are not there, under the image's root: each leaves a negative dentry in
# the kernel's cache, charged to the sandbox and reclaimed only under pressure: from the next
# jobs' allocations, at their cost, had the sandbox gone on.
NEGATIVE_DENTRIES = r"""
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
    char name[64];
    struct stat st;
    for (int i = 0; i < 400000; i++) {
        snprintf(name, sizeof name, "/usr/lib/nothing-%d", i);
        stat(name, &st);
    }
    puts("looked");
    return 0;
}
"""


def test_kernel_memory_a_job_leaves_behind_ends_its_sandbox(pools: SandboxPools) -> None:
    """A run whose sandbox does not give back what the run took (negative dentries here,
    charged to the sandbox and reclaimed only under pressure, at the cost of the next jobs'
    allocations) ends its sandbox: the next job gets a fresh one."""
    binary = compile_static(pools, "main", NEGATIVE_DENTRIES, "/usr/bin/gcc")
    job = native(binary, mem_kb=256 << 10, cpu_ms=8000, wall_ms=20000, procs=4)
    report = pools.run("native", job, 60)
    assert report.stdout == b"looked\n", report
    assert report.cleanup == "memory still held after the job", report.cleanup
    (state,) = (s for s in pools.state() if s["image"] == pools.specs["native"].image)
    assert state["recycles"].get("cleanup"), state


OUTPUT_THEN_QUEUES = r"""
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>
struct { long type; char text[8000]; } m = {1, {0}};
int main(void) {
    static char line[1 << 16];
    memset(line, 'o', sizeof line - 1);
    for (int i = 0; i < 130; i++) fputs(line, stdout); /* 8.3 MB of output, a 16 MB limit */
    fflush(stdout);
    for (int n = 0; n < 640; n++) { /* 10 MB in message queues, an 8 MB limit */
        int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        if (q < 0 || msgsnd(q, &m, sizeof m.text, 0) || msgsnd(q, &m, sizeof m.text, 0)) break;
    }
    usleep(300000);
    return 0;
}
"""


def test_the_supervisors_buffers_never_make_room_for_the_job(judge: Judge) -> None:
    """What the supervisor holds of a job's output is taken out of the sandbox's figure as the
    bytes it holds, not as the buffer it may grow to."""
    limits = TIGHT.model_copy(update=dict(memory_mb=8, output_kb=16 << 10))
    result = judged(judge, "c", OUTPUT_THEN_QUEUES, limits)
    assert result.verdict == Verdict.MLE, result
