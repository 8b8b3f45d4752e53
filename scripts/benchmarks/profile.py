"""Where a test's machine CPU goes (issue 20), by process: the scale benchmark's stream of
10-test C-echo submissions through one worker (one test at a time), on a Redis of the run's
own (so its CPU is the fleet's alone), with every process's CPU (``/proc/PID/stat``) and the
sandboxes' (their cgroups) read before and after. ``--py-spy SECONDS``: afterwards, the same
stream again with py-spy sampling the worker's busy threads (its CPU is not in the table), its
collapsed stacks written to a file (``py-spy record -f raw``).

``python -m scripts.benchmarks.profile [--submissions N] [--py-spy OUT.txt]``; not one of
``scripts/bench``'s benchmarks (it measures one worker, by process, not the fleet's figures)."""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from scripts.benchmarks.fleet import SandboxCpu, busy_cpu_s, owner_of, private_redis, workers

TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[str, float, str]]:
    """pid -> (name, CPU seconds so far, command line) of every process on the machine."""
    seen = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seen[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / TICK, cmdline)
    return seen


def role(name: str, cmdline: str, me: int, pid: int) -> str:
    if pid == me:
        return "producer (this process: client.submit + result waits)"
    if "runner worker" in cmdline or "bin/runner" in cmdline:
        return "worker (runner worker, Python)"
    if name.startswith("redis-server"):
        port = cmdline.split(":")[-1].split()[0] if ":" in cmdline else "?"
        return f"redis-server :{port}"
    if name.startswith("containerd-shim"):
        return "containerd-shim (sandboxes' attach/stdio)"
    return name


def scripts() -> dict[str, str]:
    """sha1 -> name of the fleet's Lua scripts (worker/keyspace, and the chord's)."""
    import hashlib

    from worker import keyspace
    from worker.queue import backend

    found = {}
    for name in dir(keyspace):
        value = getattr(keyspace, name)
        if isinstance(value, keyspace.Lua):
            found[hashlib.sha1(value.source.encode()).hexdigest()] = name
    chord = backend.CHORD_PART_RETURN_LUA
    found[hashlib.sha1(chord.encode()).hexdigest()] = "chord_part_return (celery's)"
    return found


def stream(client: Any, submissions: int) -> None:
    from scripts.benchmarks.scale import submission

    pending = []
    for i in range(submissions):
        pending.append(client.submit(submission(f"p{i}")))
        if len(pending) >= 20:
            assert pending.pop(0).result(timeout=600).verdict == "AC"
    for handle in pending:
        assert handle.result(timeout=600).verdict == "AC"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--py-spy", default="", help="the worker's collapsed stacks, after")
    args = parser.parse_args()
    from worker.logs import configure_logging

    configure_logging("console", "warning")
    with private_redis() as url:
        os.environ.update(
            {
                "RUNNER_BROKER_URL": f"{url}/0",
                "RUNNER_RESULT_BACKEND": f"{url}/1",
                "RUNNER_QUEUE": "bench-profile",
                "RUNNER_LOG_FORMAT": "json",
            }
        )
        from worker.client import Client

        client = Client()
        with workers(["profile"], RUNNER_CONCURRENCY="1"):
            stream(client, 3)  # warm: the compile, connections
            server = redis.Redis.from_url(url)
            server.config_resetstat()
            server.config_set("slowlog-log-slower-than", 0)  # every command, timed
            server.config_set("slowlog-max-len", 1_000_000)
            server.slowlog_reset()
            before = processes()
            with SandboxCpu([owner_of("profile")]) as boxes:
                busy = busy_cpu_s()
                start = time.perf_counter()
                stream(client, args.submissions)
                seconds = time.perf_counter() - start
                busy = busy_cpu_s() - busy
            after = processes()
            tests = 10 * args.submissions
            by_role: dict[str, float] = collections.defaultdict(float)
            for pid, (name, cpu, cmdline) in after.items():
                old = before.get(pid)
                start_cpu = old[1] if old and old[0] == name else 0.0
                by_role[role(name, cmdline, os.getpid(), pid)] += cpu - start_cpu
            print(f"{tests} tests in {seconds:.1f} s ({tests / seconds:.1f}/s)")
            print(f"machine busy CPU per test      {1000 * busy / tests:7.2f} ms")
            print(f"our sandboxes (cgroups)         {1000 * boxes.ours_s / tests:7.2f} ms")
            print(f"every sandbox (cgroups)         {1000 * boxes.all_s / tests:7.2f} ms")
            print("per process (ms of CPU per test; processes that ended meanwhile are missed):")
            for name, cpu in sorted(by_role.items(), key=lambda kv: -kv[1])[:25]:
                if cpu * 1000 / tests >= 0.01:
                    print(f"  {1000 * cpu / tests:7.3f}  {name}")
            stats = server.info("commandstats")
            print("Redis commands per test (calls, µs of the server's time):")
            for command, stat in sorted(stats.items(), key=lambda kv: -kv[1]["usec"]):
                calls, usec = stat["calls"] / tests, stat["usec"] / tests
                print(f"  {calls:6.2f} {usec:7.1f}  {command.removeprefix('cmdstat_')}")
            names = scripts()
            timed: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
            for entry in server.slowlog_get(1_000_000):
                raw = entry["command"]
                raw = b" ".join(raw) if isinstance(raw, list) else raw
                command = raw.decode(errors="replace").split(" ", 2)
                name = command[0].upper()
                if name == "EVALSHA" and len(command) > 1:
                    name = f"EVALSHA {names.get(command[1], command[1][:12])}"
                timed[name][0] += 1 / tests
                timed[name][1] += entry["duration"] / tests
            print("EVALSHA by script (calls, µs per test; slowlog, every command):")
            for name, (calls, usec) in sorted(timed.items(), key=lambda kv: -kv[1][1])[:12]:
                print(f"  {calls:6.2f} {usec:7.1f}  {name}")
            if args.py_spy:
                worker_pids = [pid for pid, (_, _, c) in after.items() if "profile@bench" in c]
                spy = Path(sys.executable).with_name("py-spy")
                argv = [str(spy), "record", "-p", str(worker_pids[0]), "-f", "raw"]
                argv += ["-o", args.py_spy, "-r", "200", "--gil", "--nonblocking", "-d", "600"]
                procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL)]
                time.sleep(1)
                stream(client, args.submissions)
                for proc in procs:
                    proc.send_signal(2)
                for proc in procs:
                    proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
