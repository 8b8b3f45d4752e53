"""A fake pool for fast tests: runs jobs as plain local processes, no Docker, no isolation.

Never use it for untrusted code. It gives the judge and the tasks realistic reports (exit
codes, signals, output, CPU and wall time; not memory) in milliseconds. ``script`` replaces
execution for failure injection: it gets ``(image, job)`` and returns a report or raises.

A job with a partner (an interactive test) runs as two local processes wired by two pipes,
as the supervisor wires them: the report's ``partner`` is the partner's report, and neither
report has stdout. A script answers such a job with both reports at once:
``report(..., partner=report(...))``, or :func:`pair_report`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO

from worker.errors import SandboxTimeout
from worker.programs import File
from worker.sandbox.protocol import ERR_TAIL_BYTES, Job, RunReport

Script = Callable[[str, Job], RunReport]


class FakePool:
    def __init__(self, script: Script | None = None) -> None:
        self.script = script
        self.calls: list[tuple[str, Job]] = []
        self._lock = threading.Lock()

    def run(self, image: str, job: Job, deadline: float) -> RunReport:
        with self._lock:
            self.calls.append((image, job))
        if self.script is not None:
            return self.script(image, job)
        return _execute(job, deadline)

    def identity(self, image: str) -> str:
        return f"fake-{image}"

    def state(self) -> list[dict[str, object]]:
        return [{"image": "fake", "jobs": len(self.calls)}]

    def close(self) -> None:
        pass


def report(**fields: object) -> RunReport:
    """A successful empty report with ``fields`` overridden; for scripted fakes."""
    base: dict[str, object] = {
        "status": "ok",
        "error": "",
        "exit_code": 0,
        "signal": 0,
        "cpu_us": 1000,
        "wall_us": 1000,
        "maxrss_kb": 1000,
        "killed": "none",
        "oom_kills": 0,
        "stdout": b"",
        "stdout_total": 0,
        "stderr": b"",
        "stderr_total": 0,
        "cleanup": "ok",
        "files": {},
    }
    base.update(fields)
    if "stdout" in fields and "stdout_total" not in fields:
        base["stdout_total"] = len(fields["stdout"])  # type: ignore[arg-type]
    return RunReport(**base)  # type: ignore[arg-type]


def pair_report(job: RunReport, partner: RunReport) -> RunReport:
    """The answer to a job with a partner: the job's report carrying the partner's."""
    return replace(job, partner=partner)


def _execute(job: Job, deadline: float) -> RunReport:
    if job.partner is not None:
        return _execute_pair(job, job.partner, deadline)
    with tempfile.TemporaryDirectory(prefix="fakepool-") as tmp:
        run = _Local(job, tmp, deadline, subprocess.PIPE, subprocess.PIPE)
        done = run.wait()
    if done.wall_us > deadline * 1e6:
        raise SandboxTimeout("fake sandbox past its deadline")
    return done


def _execute_pair(job: Job, partner: Job, deadline: float) -> RunReport:
    """The job and its partner at once, the job's stdout the partner's stdin and the
    partner's stdout the job's stdin."""
    with (
        tempfile.TemporaryDirectory(prefix="fakepool-") as tmp,
        tempfile.TemporaryDirectory(prefix="fakepool-partner-") as partner_tmp,
    ):
        to_partner, to_job = os.pipe(), os.pipe()
        try:
            main = _Local(job, tmp, deadline, to_job[0], to_partner[1])
            try:
                other = _Local(partner, partner_tmp, deadline, to_partner[0], to_job[1])
            except BaseException:
                main.kill()
                main.wait()
                raise
        finally:
            for fd in (*to_partner, *to_job):
                os.close(fd)
        theirs: list[RunReport] = []
        waiter = threading.Thread(target=lambda: theirs.append(other.wait()))
        waiter.start()
        done = main.wait()
        waiter.join()
    if max(done.wall_us, theirs[0].wall_us) > deadline * 1e6:
        raise SandboxTimeout("fake sandbox past its deadline")
    return pair_report(done, theirs[0])


class _Local:
    """One job as a local process in ``tmp``: its files written there, its stdin fed and its
    output drained when they are pipes of ours, its wall limit a timer on its process group."""

    def __init__(self, job: Job, tmp: str, deadline: float, stdin: int, stdout: int) -> None:
        self.job = job
        self.tmp = Path(tmp)
        for f in job.files:
            path = self.tmp / f.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
            path.chmod(f.mode)
        env = dict(e.split("=", 1) for e in job.env) | {"HOME": tmp, "TMPDIR": tmp}
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            job.argv,
            cwd=tmp,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.out, self.err = bytearray(), bytearray()
        self.pumps = [threading.Thread(target=_drain, args=(self.proc.stderr, self.err))]
        if self.proc.stdout is not None:
            self.pumps.append(threading.Thread(target=_drain, args=(self.proc.stdout, self.out)))
        if self.proc.stdin is not None:
            self.pumps.append(threading.Thread(target=_feed, args=(self.proc.stdin, job.stdin)))
        for t in self.pumps:
            t.start()
        self.wall = job.wall_ms / 1000 if job.wall_ms else deadline
        self.timer = threading.Timer(self.wall, self.kill)
        self.timer.start()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self) -> RunReport:
        # wait4 ourselves: its rusage is this program's alone (RUSAGE_CHILDREN would mix in
        # every child this process ever had)
        _, status, usage = os.wait4(self.proc.pid, 0)
        elapsed = time.monotonic() - self.start
        self.timer.cancel()
        self.kill()  # what it left in its group dies with it, as in a sandbox
        code = self.proc.returncode = os.waitstatus_to_exitcode(status)
        for t in self.pumps:
            t.join()
        job = self.job
        killed = "wall" if elapsed >= self.wall else "none"
        if len(self.out) > job.out_bytes:
            killed = "output"
        files = {
            name: File(name, (self.tmp / name).read_bytes(), 0o755)
            for name in job.collect
            if (self.tmp / name).is_file()
        }
        return report(
            exit_code=code if code >= 0 else -1,
            signal=-code if code < 0 else 0,
            cpu_us=int((usage.ru_utime + usage.ru_stime) * 1e6),
            wall_us=int(elapsed * 1e6),
            # not measured: a child forked from a large process (pytest) inherits its parent's
            # high-water mark across exec, so ru_maxrss would be the test runner's, not the
            # program's. The real supervisor is a tiny static binary, where this does not arise.
            maxrss_kb=0,
            killed=killed,
            stdout=bytes(self.out[: job.out_bytes]),
            stdout_total=len(self.out),
            stderr=bytes(self.err[: job.err_bytes]),
            stderr_total=len(self.err),
            stderr_tail=bytes(self.err[job.err_bytes :][-ERR_TAIL_BYTES:]),
            files=files,
        )


def _feed(pipe: IO[bytes] | None, data: bytes) -> None:
    assert pipe is not None
    with contextlib.suppress(BrokenPipeError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError):
        pipe.close()


def _drain(pipe: IO[bytes] | None, into: bytearray) -> None:
    assert pipe is not None
    while chunk := pipe.read(65536):
        into += chunk
    pipe.close()
