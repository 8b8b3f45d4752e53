"""A fake pool for fast tests: runs jobs as plain local processes, no Docker, no isolation.

Never use it for untrusted code. It gives the judge and the tasks realistic reports (exit
codes, signals, output, CPU and wall time; not memory) in milliseconds. ``script`` replaces
execution for failure injection: it gets ``(image, job)`` and returns a report or raises.
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
from pathlib import Path
from typing import IO

from worker.errors import SandboxTimeout
from worker.sandbox.protocol import File, Job, RunReport

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


def _execute(job: Job, deadline: float) -> RunReport:
    with tempfile.TemporaryDirectory(prefix="fakepool-") as tmp:
        for f in job.files:
            path = Path(tmp) / f.name
            path.write_bytes(f.data)
            path.chmod(f.mode)
        env = dict(e.split("=", 1) for e in job.env) | {"HOME": tmp, "TMPDIR": tmp}
        start = time.monotonic()
        proc = subprocess.Popen(
            job.argv,
            cwd=tmp,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out, err = bytearray(), bytearray()
        pumps = [
            threading.Thread(target=_feed, args=(proc.stdin, job.stdin)),
            threading.Thread(target=_drain, args=(proc.stdout, out)),
            threading.Thread(target=_drain, args=(proc.stderr, err)),
        ]
        for t in pumps:
            t.start()
        wall = job.wall_ms / 1000 if job.wall_ms else deadline
        timer = threading.Timer(wall, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        # wait4 ourselves: its rusage is this program's alone (RUSAGE_CHILDREN would mix in
        # every child this process ever had)
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        for t in pumps:
            t.join()
        elapsed = time.monotonic() - start
        if elapsed > deadline:
            raise SandboxTimeout("fake sandbox past its deadline")
        killed = "wall" if elapsed >= wall else "none"
        if len(out) > job.out_bytes:
            killed = "output"
        files = {
            name: File(name, (Path(tmp) / name).read_bytes(), 0o755)
            for name in job.collect
            if (Path(tmp) / name).is_file()
        }
        code = proc.returncode
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
            stdout=bytes(out[: job.out_bytes]),
            stdout_total=len(out),
            stderr=bytes(err[: job.err_bytes]),
            stderr_total=len(err),
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
