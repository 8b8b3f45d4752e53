"""Interactive pair runs through real pooled sandboxes: a contestant's program (the job) and
the problem's interactor (its partner) run at once in one sandbox, each in a cell of its own
under its own uid, the job's stdout the interactor's stdin and the interactor's stdout the
job's stdin. Each is limited, measured and ended on its own; the answer carries both reports;
the contestant reaches nothing of the interactor's; the sandbox serves the next job as if the
pair had never run, and only a failing supervisor costs it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import docker
import pytest

from tests.conftest import started_pools
from tests.sandbox.helpers import compile_static, native, python_job
from worker.languages import LANGUAGES
from worker.programs import File
from worker.sandbox.container import LABEL_IMAGE, LABEL_OWNER, SUPERVISOR, SUPERVISOR_UIDS
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import Job, RunReport
from worker.settings import Settings

pytestmark = pytest.mark.docker

PYTHON = LANGUAGES["python"]
SECRET, BUDGET = 654321, 25  # a binary search over 1..10^6 needs at most 20 guesses

# The guessing game's interactor. Its input file (argv[1]): the secret, the query budget, and
# after how many guesses it crashes (0: never). Per guess line it answers "<" (the guess is
# below the secret), ">" or "="; it exits 0 when guessed within budget, 1 on the guess past the
# budget (answering nothing more), 2 when the contestant stops guessing. Its result file
# (argv[2]) says which, for a checker.
INTERACTOR_C = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    long secret, budget, crash_after, guess, used = 0;
    FILE *in = argc > 2 ? fopen(argv[1], "r") : NULL;
    if (!in || fscanf(in, "%ld %ld %ld", &secret, &budget, &crash_after) != 3) return 3;
    FILE *out = fopen(argv[2], "w");
    if (!out) return 4;
    while (scanf("%ld", &guess) == 1) {
        if (++used > budget) { fprintf(out, "over budget\n"); return 1; }
        if (crash_after && used > crash_after) *(volatile int *)0 = 0;
        if (guess == secret) { puts("="); fprintf(out, "guessed in %ld\n", used); return 0; }
        puts(guess < secret ? "<" : ">");
        fflush(stdout);
    }
    fprintf(out, "no guess after %ld\n", used);
    return 2;
}
"""
INTERACTOR_CPP = r"""
#include <fstream>
#include <iostream>
int main(int argc, char **argv) {
    if (argc < 3) return 3;
    long secret, budget, crash_after, guess, used = 0;
    std::ifstream in(argv[1]);
    if (!(in >> secret >> budget >> crash_after)) return 3;
    std::ofstream out(argv[2]);
    while (std::cin >> guess) {
        if (++used > budget) { out << "over budget\n"; return 1; }
        if (crash_after && used > crash_after) *(volatile int *)nullptr = 0;
        if (guess == secret) {
            std::cout << "=" << std::endl;
            out << "guessed in " << used << "\n";
            return 0;
        }
        std::cout << (guess < secret ? "<" : ">") << std::endl;
    }
    out << "no guess after " << used << "\n";
    return 2;
}
"""

# Contestants. A binary search exits 3 if the interactor goes away mid-game.
SEARCH_PY = """
import sys
lo, hi, guesses = 1, 10**6, 0
while True:
    mid = (lo + hi) // 2
    print(mid, flush=True)
    guesses += 1
    answer = sys.stdin.readline().strip()
    if answer == "=":
        break
    if not answer:
        print("interactor gone after", guesses, file=sys.stderr)
        sys.exit(3)
    lo, hi = (mid + 1, hi) if answer == "<" else (lo, mid - 1)
print("won in", guesses, file=sys.stderr)
"""
SEARCH_C = r"""
#include <stdio.h>
int main(void) {
    long lo = 1, hi = 1000000, guesses = 0;
    char answer[8];
    for (;;) {
        long mid = (lo + hi) / 2;
        printf("%ld\n", mid);
        fflush(stdout);
        guesses++;
        if (scanf("%7s", answer) != 1) return 3;
        if (answer[0] == '=') break;
        if (answer[0] == '<') lo = mid + 1; else hi = mid - 1;
    }
    fprintf(stderr, "won in %ld\n", guesses);
    return 0;
}
"""
FOREVER_PY = "import sys\nwhile True:\n    print(1, flush=True)\n    sys.stdin.readline()\n"
FOREVER_C = r"""
#include <stdio.h>
int main(void) {
    char answer[8];
    for (;;) {
        printf("1\n");
        fflush(stdout);
        if (scanf("%7s", answer) != 1) fprintf(stderr, "eof\n");
    }
}
"""


@pytest.fixture(scope="module")
def binaries(pools: SandboxPools) -> dict[str, File]:
    return {
        "c": compile_static(pools, "interactor", INTERACTOR_C, "/usr/bin/gcc"),
        "cpp": compile_static(pools, "interactor", INTERACTOR_CPP, "/usr/bin/g++"),
        "search": compile_static(pools, "main", SEARCH_C, "/usr/bin/gcc"),
        "forever": compile_static(pools, "main", FOREVER_C, "/usr/bin/gcc"),
    }


def interactor(
    binary: File, secret: int = SECRET, budget: int = BUDGET, crash_after: int = 0, **limits: int
) -> Job:
    return Job(
        uid=0,
        argv=("./interactor", "input.txt", "result.txt"),
        files=(binary, File("input.txt", f"{secret} {budget} {crash_after}\n".encode())),
        collect=("result.txt",),
        **{"cpu_ms": 2000, "wall_ms": 4000, "mem_kb": 64 * 1024, "procs": 4, **limits},
    )


def pair(pools: SandboxPools, image: str, job: Job, partner: Job) -> tuple[RunReport, RunReport]:
    report = pools.run(image, replace(job, partner=partner), 30)
    assert report.partner is not None
    assert report.cleanup == "ok", report.cleanup
    return report, report.partner


def result_file(report: RunReport) -> bytes:
    return report.files["result.txt"].data


@pytest.mark.parametrize("language", ["c", "cpp"])
@pytest.mark.parametrize("image", ["python", "native"])
def test_a_binary_search_wins_against_a_static_interactor(
    pools: SandboxPools, binaries: dict[str, File], image: str, language: str
) -> None:
    """A C and a C++ interactor, static, in the Python image and in the C/C++ run image."""
    if image == "python":
        job = python_job(SEARCH_PY.encode(), cpu_ms=2000, mem_kb=64 * 1024)
    else:
        job = native(binaries["search"], cpu_ms=2000, wall_ms=5000, mem_kb=64 * 1024)
    mine, theirs = pair(pools, image, job, interactor(binaries[language]))
    assert (mine.status, mine.exit_code, mine.signal, mine.killed) == ("ok", 0, 0, "none"), mine
    assert mine.stderr.startswith(b"won in ") and int(mine.stderr.split()[-1]) <= 20
    assert (theirs.status, theirs.exit_code, theirs.killed) == ("ok", 0, "none"), theirs
    assert result_file(theirs) == b"guessed in %s\n" % mine.stderr.split()[-1]
    # the bytes went to each other, not to the supervisor
    assert (mine.stdout, mine.stdout_total, theirs.stdout, theirs.stdout_total) == (b"", 0, b"", 0)
    assert theirs.via == "exec"
    assert mine.via == ("server" if image == "python" else "exec"), mine.server_error
    assert 0 < mine.cpu_us < 1_000_000 and 0 < theirs.cpu_us < 1_000_000
    assert mine.maxrss_kb > 0 and theirs.maxrss_kb > 0


def test_a_python_contestant_over_budget_reads_eof_then_its_writes_fail(
    pools: SandboxPools, binaries: dict[str, File]
) -> None:
    """The interactor stops at the guess past its budget; the contestant's next read is at
    EOF and its next write fails (Python ignores SIGPIPE: BrokenPipeError)."""
    job = python_job(FOREVER_PY.encode(), cpu_ms=2000, mem_kb=64 * 1024)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"], budget=10))
    assert (theirs.exit_code, theirs.signal, theirs.killed) == (1, 0, "none"), theirs
    assert result_file(theirs) == b"over budget\n"
    assert (mine.status, mine.signal, mine.killed) == ("ok", 0, "none"), mine
    assert mine.exit_code == 120, mine  # an uncaught exception, then a failed flush at exit
    assert b"BrokenPipeError" in mine.stderr, mine.stderr


def test_a_c_contestant_that_writes_to_an_interactor_that_ended_dies_of_sigpipe(
    pools: SandboxPools, binaries: dict[str, File]
) -> None:
    job = native(binaries["forever"], cpu_ms=2000, wall_ms=5000, mem_kb=64 * 1024)
    mine, theirs = pair(pools, "native", job, interactor(binaries["c"], budget=10))
    assert (theirs.exit_code, result_file(theirs)) == (1, b"over budget\n"), theirs
    assert (mine.exit_code, mine.signal, mine.killed) == (-1, signal.SIGPIPE, "none"), mine
    assert b"eof" in mine.stderr


def test_a_contestant_that_never_writes_is_killed_for_wall_time_and_the_interactor_sees_eof(
    pools: SandboxPools, binaries: dict[str, File]
) -> None:
    """Both wait for each other: the contestant's wall limit counts its idle waiting, and its
    end is the interactor's EOF, well before the interactor's own, longer, wall limit."""
    job = python_job(b"import sys\nsys.stdin.read()\n", cpu_ms=2000, wall_ms=1000)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"], wall_ms=3000))
    assert (mine.killed, mine.exit_code, mine.signal) == ("wall", -1, signal.SIGKILL), mine
    assert 1_000_000 <= mine.wall_us < 1_500_000
    assert mine.cpu_us < 200_000  # it waited; it did not work
    assert (theirs.killed, theirs.exit_code, theirs.signal) == ("none", 2, 0), theirs
    assert result_file(theirs) == b"no guess after 0\n"
    # it waited as long, and no longer: the contestant's end was its EOF
    assert mine.wall_us - 100_000 < theirs.wall_us < 2_000_000


def test_a_contestant_over_its_cpu_limit_is_killed_and_the_interactor_sees_eof(
    pools: SandboxPools, binaries: dict[str, File]
) -> None:
    job = python_job(b"while True:\n    pass\n", cpu_ms=500, wall_ms=3000)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"], wall_ms=4000))
    assert (mine.killed, mine.signal) == ("cpu", signal.SIGKILL), mine
    assert 500_000 <= mine.cpu_us < 900_000
    assert (theirs.killed, theirs.exit_code) == ("none", 2), theirs
    assert theirs.cpu_us < 100_000  # the contestant's CPU is its own
    assert result_file(theirs) == b"no guess after 0\n"


def test_an_interactor_that_crashes_mid_game_leaves_the_contestant_at_eof(
    pools: SandboxPools, binaries: dict[str, File]
) -> None:
    job = python_job(SEARCH_PY.encode(), cpu_ms=2000, mem_kb=64 * 1024)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"], crash_after=3))
    assert (theirs.status, theirs.exit_code, theirs.signal) == ("ok", -1, signal.SIGSEGV), theirs
    assert theirs.killed == "none"
    assert result_file(theirs) == b""  # opened, never flushed
    assert (mine.status, mine.exit_code, mine.signal, mine.killed) == ("ok", 3, 0, "none"), mine
    assert mine.stderr == b"interactor gone after 4\n"


# Holds 60 MB in its heap, in a file on its /tmp or in its result file while the contestant
# runs.
HOLDER = {
    "heap": "held = bytearray(60 << 20)\nfor i in range(0, len(held), 4096):\n    held[i] = 1\n",
    "tmp": "open('/tmp/held', 'wb').write(b'x' * (60 << 20))\n",
    "result": "open('held', 'wb').write(b'x' * (60 << 20))\n",  # the file it hands back
}
HOLDING = "import sys\n{hold}print('holding', flush=True)\nsys.stdin.readline()\n"
# Reads the partner's word, gives the supervisor a dozen looks, and says it is done.
WAITER = "import sys, time\nsys.stdin.readline()\ntime.sleep(0.3)\nprint('done', flush=True)\n"


@pytest.mark.parametrize("where", sorted(HOLDER))
def test_what_the_interactor_holds_is_never_the_contestants_memory(
    pools: SandboxPools, where: str
) -> None:
    partner = replace(
        python_job(HOLDING.format(hold=HOLDER[where]).encode(), server=()),
        mem_kb=256 * 1024,
        wall_ms=8000,
        collect=("held",),
    )
    job = python_job(WAITER.encode(), mem_kb=32 * 1024, cpu_ms=2000)
    mine, theirs = pair(pools, "python", job, partner)
    assert (mine.killed, mine.exit_code) == ("none", 0), mine
    assert mine.maxrss_kb < 24 * 1024, mine
    assert (theirs.killed, theirs.exit_code) == ("none", 0), theirs
    assert theirs.maxrss_kb >= 60 * 1024, theirs
    if where == "result":
        assert len(theirs.files["held"].data) == 60 << 20


# 100 MB in its heap, or 30 MB in its /tmp (whose size is its limit and an eighth) beside the
# interpreter's own 9 MB
HOG = {
    "heap": "held = bytearray(100 << 20)\nfor i in range(0, len(held), 4096):\n    held[i] = 1\n",
    "tmp": "open('/tmp/held', 'wb').write(b'x' * (30 << 20))\n",
}


@pytest.mark.parametrize("where", sorted(HOG))
def test_a_contestant_over_its_memory_limit_is_killed_and_the_interactor_is_not(
    pools: SandboxPools, binaries: dict[str, File], where: str
) -> None:
    """Over a 32 MB limit in its heap or its /tmp: its memory, whatever the pair."""
    source = HOG[where] + "import time\ntime.sleep(2)\n"
    job = python_job(source.encode(), mem_kb=32 * 1024, cpu_ms=2000, wall_ms=4000)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"], wall_ms=6000))
    assert mine.killed == "memory", mine
    assert mine.maxrss_kb > 32 * 1024
    assert (theirs.killed, theirs.exit_code, theirs.signal) == ("none", 2, 0), theirs
    assert theirs.maxrss_kb < 8 * 1024, theirs


def test_an_oom_kill_is_the_job_the_kernel_chose(
    pools: SandboxPools, binaries: dict[str, File]
) -> None:
    """No memory limit of its own: the sandbox's cgroup runs out, and the OOM killer takes
    the contestant (every job is its first choice, the largest first). The kill the sandbox
    counts is the contestant's, not the interactor's."""
    job = python_job(b"x = b'x' * (2 << 30)\n", mem_kb=0, cpu_ms=5000, wall_ms=8000)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"], wall_ms=10_000))
    assert (mine.oom_kills, mine.signal, mine.killed) == (1, signal.SIGKILL, "none"), mine
    assert (theirs.oom_kills, theirs.killed, theirs.exit_code) == (0, "none", 2), theirs


# Two pairs of processes, each pair sharing 40 MB that the largest process does not map.
SHARED_AMONG_SMALLER = (
    "import os, time\nfor _ in range(2):\n    if os.fork() == 0:\n"
    "        data = bytearray(40 << 20)\n        for i in range(0, len(data), 4096):\n"
    "            data[i] = 1\n        os.fork()\n        time.sleep(1)\n        os._exit(0)\n"
    "time.sleep(1.5)\n"
)


def test_pages_only_a_contestants_smaller_processes_share_still_count_in_a_pair(
    pools: SandboxPools, binaries: dict[str, File]
) -> None:
    """A pair's job is measured without the cgroup's anonymous pages (both jobs' then): its
    processes' proportional shares are the floor (memory.c), so the pages each pair of
    children shares count once however long the job holds them; before the children fork
    they are private pages, counted as such."""
    job = python_job(SHARED_AMONG_SMALLER.encode(), mem_kb=64 * 1024, cpu_ms=2000, procs=8)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"]))
    assert mine.killed == "memory", mine
    assert (theirs.killed, theirs.exit_code) == ("none", 2), theirs


# The contestant goes after the interactor: it finds its process, and tries its descriptors,
# its work dir through /proc, its work dir by guessing uids near its own, and signals.
SPY = r"""
import errno, os, sys
def attempt(what, action):
    try:
        action()
        print(what, "ALLOWED", file=sys.stderr)
    except OSError as exc:
        print(what, errno.errorcode[exc.errno], file=sys.stderr)
sys.stdin.readline()  # the interactor is up
me = os.readlink("/proc/self")
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if b"keeper.py" in open(f"/proc/{pid}/cmdline", "rb").read() and pid != me:
            found.append(pid)
    except OSError:
        pass
print("found", len(found), file=sys.stderr)
for pid in found:
    attempt("fd", lambda: os.listdir(f"/proc/{pid}/fd"))
    attempt("fd0", lambda: open(f"/proc/{pid}/fd/0").close())
    attempt("cwd", lambda: os.listdir(f"/proc/{pid}/cwd"))
    attempt("cwd_file", lambda: open(f"/proc/{pid}/cwd/answer.txt").read())
    attempt("root", lambda: os.listdir(f"/proc/{pid}/root/box"))
    attempt("environ", lambda: open(f"/proc/{pid}/environ").read())
    attempt("mem", lambda: open(f"/proc/{pid}/mem", "rb").read(1))
    attempt("kill", lambda: os.kill(int(pid), 9))
attempt("box", lambda: os.listdir("/box"))
uid = os.getuid()
for other in range(uid - 3, uid + 4):
    if other != uid:
        attempt(f"guess{other - uid:+d}", lambda: open(f"/box/{other}/answer.txt").read())
print("done", flush=True)
"""
# The interactor: reads its files before and after the contestant's attempts, and writes
# what it read to its result file.
KEEPER = r"""
import sys
answer = open("answer.txt").read()
print("up", flush=True)
sys.stdin.readline()
assert open("answer.txt").read() == answer
open("result.txt", "w").write("kept " + answer)
"""


def spy_on_the_interactor(pools: SandboxPools, cells: bool = True) -> None:
    """In a cell of its own the contestant cannot even see the interactor's process (its
    /proc is its own PID namespace's); without cells it sees it and reaches nothing of it."""
    partner = Job(
        uid=0,
        argv=("/usr/bin/python3", "keeper.py"),
        env=PYTHON.job_env,
        files=(File("keeper.py", KEEPER.encode()), File("answer.txt", b"42\n")),
        collect=("result.txt",),
        cpu_ms=2000,
        wall_ms=8000,
        mem_kb=64 * 1024,
    )
    job = python_job(SPY.encode(), cpu_ms=2000)
    mine, theirs = pair(pools, "python", job, partner)
    assert (mine.exit_code, theirs.exit_code) == (0, 0), (mine, theirs)
    seen = dict(line.split() for line in mine.stderr.decode().splitlines())
    assert seen.pop("found") == ("0" if cells else "1")
    # another uid's descriptors, files and memory; and a signal
    by_uid = ("fd", "fd0", "cwd", "cwd_file", "root", "environ", "mem", "box")
    if cells:
        by_uid = ("box",)
    else:
        assert seen.pop("kill") == "EPERM"
    assert {what: seen.pop(what) for what in by_uid} == dict.fromkeys(by_uid, "EACCES")
    # the interactor's uid is the next one the pool handed out: its work dir lets nobody in
    assert seen.pop("guess+1") == "EACCES"
    assert seen == {f"guess{d:+d}": "ENOENT" for d in (-3, -2, -1, 2, 3)}
    # the interactor ran to its end, read its files, and kept what it read
    assert (theirs.killed, theirs.signal) == ("none", 0), theirs
    assert result_file(theirs) == b"kept 42\n"


def test_a_contestant_cannot_reach_the_interactors_files_or_process(pools: SandboxPools) -> None:
    spy_on_the_interactor(pools)


@pytest.fixture(scope="module")
def uid_pools(
    docker_client: docker.DockerClient, images: dict[str, str], settings: Settings
) -> Iterator[SandboxPools]:
    """Python sandboxes that give jobs no cells (RUNNER_ISOLATION=uid)."""
    uid_only = replace(settings, isolation="uid")
    with started_pools(docker_client, uid_only, images=[PYTHON.image]) as pools:
        yield pools


def test_without_cells_a_pair_still_plays_and_only_the_interactor_reaches_its_files(
    uid_pools: SandboxPools, binaries: dict[str, File]
) -> None:
    """Uids and permissions alone keep them apart: one pid namespace, one /tmp."""
    job = python_job(SEARCH_PY.encode(), cpu_ms=2000, mem_kb=64 * 1024)
    mine, theirs = pair(uid_pools, "python", job, interactor(binaries["c"]))
    assert (mine.exit_code, theirs.exit_code, result_file(theirs)[:10]) == (0, 0, b"guessed in")
    spy_on_the_interactor(uid_pools, cells=False)
    over = python_job(b"while True:\n    pass\n", cpu_ms=300, wall_ms=3000)
    mine, theirs = pair(uid_pools, "python", over, interactor(binaries["c"], wall_ms=4000))
    assert (mine.killed, theirs.killed, theirs.exit_code) == ("cpu", "none", 2)


# -- the sandbox after a pair ------------------------------------------------------------


Look = Callable[[], dict[str, object]]


@pytest.fixture
def python_sandbox(pools: SandboxPools, docker_client: docker.DockerClient) -> Look:
    """A look from the host at the Python pool's one sandbox: which container it is, whether
    it was recycled, the uids of its processes, what is in its work area."""
    spec = pools.specs[PYTHON.image]

    def look() -> dict[str, object]:
        (container,) = docker_client.containers.list(
            filters={"label": [f"{LABEL_OWNER}={spec.owner}", f"{LABEL_IMAGE}={spec.image}"]}
        )
        processes = docker_client.api.top(container.id, "-eo pid,uid,args")["Processes"]
        # the supervisor and its cells' inits (copies of it): /box is the same in all
        supervisor = min(int(pid) for pid, _, args in processes if args.split()[0] == SUPERVISOR)
        return {
            "id": container.id,
            "recycles": [s["recycles"] for s in pools.state() if s["image"] == spec.image],
            "uids": {int(uid) for _, uid, _ in processes},
            "box": sorted(os.listdir(f"/proc/{supervisor}/root/box")),
        }

    return look


def test_after_a_pair_the_sandbox_runs_an_ordinary_job_as_before(
    pools: SandboxPools, binaries: dict[str, File], python_sandbox: Look
) -> None:
    before = python_sandbox()
    job = python_job(SEARCH_PY.encode(), cpu_ms=2000)
    mine, theirs = pair(pools, "python", job, interactor(binaries["c"]))
    assert (mine.exit_code, theirs.exit_code) == (0, 0)
    after = python_sandbox()
    # the same sandbox, no process but the sandbox's own (Docker's init, root, and the
    # supervisor's uid), nothing in its work area
    assert after == before
    assert after["box"] == []
    (own,) = after["uids"] - {0}  # type: ignore[operator]
    assert own in SUPERVISOR_UIDS
    probe = (
        "import os\nprint(os.listdir('.'), os.listdir('/tmp'), os.listdir('/dev/shm'))\n"
        "print(os.access('/box', os.R_OK), input())\n"
    )
    report = pools.run("python", python_job(probe.encode(), stdin=b"plain\n"), 30)
    assert (report.status, report.exit_code, report.cleanup) == ("ok", 0, "ok"), report
    assert report.stdout == b"['main.py'] [] []\nFalse plain\n"
    assert python_sandbox() == before


# Ways for an interactor to go wrong that are its own, and how its report says it ended
# (status, exit code, signal, killed): none is the sandbox's fault.
PY = "/usr/bin/python3"
BROKEN = {
    "missing": (Job(uid=0, argv=("./nowhere",)), ("error", 127, 0, "none")),
    "crash": (
        Job(uid=0, argv=(PY, "-c", "import os\nos.kill(os.getpid(), 11)")),
        ("ok", -1, 11, "none"),
    ),
    "exit": (Job(uid=0, argv=(PY, "-c", "raise SystemExit(5)")), ("ok", 5, 0, "none")),
    "daemon": (
        Job(
            uid=0,
            argv=(
                PY,
                "-c",
                "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
                "open('/tmp/left', 'w').write('x')\nopen('left', 'w').write('x')\n",
            ),
        ),
        ("ok", 0, 0, "none"),
    ),
    "hog": (
        Job(
            uid=0,
            argv=(PY, "-c", "x = b'x' * (200 << 20)\nimport time\ntime.sleep(5)"),
            mem_kb=64 * 1024,
        ),
        ("ok", -1, 9, "memory"),
    ),
    "spin": (Job(uid=0, argv=(PY, "-c", "while True: pass"), cpu_ms=300), ("ok", -1, 9, "cpu")),
    "sleep": (Job(uid=0, argv=(PY, "-c", "import time\ntime.sleep(30)")), ("ok", -1, 9, "wall")),
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_a_broken_interactor_never_costs_the_sandbox(
    pools: SandboxPools, python_sandbox: Look, how: str
) -> None:
    before = python_sandbox()
    broken, ended = BROKEN[how]
    partner = replace(broken, env=PYTHON.job_env, wall_ms=1500, procs=4)
    job = python_job(b"import sys\nsys.stdin.read()\n")
    started = time.monotonic()
    mine, theirs = pair(pools, "python", job, partner)
    assert time.monotonic() - started < 4
    assert mine.exit_code == 0, mine  # whatever the interactor did, the contestant read EOF
    assert (theirs.status, theirs.exit_code, theirs.signal, theirs.killed) == ended, theirs
    if how == "missing":
        assert theirs.error == "exec ./nowhere: No such file or directory"
    assert python_sandbox() == before  # not recycled, and nothing left


def test_a_pair_that_cannot_be_set_up_runs_neither_job_and_costs_nothing(
    pools: SandboxPools, binaries: dict[str, File], python_sandbox: Look
) -> None:
    """Files the supervisor cannot make (a name under what is already a file): neither job
    runs, each report says why, and the sandbox goes on."""
    before = python_sandbox()
    partner = replace(
        interactor(binaries["c"]), files=(File("input.txt", b"1"), File("input.txt/x", b"2"))
    )
    mine, theirs = pair(pools, "python", python_job(b"print(1)\n"), partner)
    assert (theirs.status, theirs.error) == ("error", "create input.txt/x: Not a directory")
    assert (mine.status, mine.error) == (
        "error",
        "not run: the other job of the pair was not set up",
    )
    assert python_sandbox() == before
