"""A job's files through real sandboxes: names may be relative paths (``pkg/mod.py``), whose
directories the supervisor makes in the job's work dir as the job; names it would refuse are
refused before they reach a sandbox; collected files are never looked for through a symlink;
the work dir goes whole after the job."""

from __future__ import annotations

import os
from dataclasses import replace

import docker
import pytest

from tests.sandbox.helpers import python_job
from worker.languages import LANGUAGES
from worker.programs import File
from worker.sandbox.container import LABEL_IMAGE, LABEL_OWNER, SUPERVISOR
from worker.sandbox.pools import SandboxPools

pytestmark = pytest.mark.docker

PYTHON = LANGUAGES["python"]
PACKAGE = (
    File("pkg/__init__.py", b"from pkg.mod import answer\n"),
    File("pkg/mod.py", b"def answer():\n    return 42\n"),
    File("pkg/data/deep/er/still/fine/x/y.txt", b"eight parts\n"),
)
# What the job sees of the directories the supervisor made: owner, mode, and a file at the
# bottom of eight parts.
MAIN = """
import os, pkg
print(pkg.answer())
for path in ("pkg", "pkg/data", "pkg/data/deep/er/still/fine/x"):
    st = os.stat(path)
    print(path, st.st_uid == os.getuid(), oct(st.st_mode & 0o777))
print(open("pkg/data/deep/er/still/fine/x/y.txt").read(), end="")
os.makedirs("out/sub")
open("out/sub/result.txt", "w").write("nested result\\n")
"""


@pytest.mark.parametrize("server", [True, False])
def test_a_program_imports_a_package_from_nested_files(pools: SandboxPools, server: bool) -> None:
    job = python_job(MAIN.encode(), server=None if server else ())
    job = replace(job, files=(*job.files, *PACKAGE), collect=("out/sub/result.txt",))
    report = pools.run(PYTHON.image, job, 30)
    assert (report.status, report.exit_code, report.cleanup) == ("ok", 0, "ok"), report.stderr
    assert report.via == ("server" if server else "exec")
    assert report.stdout.decode().splitlines() == [
        "42",
        "pkg True 0o755",
        "pkg/data True 0o755",
        "pkg/data/deep/er/still/fine/x True 0o755",
        "eight parts",
    ]
    assert report.files["out/sub/result.txt"].data == b"nested result\n"


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/x", "a//b", "/".join("abcdefghi"), "a/", "a/./b", "a/../b", "x" * 201, ""],
)
def test_names_the_supervisor_would_refuse_never_reach_the_sandbox(
    pools: SandboxPools, name: str
) -> None:
    """Refused (ValueError) before a sandbox is leased: the supervisor would stop over them."""
    before = pools.state()
    for job in (
        replace(python_job(b"print(1)\n"), files=(File(name, b"x"),)),
        replace(python_job(b"print(1)\n"), collect=(name,)),
    ):
        with pytest.raises(ValueError, match="file name"):
            pools.run(PYTHON.image, job, 30)
    assert pools.state() == before  # no lease, no job, no recycle
    assert pools.run(PYTHON.image, python_job(b"print(1)\n"), 30).stdout == b"1\n"


# Leaves, where collected files are looked for, a symlink to the supervisor's root, a FIFO,
# and a directory locked shut with files in it.
TRAPS = """
import os
os.symlink("/etc", "out")
os.mkfifo("fifo")
os.makedirs("locked/in/side")
open("locked/in/side/file", "w").write("x")
os.chmod("locked/in", 0)
os.chmod("locked", 0)
print("set")
"""


def test_collected_files_are_never_looked_for_through_a_symlink_or_waited_for(
    pools: SandboxPools, docker_client: docker.DockerClient
) -> None:
    job = replace(python_job(TRAPS.encode()), collect=("out/passwd", "fifo", "locked/in/side/file"))
    report = pools.run(PYTHON.image, job, 30)
    assert (report.stdout, report.cleanup) == (b"set\n", "ok"), report
    assert report.files == {}
    # and the work dir went whole: nothing is left in the sandbox's work area
    spec = pools.specs[PYTHON.image]
    (container,) = docker_client.containers.list(
        filters={"label": [f"{LABEL_OWNER}={spec.owner}", f"{LABEL_IMAGE}={spec.image}"]}
    )
    processes = docker_client.api.top(container.id, "-eo pid,args")["Processes"]
    supervisor = min(int(pid) for pid, args in processes if args.split()[0] == SUPERVISOR)
    assert os.listdir(f"/proc/{supervisor}/root/box") == []


def test_a_big_file_handed_back_is_not_in_the_next_jobs_memory(pools: SandboxPools) -> None:
    """The supervisor does not keep a big answer: an exec'ed job is forked from it, and its
    peak would start from the supervisor's resident pages."""
    small = python_job(b"pass\n", server=())
    before = pools.run(PYTHON.image, small, 30).maxrss_kb
    held = b"open('held', 'wb').write(b'x' * (60 << 20))\n"
    big = pools.run(PYTHON.image, replace(python_job(held), collect=("held",)), 30)
    assert len(big.files["held"].data) == 60 << 20
    after = pools.run(PYTHON.image, small, 30).maxrss_kb
    assert after < before + 2048, (before, after)
