"""Java's own rules, through real sandboxes: the class that runs (file names free, the class
declaring main), the compile errors that say why, the JVM sized by the job's limits (heap,
stack, its own threads apart from the program's), and its ways of running out: out of heap or
unable to start is MLE, a stack overflow RE."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import FAST, judge_source, verdict
from worker.compare import Comparison
from worker.contract import Limits, TestCase, TestResult, Verdict
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.programs import File

pytestmark = pytest.mark.docker

JAVA = LANGUAGES["java"]


def main(body: str, name: str = "Main", public: bool = True) -> str:
    head = "public class" if public else "class"
    signature = "public static void main(String[] args) throws Exception"
    return f"{head} {name} {{ {signature} {{\n{body}\n}} }}\n"


def files(judge: Judge, sources: dict[str, str], entry: str) -> TestResult:
    """Several files, ``entry`` among them, run once with no input."""
    compiled = judge.compile(JAVA, [File(n, s.encode()) for n, s in sources.items()], entry=entry)
    assert compiled.program is not None, compiled
    return judge.run_test(compiled.program, TestCase("0", b"", None), FAST, Comparison())


def test_the_public_class_with_main_runs_whatever_the_file_is_called(judge: Judge) -> None:
    source = (
        "class Helper { static int twice(int x) { return 2 * x; } }\n"
        + main("System.out.println(Helper.twice(new java.util.Scanner(System.in).nextInt()));",
               "Solution")
        + "class Other { public static void main(String[] a) { System.out.println(-1); } }\n"
    )  # fmt: skip
    (result,) = judge_source(judge, "java", source, [(b"21\n", b"42\n")])
    assert result.verdict == Verdict.AC, result


def test_a_lone_class_with_main_runs_public_or_not(judge: Judge) -> None:
    result = verdict(judge, "java", main('System.out.print("ran");', "Anything", public=False))
    assert (result.verdict, result.stdout) == (Verdict.AC, "ran"), result


def test_the_entry_files_class_runs_before_the_others(judge: Judge) -> None:
    sources = {
        "Tool.java": main('System.out.print("tool");', "Tool"),
        "Main.java": main('System.out.print("main " + Tool.class.getSimpleName());'),
    }
    result = files(judge, sources, "Main.java")
    assert result.stdout == "main Tool", result


@pytest.mark.parametrize(
    ("source", "said"),
    [
        (
            "public class Main { static void main(String[] a) {} }\n",
            "no class declares public static void main(String[] args)",
        ),
        (
            main("", "A", public=False) + main("", "B", public=False),
            "several classes declare main (A, B)",
        ),
        (
            "import java.awt.Point;\n" + main("System.out.println(new Point(1, 2));"),
            "package java.awt is not visible",
        ),
    ],
)
def test_what_cannot_run_is_ce_saying_why(judge: Judge, source: str, said: str) -> None:
    result = verdict(judge, "java", source)
    assert result.verdict == Verdict.CE, result
    assert said in result.stderr, result


def test_a_class_of_a_module_the_runtime_lacks_loaded_by_name_is_re(judge: Judge) -> None:
    result = verdict(judge, "java", main('Class.forName("java.sql.Date");'))
    assert result.verdict == Verdict.RE, result
    assert "ClassNotFoundException: java.sql.Date" in result.stderr, result


def test_the_heap_is_the_jobs_memory_limit(judge: Judge) -> None:
    source = main("System.out.print(Runtime.getRuntime().maxMemory() >> 20);")
    result = verdict(judge, "java", source, Limits(memory_mb=96))
    assert result.verdict == Verdict.AC, result
    # -Xmx96m, less the survivor space the serial collector keeps free
    assert 80 <= int(result.stdout) <= 96, result


def test_an_array_larger_than_the_heap_is_mle_not_re(judge: Judge) -> None:
    """The JVM refuses it at once (OutOfMemoryError: Java heap space): nothing was touched, so
    only the runtime's own words say it was memory."""
    result = verdict(
        judge, "java", main("long[] a = new long[64 << 20]; System.out.print(a.length);")
    )
    assert result.verdict == Verdict.MLE, result
    assert "memory limit exceeded (128 MB)" in result.message


def test_out_of_heap_after_much_debugging_on_stderr_is_still_mle(judge: Judge) -> None:
    """The JVM's words come last on stderr, after whatever the program wrote there (debugging,
    which no judge compares): they decide the verdict however much came before them."""
    body = 'System.err.print("debug ".repeat(4000));\nlong[] a = new long[64 << 20];'
    result = verdict(judge, "java", main(body))
    assert result.verdict == Verdict.MLE, result


def test_a_jvm_that_cannot_have_its_heap_is_mle_not_re(judge: Judge) -> None:
    result = verdict(judge, "java", main('System.out.print("ran");'), Limits(memory_mb=1))
    assert result.verdict == Verdict.MLE, result


def test_a_caught_out_of_memory_error_is_the_programs_business(judge: Judge) -> None:
    body = (
        "try { long[] a = new long[64 << 20]; System.out.print(a.length); }\n"
        'catch (OutOfMemoryError e) { System.err.println(e); System.out.print("fine"); }'
    )
    result = verdict(judge, "java", main(body))
    assert (result.verdict, result.stdout) == (Verdict.AC, "fine"), result


DEEP = (
    "static int depth(int n) { return n == 0 ? 0 : 1 + depth(n - 1); }\n"
    "public static void main(String[] args) {\n"
    "  System.out.print(depth(Integer.parseInt(new java.util.Scanner(System.in).next())));\n}\n"
)


def test_the_stack_is_the_jobs_so_deep_recursion_runs(judge: Judge) -> None:
    source = "public class Main {\n" + DEEP + "}\n"
    (result,) = judge_source(judge, "java", source, [(b"1000000", b"1000000")])
    assert result.verdict == Verdict.AC, result


def test_endless_recursion_runs_out_of_memory_as_in_c(judge: Judge) -> None:
    """The stack limit is the memory limit, as for every language: the stack's pages fill the
    memory before the stack is full (C and Python are MLE the same way)."""
    source = "public class Main {\n" + DEEP + "}\n"
    (result,) = judge_source(judge, "java", source, [(b"2000000000", None)])
    assert result.verdict == Verdict.MLE, result


def test_a_stack_overflow_is_re_not_mle(judge: Judge) -> None:
    """A thread given a stack of a megabyte overflows it: a StackOverflowError (an Error, no
    OutOfMemoryError) that reaches main is RE."""
    source = (
        "public class Main {\n" + DEEP.replace("public static void main", "static void unused")
        + "public static void main(String[] args) throws Throwable {\n"
        "  Throwable[] failed = {null};\n"
        '  Thread t = new Thread(null, () -> depth(2_000_000_000), "deep", 1 << 20);\n'
        "  t.setUncaughtExceptionHandler((thread, error) -> failed[0] = error);\n"
        "  t.start(); t.join();\n"
        "  if (failed[0] != null) throw failed[0];\n}\n}\n"
    )  # fmt: skip
    result = verdict(judge, "java", source)
    assert result.verdict == Verdict.RE, result
    assert "java.lang.StackOverflowError" in result.stderr, result


def test_the_jvms_threads_are_not_the_programs(judge: Judge) -> None:
    """With a limit of two, the program has its main thread and one more, whatever the JVM
    runs beside them; a third is refused (RE: a process limit, not memory). The threads live
    side by side: one that was joined may still count for an instant (its task not yet reaped)."""
    body = (
        "int n = Integer.parseInt(new java.util.Scanner(System.in).next());\n"
        "var threads = new java.util.ArrayList<Thread>();\n"
        "for (int i = 0; i < n; i++) {\n"
        "  Thread t = new Thread(() -> { try { Thread.sleep(300); } catch (Exception e) {} });\n"
        "  t.start(); threads.add(t);\n"
        "}\n"
        'for (Thread t : threads) t.join();\nSystem.out.print("ok");'
    )
    limits = Limits(cpu_time_ms=2000, wall_time_ms=5000, memory_mb=128, processes=2)
    one, two = judge_source(judge, "java", main(body), [(b"1", b"ok"), (b"2", None)], limits)
    assert one.verdict == Verdict.AC, one
    assert two.verdict == Verdict.RE, two
    assert "unable to create native thread" in two.stderr, two
