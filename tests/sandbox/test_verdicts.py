"""Every verdict, for every language, through real pooled sandboxes."""

import pytest

from tests.sandbox.helpers import FAST, judge_source, verdict
from worker.compare import Comparison
from worker.contract import Limits, TestCase, Verdict
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.programs import File

pytestmark = pytest.mark.docker

# a program that kills itself with a signal, and the signal its runtime lets it die of (Ruby's
# own SIGSEGV handler prints its bug report and aborts); Lua has no way to signal itself
CRASH: dict[str, tuple[str, str] | None] = {
    "python": ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "SIGSEGV"),
    "c": ("int main(){volatile int *p=0; return *p;}\n", "SIGSEGV"),
    "cpp": ("int main(){volatile int *p=nullptr; return *p;}\n", "SIGSEGV"),
    # the JVM catches SIGSEGV itself, writes its crash report and aborts
    "java": (
        "public class Main { public static void main(String[] a) throws Exception {\n"
        '  var f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");\n'
        "  f.setAccessible(true);\n"
        "  ((sun.misc.Unsafe) f.get(null)).putAddress(0, 0);\n} }\n",
        "SIGABRT",
    ),
    "javascript": ("process.kill(process.pid, 'SIGSEGV');\n", "SIGSEGV"),
    "lua": None,
    "ruby": ("Process.kill(:SEGV, Process.pid)\n", "SIGABRT"),
    "php": ("<?php\nposix_kill(posix_getpid(), 11);\n", "SIGSEGV"),
    # Go's runtime turns a fault, or a SIGSEGV sent to it, into a panic (exit code 2): only a
    # signal it leaves to the kernel kills it, as SIGTERM's default does
    "go": (
        'package main\n\nimport "syscall"\n\n'
        "func main() { syscall.Kill(syscall.Getpid(), syscall.SIGTERM); select {} }\n",
        "SIGTERM",
    ),
    "rust": ("fn main() { unsafe { std::ptr::null::<i32>().read_volatile(); } }\n", "SIGSEGV"),
    "pypy": ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "SIGSEGV"),
    # Mono's own SIGSEGV handler prints its report and aborts; FPC's runtime library turns a
    # SIGSEGV into runtime error 216 (an exit code), so Pascal dies of an abort instead
    "csharp": (
        "using System.Runtime.InteropServices;\nclass P {\n"
        '    [DllImport("libc")] static extern int kill(int pid, int sig);\n'
        '    [DllImport("libc")] static extern int getpid();\n'
        "    static void Main() { kill(getpid(), 11); }\n}\n",
        "SIGABRT",
    ),
    "pascal": ("uses BaseUnix;\nbegin\n  FpKill(FpGetPid, SIGABRT)\nend.\n", "SIGABRT"),
    "haskell": (
        "import System.Posix.Process (getProcessID)\n"
        "import System.Posix.Signals (sigSEGV, signalProcess)\n\n"
        "main :: IO ()\nmain = getProcessID >>= signalProcess sigSEGV\n",
        "SIGSEGV",
    ),
}
# an error nobody catches, whose message ("boom") the program's stderr shows
UNCAUGHT = {
    "python": "raise ValueError('boom')\n",
    "c": '#include <assert.h>\nint main(){assert(!"boom"); return 0;}\n',
    "cpp": '#include <stdexcept>\nint main(){throw std::runtime_error("boom");}\n',
    "java": "public class Main { public static void main(String[] a) {\n"
    '  throw new IllegalStateException("boom");\n} }\n',
    "javascript": "throw new Error('boom');\n",
    "lua": 'error("boom")\n',
    "ruby": 'raise "boom"\n',
    "php": '<?php\nthrow new Exception("boom");\n',
    "go": 'package main\n\nfunc main() { panic("boom") }\n',
    "rust": 'fn main() { panic!("boom"); }\n',
    "pypy": "raise ValueError('boom')\n",
    "csharp": 'class P { static void Main() { throw new System.Exception("boom"); } }\n',
    "pascal": "{$mode objfpc}\nuses SysUtils;\nbegin\n  raise Exception.Create('boom')\nend.\n",
    "haskell": 'main :: IO ()\nmain = error "boom"\n',
}
EXIT3 = {
    "python": "raise SystemExit(3)\n",
    "c": "int main(){return 3;}\n",
    "cpp": "int main(){return 3;}\n",
    "java": "public class Main { public static void main(String[] a) { System.exit(3); } }\n",
    "javascript": "process.exit(3);\n",
    "lua": "os.exit(3)\n",
    "ruby": "exit 3\n",
    "php": "<?php\nexit(3);\n",
    "go": 'package main\n\nimport "os"\n\nfunc main() { os.Exit(3) }\n',
    "rust": "fn main() { std::process::exit(3); }\n",
    "pypy": "raise SystemExit(3)\n",
    "csharp": "class P { static void Main() { System.Environment.Exit(3); } }\n",
    "pascal": "begin\n  halt(3)\nend.\n",
    "haskell": "import System.Exit\n\nmain :: IO ()\nmain = exitWith (ExitFailure 3)\n",
}
SPIN = {
    "python": "while True: pass\n",
    "c": "int main(){volatile unsigned long i=0; for(;;) i++;}\n",
    "cpp": "int main(){volatile unsigned long i=0; for(;;) i++;}\n",
    "java": "public class Main { public static void main(String[] a) { for (;;) { } } }\n",
    "javascript": "for(;;){}\n",
    "lua": "while true do end\n",
    "ruby": "loop {}\n",
    "php": "<?php\nwhile (true) {}\n",
    "go": "package main\n\nfunc main() {\n\tfor {\n\t}\n}\n",
    "rust": "fn main() {\n    let mut i = 0u64;\n"
    "    loop { unsafe { std::ptr::write_volatile(&mut i, i + 1) } }\n}\n",
    "pypy": "while True: pass\n",
    "csharp": "class P { static void Main() { for (;;) {} } }\n",
    "pascal": "begin\n  while true do ;\nend.\n",
    # a loop that allocates nothing (`length [1 ..]` would be a hog: MLE)
    "haskell": "main :: IO ()\nmain = print (go 0)\n  where\n    go :: Int -> Int\n"
    "    go n = go (n + 1)\n",
}
SLEEP = {
    "python": "import time\ntime.sleep(30)\n",
    "c": "#include <unistd.h>\nint main(){sleep(30);}\n",
    "cpp": "#include <unistd.h>\nint main(){sleep(30);}\n",
    "java": "public class Main { public static void main(String[] a) throws Exception {\n"
    "  Thread.sleep(30_000);\n} }\n",
    "javascript": "setTimeout(() => {}, 30000);\n",
    # standard Lua cannot sleep: it waits on its own stdout pipe, which nobody writes to
    "lua": 'io.open("/proc/self/fd/1", "r"):read("a")\n',
    "ruby": "sleep 30\n",
    "php": "<?php\nsleep(30);\n",
    "go": 'package main\n\nimport "time"\n\nfunc main() { time.Sleep(30 * time.Second) }\n',
    "rust": "fn main() { std::thread::sleep(std::time::Duration::from_secs(30)); }\n",
    "pypy": "import time\ntime.sleep(30)\n",
    "csharp": "class P { static void Main() { System.Threading.Thread.Sleep(30000); } }\n",
    "pascal": "uses SysUtils;\nbegin\n  Sleep(30000)\nend.\n",
    "haskell": "import Control.Concurrent\n\nmain :: IO ()\nmain = threadDelay 30000000\n",
}
HOG = {
    "python": "x = b'x' * (400 * 1024 * 1024)\nprint(len(x))\n",
    "c": "#include <stdio.h>\n#include <stdlib.h>\nint main(){size_t n=400u<<20;"
    "char*p=malloc(n);if(!p)return 1;long s=0;for(size_t i=0;i<n;i+=4096){p[i]=1;s+=p[i];}"
    'printf("%ld\\n",s);}\n',
    "cpp": "#include <vector>\nint main(){std::vector<char> v(400u<<20, 1); return v[9]==7;}\n",
    # a megabyte at a time, so that the heap (-Xmx: the limit) fills before it says no
    "java": "public class Main { public static void main(String[] a) {\n"
    "  var kept = new java.util.ArrayList<byte[]>();\n"
    "  for (int i = 0; i < 400; i++) kept.add(new byte[1 << 20]);\n"
    "  System.out.println(kept.size());\n} }\n",
    "javascript": "const b = Buffer.alloc(400 * 1024 * 1024, 1); console.log(b.length);\n",
    "lua": 'local s = string.rep("x", 400 * 1024 * 1024)\nprint(#s)\n',
    "ruby": 'x = "x" * (400 * 1024 * 1024)\nputs x.size\n',
    "php": '<?php\n$x = str_repeat("x", 400 * 1024 * 1024);\necho strlen($x), "\\n";\n',
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n\tb := make([]byte, 400<<20)\n'
    "\tfor i := range b {\n\t\tb[i] = 1\n\t}\n\tfmt.Println(len(b))\n}\n",
    "rust": 'fn main() { let v = vec![1u8; 400 << 20]; println!("{}", v.len()); }\n',
    # PyPy's compiler folds this constant: the syntax check must not, the run does
    "pypy": "x = b'x' * (400 * 1024 * 1024)\nprint(len(x))\n",
    "csharp": "class P {\n    static void Main() {\n        var a = new byte[400 << 20];\n"
    "        for (int i = 0; i < a.Length; i += 4096) a[i] = 1;\n"
    "        System.Console.WriteLine(a[4096]);\n    }\n}\n",
    "pascal": "var a: array of byte;\nbegin\n  SetLength(a, 400 * 1024 * 1024);\n"
    "  writeln(length(a))\nend.\n",
    "haskell": "import qualified Data.ByteString as B\n\nmain :: IO ()\n"
    "main = print (B.foldl' (+) 0 (B.replicate (400 * 1024 * 1024) 1))\n",
}
FLOOD = {
    "python": "while True: print('y' * 1000)\n",
    "c": '#include <stdio.h>\nint main(){for(;;)puts("yyyyyyyyyyyyyyyyyyyyyyyy");}\n',
    "cpp": '#include <cstdio>\nint main(){for(;;)std::puts("yyyyyyyyyyyyyyyyyyyy");}\n',
    "java": "public class Main { public static void main(String[] a) {\n"
    '  byte[] line = ("y".repeat(1000) + "\\n").getBytes();\n'
    "  for (;;) System.out.write(line, 0, line.length);\n} }\n",
    # writeSync: process.stdout.write on a pipe queues in memory once the pipe is full, so
    # that flood is as likely to end MLE (a true verdict) as OLE
    "javascript": "const fs = require('fs'), s = 'y'.repeat(1000) + '\\n';\n"
    "for (;;) fs.writeSync(1, s);\n",
    "lua": 'local s = string.rep("y", 1000) .. "\\n"\nwhile true do io.write(s) end\n',
    "ruby": 's = "y" * 1000\nloop { puts s }\n',
    "php": '<?php\n$s = str_repeat("y", 1000) . "\\n";\nwhile (true) { echo $s; }\n',
    "go": 'package main\n\nimport (\n\t"bufio"\n\t"os"\n\t"strings"\n)\n\n'
    'func main() {\n\tw, s := bufio.NewWriter(os.Stdout), strings.Repeat("y", 1000)+"\\n"\n'
    "\tfor {\n\t\tw.WriteString(s)\n\t}\n}\n",
    "rust": 'use std::io::Write;\nfn main() {\n    let s = "y".repeat(1000);\n'
    "    let mut out = std::io::stdout().lock();\n"
    '    loop { writeln!(out, "{}", s).unwrap(); }\n}\n',
    "pypy": "while True: print('y' * 1000)\n",
    "csharp": "class P {\n    static void Main() {\n        var s = new string('y', 1000);\n"
    "        for (;;) System.Console.WriteLine(s);\n    }\n}\n",
    "pascal": "var s: ansistring;\nbegin\n  s := StringOfChar('y', 1000);\n"
    "  while true do writeln(s)\nend.\n",
    "haskell": "main :: IO ()\n"
    "main = mapM_ (const (putStrLn (replicate 1000 'y'))) [1 :: Int ..]\n",
}
BROKEN = {
    "python": "def f(:\n",
    "c": "int main( {",
    "cpp": "int main() { return undefined_thing; }",
    "java": "public class Main { int x = ; }\n",
    "javascript": "function (",
    "lua": "x = = 1\n",
    "ruby": "def f(\n",
    "php": '<?php\necho "unterminated;\n',
    "go": "package main\n\nfunc main() {\n",
    "rust": 'fn main() { let x: u32 = "nope"; }\n',
    "pypy": "def f(:\n",
    "csharp": "class P { static void Main() { int x = ; } }\n",
    "pascal": "begin\n  x := ;\nend.\n",
    "haskell": "main = do\n  let x =\n",
}
PROGRAMS = {
    "CRASH": CRASH,
    "UNCAUGHT": UNCAUGHT,
    "EXIT3": EXIT3,
    "SPIN": SPIN,
    "SLEEP": SLEEP,
    "HOG": HOG,
    "FLOOD": FLOOD,
    "BROKEN": BROKEN,
}
LANGS = list(LANGUAGES)


def test_every_language_has_a_program_for_every_verdict() -> None:
    lacking = {
        name: [lang for lang in LANGS if lang not in programs]
        for name, programs in PROGRAMS.items()
    }
    assert not any(lacking.values()), f"programs lacking a language: {lacking}"


@pytest.mark.parametrize("lang", LANGS)
def test_ac_and_wa_on_several_tests_compiled_once(judge: Judge, lang: str) -> None:
    before = jobs_run(judge)
    tests = [(b"1 2\n", b"1 2"), (b"3\n", b"4\n"), (b"x" * 50_000, b"x" * 50_000)]
    results = judge_source(judge, lang, LANGUAGES[lang].selftest, tests)  # an echo
    assert [r.verdict for r in results] == [Verdict.AC, Verdict.WA, Verdict.AC]
    assert "expected '4', got '3'" in results[1].message
    assert jobs_run(judge) - before == 1 + len(tests)  # one compile step, then one job per test


def jobs_run(judge: Judge) -> int:
    return sum(int(str(pool["jobs"])) for pool in judge.runner.state())


@pytest.mark.parametrize("lang", LANGS)
def test_compile_or_syntax_error_is_ce(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, BROKEN[lang])
    assert result.verdict == Verdict.CE
    assert result.stderr  # the compiler's own words reach the user


# what compiles cleanly into something that is not a program: a library, a unit, a package
# other than main (an honest slip: the source is the contestant's, never the judge's fault)
NOT_A_PROGRAM = {
    "go": "package solution\n\nfunc Answer() int { return 42 }\n",
    "rust": '#![crate_type = "lib"]\n\npub fn answer() -> i32 {\n    42\n}\n',
    "pascal": "unit main;\n\ninterface\n\nimplementation\n\nend.\n",
    "haskell": "module Solution where\n\nanswer :: Int\nanswer = 42\n",
}


@pytest.mark.parametrize("lang", sorted(NOT_A_PROGRAM))
def test_a_source_that_is_not_a_program_is_ce(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, NOT_A_PROGRAM[lang])
    assert result.verdict == Verdict.CE, result
    if lang == "pascal":  # fpc compiled the unit, and said nothing wrong
        assert result.message == "compiled, but into no program ('main' was not made)"
    else:
        assert result.message == "compilation failed" and result.stderr, result


# a file among a program's that a compiler would read as its own configuration, from the work
# dir (the job's HOME): the submission's files must not set what the judge's compile step does
CONFIG_FILES = {
    "go": (".config/go/env", "GOOS=windows\nGOFLAGS=-v\n"),
    "pascal": ("fpc.cfg", "-dCONFIGURED\n"),
    "pascal-home": (".fpc.cfg", "-dCONFIGURED\n"),
    "haskell": (".ghc/x86_64-linux-9.0.2/environments/default", "package-id nowhere-1.0\n"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_a_file_named_like_a_compilers_configuration_is_only_a_file(
    judge: Judge, case: str
) -> None:
    lang = case.split("-")[0]
    name, content = CONFIG_FILES[case]
    source = {
        "go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("ran") }\n',
        "pascal": "begin\n  {$IFDEF CONFIGURED} write('configured '); {$ENDIF}\n"
        "  writeln('ran')\nend.\n",
        "haskell": 'main :: IO ()\nmain = putStrLn "ran"\n',
    }[lang]
    entry = LANGUAGES[lang].source_file
    files = [File(entry, source.encode()), File(name, content.encode())]
    compiled = judge.compile(LANGUAGES[lang], files, entry=entry)
    assert compiled.program is not None, compiled
    result = judge.run_test(compiled.program, TestCase("0", b"", b"ran\n"), FAST, Comparison())
    assert result.verdict == Verdict.AC, result


@pytest.mark.parametrize("lang", [lang for lang in LANGS if CRASH.get(lang)])
def test_a_crash_is_re_with_its_signals_name(judge: Judge, lang: str) -> None:
    source, signal = CRASH[lang] or ("", "")
    result = verdict(judge, lang, source)
    assert result.verdict == Verdict.RE
    assert result.signal == signal
    assert result.exit_code is None


@pytest.mark.parametrize("lang", LANGS)
def test_an_uncaught_error_is_re_with_its_message_on_stderr(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, UNCAUGHT[lang])
    assert result.verdict == Verdict.RE, result
    assert "boom" in result.stderr, result


@pytest.mark.parametrize("lang", LANGS)
def test_nonzero_exit_is_re_with_code(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, EXIT3[lang])
    assert (result.verdict, result.exit_code, result.signal) == (Verdict.RE, 3, None)


@pytest.mark.parametrize("lang", LANGS)
def test_busy_loop_is_tle_on_cpu_near_the_limit(judge: Judge, lang: str) -> None:
    # a wall limit far above the CPU one: on a busy machine the loop may get a fifth of a core
    result = verdict(judge, lang, SPIN[lang], Limits(cpu_time_ms=1000, wall_time_ms=20_000))
    assert result.verdict == Verdict.TLE
    assert "CPU" in result.message
    assert FAST.cpu_time_ms <= result.cpu_time_ms < FAST.cpu_time_ms + 300


@pytest.mark.parametrize("lang", LANGS)
def test_sleeping_past_wall_limit_is_tle_on_wall(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, SLEEP[lang])
    assert result.verdict == Verdict.TLE
    assert "wall" in result.message
    assert FAST.wall_time_ms <= result.wall_time_ms < FAST.wall_time_ms + 500


@pytest.mark.parametrize("lang", LANGS)
def test_memory_hog_is_mle_not_re(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, HOG[lang])
    assert result.verdict == Verdict.MLE, result
    assert result.memory_kb > 100 * 1024


@pytest.mark.parametrize("lang", LANGS)
def test_infinite_output_is_ole(judge: Judge, lang: str) -> None:
    result = verdict(judge, lang, FLOOD[lang])
    assert result.verdict == Verdict.OLE
    assert result.stdout_truncated


def test_memory_figure_is_close_to_what_the_program_touched(judge: Judge) -> None:
    source = "x = bytearray(64 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\n"
    result = verdict(judge, "python", source, Limits(memory_mb=256))
    assert result.verdict == Verdict.AC
    # 64 MB of data plus the interpreter (about 8 MB here), and not much more
    assert 64 * 1024 <= result.memory_kb <= 64 * 1024 + 16 * 1024


def test_cpu_figure_tracks_real_work(judge: Judge) -> None:
    source = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    result = verdict(judge, "python", source)
    assert result.verdict == Verdict.AC
    assert 300 <= result.cpu_time_ms <= 400
