"""Parked JVMs (images/supervisor/park.c, images/java/libpark.c) against real sandboxes: a Java
job handed to a JVM started ahead for it must look, behave and end exactly like
``java -jar main.jar`` exec'ed by the supervisor, whatever jar the JVM was parked with.

What may differ, and is made neutral or left out before comparing (docs/contract.md lists
it): the job's uid (each job has its own); what only a clock shows (the JVM's uptime, the CPU
time its start cost, how deep a recursion gets before the JIT compiles it, which differs from
one exec'ed run to the next as much); /proc/self/cmdline (the parked one's argv has
``-agentpath:/opt/runner/libpark.so``) and /proc/self/maps (that library is mapped), which
the probe leaves out."""

from __future__ import annotations

import re
from collections.abc import Iterator

import docker
import pytest

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

JAVA = LANGUAGES["java"]
assert JAVA.compile is not None

# Everything a program can see of how it was started (but /proc/self/cmdline and maps).
STATE = r"""
import java.io.*;
import java.nio.file.*;
import java.util.*;

public class Main {
    static void show(Object... parts) { System.out.println(Arrays.deepToString(parts)); }

    static String read(String path) throws IOException { return Files.readString(Path.of(path)); }

    public static void main(String[] args) throws Exception {
        show((Object[]) args);
        show(new TreeMap<>(System.getProperties()));
        show(new TreeMap<>(System.getenv()));
        show(Main.class.getClassLoader(), ClassLoader.getSystemClassLoader(),
             ClassLoader.getPlatformClassLoader(), Thread.currentThread().getContextClassLoader(),
             Main.class.getProtectionDomain().getCodeSource().getLocation(),
             Main.class.getModule().isNamed(), Main.class.getResource("Main.class"));
        show(new TreeSet<>(ModuleLayer.boot().modules().stream().map(Module::getName).toList()));
        List<String> threads = new ArrayList<>();
        for (Thread t : Thread.getAllStackTraces().keySet())
            threads.add(t.getName() + " " + t.isDaemon() + " " + t.getPriority() + " "
                        + (t.getThreadGroup() == null ? "-" : t.getThreadGroup().getName()));
        Collections.sort(threads);
        show(threads, Thread.currentThread().getName(), Thread.currentThread().getPriority());
        show((Object[]) new Throwable().getStackTrace());
        List<String> fds = new ArrayList<>();
        for (File f : new File("/proc/self/fd").listFiles()) {
            try { fds.add(f.getName() + " " + Files.readSymbolicLink(f.toPath())); }
            catch (IOException e) { fds.add(f.getName()); }
        }
        Collections.sort(fds);
        show(fds);
        for (String line : read("/proc/self/status").split("\n"))
            if (line.matches("^(Uid|Gid|Groups|Cap|NoNewPrivs|Seccomp|Threads"
                             + "|Sig(Blk|Ign|Cgt)|NSpid|Umask).*"))
                show(line);
        show(read("/proc/self/limits"), read("/proc/self/oom_score_adj"));
        show(ProcessHandle.current().pid(),
             new File("/proc").list((d, n) -> n.matches("\\d+")).length);
        show(new File(".").getCanonicalPath(), new TreeSet<>(Arrays.asList(new File(".").list())));
        Runtime r = Runtime.getRuntime();
        show(r.maxMemory(), r.availableProcessors(), System.in.getClass(), System.out.getClass());
        show(new String(System.in.readAllBytes()));
    }
}
"""

# How a program ends: status, what the JVM prints on the way out (stacks included).
ENDINGS = {
    "uncaught": (
        'public class Main { static void f() { throw new IllegalStateException("boom"); }\n'
        'public static void main(String[] a) { System.out.println("before"); f(); } }\n'
    ),
    "checked": (
        "public class Main { public static void main(String[] a) throws Exception {\n"
        'throw new java.io.IOException("io"); } }\n'
    ),
    "exit_code": (
        "public class Main { public static void main(String[] a) {\n"
        'System.out.println("out"); System.exit(3); } }\n'
    ),
    "static_init": (
        'public class Main { static int x = 1 / Integer.parseInt("0");\n'
        "public static void main(String[] a) { System.out.println(x); } }\n"
    ),
    "static_init_other": (
        'public class Main { static class B { static int x = 1 / Integer.parseInt("0"); }\n'
        "public static void main(String[] a) { System.out.println(B.x); } }\n"
    ),
    "thread_outlives_main": (
        "public class Main { public static void main(String[] a) { new Thread(() -> {\n"
        "try { Thread.sleep(100); } catch (InterruptedException e) {}\n"
        'System.out.println("late"); throw new RuntimeException("in thread"); }).start();\n'
        'System.out.println("main done"); } }\n'
    ),
    "shutdown_hook": (
        "public class Main { public static void main(String[] a) {\n"
        'Runtime.getRuntime().addShutdownHook(new Thread(() -> System.out.println("hook")));\n'
        'System.out.println("main"); throw new Error("x"); } }\n'
    ),
    "halt": (
        "public class Main { public static void main(String[] a) {\n"
        'Runtime.getRuntime().addShutdownHook(new Thread(() -> System.out.println("hook")));\n'
        'System.out.print("unflushed"); Runtime.getRuntime().halt(7); } }\n'
    ),
    "out_of_heap": (
        "import java.util.*; public class Main { public static void main(String[] a) {\n"
        "List<long[]> l = new ArrayList<>(); for (;;) l.add(new long[1 << 20]); } }\n"
    ),
    "buffered_reader": (
        "import java.io.*; public class Main { public static void main(String[] a)"
        " throws IOException {\n"
        "BufferedReader r = new BufferedReader(new InputStreamReader(System.in)); String l;\n"
        'while ((l = r.readLine()) != null) System.out.println("line " + l); } }\n'
    ),
    "scanner": (
        "import java.util.*; public class Main { public static void main(String[] a) {\n"
        "Scanner s = new Scanner(System.in);\n"
        'while (s.hasNext()) System.out.println("token " + s.next()); } }\n'
    ),
    "data_input_stream": (
        "import java.io.*; public class Main { public static void main(String[] a)"
        " throws IOException {\n"
        "DataInputStream d = new DataInputStream(new BufferedInputStream(System.in, 1 << 16));\n"
        "int c, n = 0; while ((c = d.read()) != -1) n = 31 * n + c;\n"
        "PrintWriter w = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out)));\n"
        "w.println(n); w.flush(); } }\n"
    ),
    "stderr_and_big_output": (
        "public class Main { public static void main(String[] a) {\n"
        'System.err.println("to err"); System.out.print("a".repeat(200000)); } }\n'
    ),
}

LIMITS = {
    "cpu_ms": 5000,
    "wall_ms": 10000,
    "mem_kb": 256 * 1024,
    "procs": 8 + JAVA.runtime_threads,
    "nofile": 64,
    "stack_kb": 65536,
    "fsize_kb": 1024,
    "out_bytes": 1 << 20,
}


@pytest.fixture(scope="module")
def pools(docker_client: docker.DockerClient, settings: Settings) -> Iterator[SandboxPools]:
    """Java's pools alone: one run sandbox, so that one job's JVM is parked for the next."""
    images = [JAVA.image, JAVA.compile.image]  # type: ignore[union-attr]
    with started_pools(docker_client, settings, images=images) as pools:
        yield pools


@pytest.fixture(scope="module")
def jars(pools: SandboxPools) -> dict[str, tuple[File, ...]]:
    """Each program of this module compiled once: its run files (main.jar)."""
    judge = Judge(pools)
    compiled = {}
    for name, source in {"state": STATE, "empty": _empty(), **ENDINGS}.items():
        result = judge.compile(JAVA, [File("Main.java", source.encode())])
        assert result.program is not None, (name, result)
        compiled[name] = result.program.files
    return compiled


def _empty() -> str:
    return "public class Main { public static void main(String[] a) {} }\n"


def job(files: tuple[File, ...], park: bool, stdin: bytes = b"", **limits: int) -> Job:
    merged = {**LIMITS, **limits}
    return Job(
        uid=0,
        argv=JAVA.command(
            "main.jar", memory_mb=merged["mem_kb"] // 1024, stack_kb=merged["stack_kb"]
        ),
        env=JAVA.job_env,
        files=files,
        stdin=stdin,
        park=JAVA.park if park else (),
        park_files=JAVA.park_files if park else (),
        **merged,
    )


def run(
    pools: SandboxPools,
    jars: dict[str, tuple[File, ...]],
    name: str,
    parked: bool,
    stdin: bytes = b"",
) -> RunReport:
    """``name``'s jar exec'ed, or handed to the JVM parked for it: a first job (another
    program) parks one for the same limits, which the second is handed."""
    if parked:
        pools.run(JAVA.image, job(jars["empty"], park=True), 30)
    report = pools.run(JAVA.image, job(jars[name], park=parked, stdin=stdin), 30)
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


def test_a_parked_job_starts_exactly_like_an_execed_jvm(
    pools: SandboxPools, jars: dict[str, tuple[File, ...]]
) -> None:
    execed = run(pools, jars, "state", parked=False, stdin=b"line one\nrest\n")
    parked = run(pools, jars, "state", parked=True, stdin=b"line one\nrest\n")
    assert seen(parked) == seen(execed)
    assert b"sun.java.command=main.jar" in parked.stdout
    assert b"park" not in parked.stdout and b"hello" not in parked.stdout


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_a_parked_job_ends_exactly_like_an_execed_jvm(
    pools: SandboxPools, jars: dict[str, tuple[File, ...]], name: str
) -> None:
    stdin = b"one two\nthree\nno newline"
    assert seen(run(pools, jars, name, True, stdin)) == seen(run(pools, jars, name, False, stdin))


def test_no_agent_or_launcher_frame_in_a_stack(
    pools: SandboxPools, jars: dict[str, tuple[File, ...]]
) -> None:
    report = run(pools, jars, "uncaught", parked=True)
    assert report.stderr == (
        b'Exception in thread "main" java.lang.IllegalStateException: boom\n'
        b"\tat Main.f(Main.java:1)\n\tat Main.main(Main.java:2)\n"
    )


def test_a_stack_overflow_ends_a_parked_job_as_an_execed_one(pools: SandboxPools) -> None:
    """How deep the recursion gets depends on when the JIT compiles it, from one exec'ed run
    to the next: the ending is what must be the same."""
    judge = Judge(pools)
    source = (
        "public class Main { static int r(int n) { return r(n + 1) + 1; }\n"
        "public static void main(String[] a) { r(0); } }\n"
    )
    compiled = judge.compile(JAVA, [File("Main.java", source.encode())])
    assert compiled.program is not None
    ends = []
    for parked in (False, True):
        if parked:
            pools.run(JAVA.image, job(compiled.program.files, park=True, stack_kb=8192), 30)
        report = pools.run(JAVA.image, job(compiled.program.files, park=parked, stack_kb=8192), 30)
        assert report.via == ("parked" if parked else "exec"), report.park_error
        top = report.stderr.split(b"\n")[:2]
        ends.append((report.exit_code, report.signal, report.killed, top))
    assert ends[0] == ends[1], ends
    overflow = b'Exception in thread "main" java.lang.StackOverflowError'
    assert ends[0] == (1, 0, "none", [overflow, b"\tat Main.r(Main.java:1)"]), ends


def test_memory_of_a_parked_job_is_its_execed_figure(
    pools: SandboxPools, jars: dict[str, tuple[File, ...]]
) -> None:
    """The JVM's own pages are resident in the parked job as in the exec'ed one: the job's
    memory is its largest process's resident pages either way (memory.c)."""
    execed = [run(pools, jars, "data_input_stream", parked=False).maxrss_kb for _ in range(3)]
    parked = [run(pools, jars, "data_input_stream", parked=True).maxrss_kb for _ in range(3)]
    assert abs(min(parked) - min(execed)) < min(execed) * 0.1, (execed, parked)


def test_limits_are_enforced_on_parked_jobs(pools: SandboxPools) -> None:
    judge = Judge(pools)
    limits = Limits(cpu_time_ms=1000, wall_time_ms=3000, memory_mb=128, output_kb=64)

    def verdict(body: str) -> Verdict:
        source = f"public class Main {{ public static void main(String[] a) {{ {body} }} }}\n"
        compiled = judge.compile(JAVA, [File("Main.java", source.encode())])
        assert compiled.program is not None, compiled
        program: Program = compiled.program
        results = [
            judge.run_test(program, TestCase("t", b"", None), limits, Comparison())
            for _ in range(2)  # the second finds a JVM parked for it
        ]
        return results[1].verdict

    assert verdict("for (;;) {}") == Verdict.TLE
    assert verdict("java.util.List<long[]> l = new java.util.ArrayList<>();"
                   " for (;;) l.add(new long[1 << 20]);") == Verdict.MLE  # fmt: skip
    assert verdict('System.out.print("x".repeat(200000));') == Verdict.OLE


def test_a_jvm_parked_for_another_memory_limit_is_thrown_away(
    pools: SandboxPools, jars: dict[str, tuple[File, ...]]
) -> None:
    """The heap (-Xmx) is the job's memory limit: a JVM started for another has another."""
    pools.run(JAVA.image, job(jars["empty"], park=True), 30)
    report = pools.run(JAVA.image, job(jars["exit_code"], park=True, mem_kb=128 * 1024), 30)
    assert (report.via, report.exit_code, report.stdout) == ("exec", 3, b"out\n")
    assert report.park_error == "parked for another argv, environment or limits"


def test_a_run_without_the_jar_is_execed_and_sees_no_placeholder(
    pools: SandboxPools, jars: dict[str, tuple[File, ...]]
) -> None:
    """The JVM was parked with the image's jar in place of the job's: a run that does not
    give one is exec'ed, and the placeholder is gone from its work dir."""
    pools.run(JAVA.image, job(jars["empty"], park=True), 30)
    other = (File("other.jar", jars["exit_code"][0].data),)
    report = pools.run(JAVA.image, job(other, park=True), 30)
    assert report.via == "exec"
    assert report.park_error == "the run did not give the files its runtime was parked with"
    assert (report.exit_code, report.stderr) == (1, b"Error: Unable to access jarfile main.jar\n")


def test_a_job_sees_nothing_of_an_earlier_one(
    pools: SandboxPools, jars: dict[str, tuple[File, ...]]
) -> None:
    """Each JVM runs one job: what a job leaves in its process, its files or its /tmp is gone
    for the next, and the next job's JVM is nowhere in the job's view."""
    judge = Judge(pools)

    def jar(body: str) -> tuple[File, ...]:
        source = (
            "import java.io.*; public class Main { static String left;\n"
            f"public static void main(String[] a) throws Exception {{ {body} }} }}\n"
        )
        compiled = judge.compile(JAVA, [File("Main.java", source.encode())])
        assert compiled.program is not None, compiled
        return compiled.program.files

    leave = jar(
        'left = "x"; System.setProperty("left", "1");'
        ' new FileOutputStream("/tmp/left").close(); new FileOutputStream("left").close();'
    )
    look = jar(
        'System.out.println(left + " " + System.getProperty("left") + " "'
        ' + new File("/tmp/left").exists() + " " + new File("left").exists() + " "'
        ' + new File("/proc").list((d, n) -> n.matches("\\\\d+")).length);'
    )
    pools.run(JAVA.image, job(leave, park=True), 30)
    report = pools.run(JAVA.image, job(look, park=True), 30)
    assert report.via == "parked", report.park_error
    execed = pools.run(JAVA.image, job(look, park=False), 30)
    assert report.stdout == execed.stdout == b"null null false false 2\n"
