"""The language registry: data, not code paths. A new language is an entry here plus an image.

Each entry names the image its programs run in (keys of :data:`worker.images.catalog.IMAGES`),
the file the source is written to, an optional compile step (run once per submission, in its
own image, with its own limits) and the command that runs a test. For interpreted languages the
"compile" step is a syntax check, so a syntax error is a ``CE`` before any test runs.
"""

from __future__ import annotations

from dataclasses import dataclass

# Prints only the error (no traceback through the checker) and writes no bytecode.
PY_SYNTAX_CHECK = """import sys, traceback
try:
    compile(open(sys.argv[1], "rb").read(), sys.argv[1], "exec")
except (SyntaxError, ValueError) as exc:
    sys.stderr.write("".join(traceback.format_exception_only(exc)))
    sys.exit(1)
"""
BASE_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8")


@dataclass(frozen=True)
class Compile:
    image: str
    argv: tuple[str, ...]
    artifact: str | None = None  # file the compile step produces, given to every test run
    cpu_time_ms: int = 10_000
    wall_time_ms: int = 20_000
    memory_mb: int = 512
    processes: int = 16


@dataclass(frozen=True)
class Language:
    name: str
    display: str
    version: str
    image: str
    source_file: str
    run: tuple[str, ...]
    compile: Compile | None = None
    env: tuple[str, ...] = ()
    # threads the runtime itself starts (they count against the processes limit)
    runtime_threads: int = 0
    # a fork server in the image that runs ``run`` without starting a new interpreter
    forkserver: tuple[str, ...] = ()

    @property
    def compile_image(self) -> str:
        """The image whose identity keys this language's compiled programs."""
        return self.compile.image if self.compile else self.image

    @property
    def job_env(self) -> tuple[str, ...]:
        """The job's whole environment; the supervisor adds HOME and TMPDIR (its work dir)."""
        return (*BASE_ENV, *self.env)


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language(
            name="python",
            display="Python 3 (CPython, Debian)",
            version="3.11",
            image="python",
            source_file="main.py",
            run=("/usr/bin/python3", "main.py"),
            # CPython's start is most of a trivial test's cost; forking a started one is not
            forkserver=("/usr/bin/python3", "/opt/runner/forkserver.py"),
            compile=Compile(
                image="python",
                argv=("/usr/bin/python3", "-c", PY_SYNTAX_CHECK, "main.py"),
                cpu_time_ms=5_000,
                wall_time_ms=10_000,
                memory_mb=256,
                processes=4,
            ),
            env=("PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "PYTHONHASHSEED=0"),
        ),
        Language(
            name="c",
            display="C17 (gcc, -O2)",
            version="gcc 12",
            image="native",
            source_file="main.c",
            run=("./main",),
            compile=Compile(
                image="gcc",
                argv=("/usr/bin/gcc", "-std=c17", "-O2", "-pipe", "-o", "main", "main.c", "-lm"),
                artifact="main",
            ),
        ),
        Language(
            name="cpp",
            display="C++17 (g++, -O2)",
            version="g++ 12",
            image="native",
            source_file="main.cpp",
            run=("./main",),
            compile=Compile(
                image="gcc",
                argv=("/usr/bin/g++", "-std=c++17", "-O2", "-pipe", "-o", "main", "main.cpp"),
                artifact="main",
            ),
        ),
        Language(
            name="javascript",
            display="JavaScript (Node.js, Debian)",
            version="18",
            image="javascript",
            source_file="main.js",
            run=("/usr/bin/node", "main.js"),
            compile=Compile(
                image="javascript",
                argv=("/usr/bin/node", "--check", "main.js"),
                cpu_time_ms=5_000,
                wall_time_ms=10_000,
                memory_mb=256,
                processes=24,
            ),
            runtime_threads=16,
        ),
    )
}
