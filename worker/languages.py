"""The language registry: data, not code paths. A new language is an entry here plus an image.
Everything that names languages derives from it: the contract's checks and JSON Schema, the
aliases a submission may use instead of a name (:data:`NAMES`), the CLI's help, the HTTP API's
``/v1/languages``.

Each entry names the image its programs run in (keys of :data:`worker.images.catalog.IMAGES`),
the file a lone ``source`` is written to (also the default entry point), which of a program's
files are its sources, an optional compile step (run once per program, in its own image, with
its own limits) and the command that runs it. For interpreted languages the "compile" step is
a syntax check of every source file, so a syntax error is a ``CE`` before any test runs.

Argument templates: ``{entry}`` is the program's entry file, ``{sources}`` every source file
(the entry first), ``{options}`` the submission's ``compiler_options``, each checked against the
language's allow-list (:attr:`Compile.standards` for ``-std=``, :attr:`Compile.options`,
regular expressions a whole option must match) and the operator's additions
(``RUNNER_COMPILER_OPTIONS``, exact options); never a shell. The allow-list is exactly what the
image's compiler accepts: tests/sandbox/test_options.py compiles a program with every form it
documents, so it can promise nothing the compiler refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Prints only the errors (no traceback through the checker) and writes no bytecode.
PY_SYNTAX_CHECK = """import sys, traceback
failed = False
for path in sys.argv[1:]:
    try:
        compile(open(path, "rb").read(), path, "exec")
    except (SyntaxError, ValueError) as exc:
        sys.stderr.write("".join(traceback.format_exception_only(exc)))
        failed = True
sys.exit(1 if failed else 0)
"""
# `node --check` takes one file: one child per source file, its errors passed through.
JS_SYNTAX_CHECK = """const {spawnSync} = require('child_process');
let failed = false;
for (const file of process.argv.slice(1)) {
  const stdio = ['ignore', 'ignore', 'inherit'];
  if (spawnSync(process.execPath, ['--check', file], {stdio}).status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
"""
BASE_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8")
# C and C++ options anyone may ask for: a standard (as GCC 12, Debian bookworm's, names them:
# it knows c2x, not yet c23), an optimisation level, warnings, a macro defined or undefined
C_STANDARDS = tuple(
    f"{d}{v}" for d in ("c", "gnu") for v in ("89", "90", "99", "11", "17", "18", "2x")
)
CPP_STANDARDS = tuple(
    f"{d}++{v}"
    for d in ("c", "gnu")
    for v in ("98", "03", "11", "14", "17", "20", "2a", "23", "2b")
)
OPTIMISATIONS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Og", "-Ofast")
WARNINGS = ("-Wall", "-Wextra", "-Werror", "-Wpedantic", "-w")
_MACRO = r"[A-Za-z_][A-Za-z0-9_]*"
_COMMON_OPTIONS = (
    "|".join(map(re.escape, (*OPTIMISATIONS, *WARNINGS))),
    rf"-D{_MACRO}(=[A-Za-z0-9_.+-]{{0,64}})?",
    rf"-U{_MACRO}",
)


@dataclass(frozen=True)
class Compile:
    image: str
    argv: tuple[str, ...]  # with {sources} and {options}
    artifact: str | None = None  # file the compile step produces, given to every test run
    cpu_time_ms: int = 10_000
    wall_time_ms: int = 20_000
    memory_mb: int = 512
    processes: int = 16
    standards: tuple[str, ...] = ()  # what -std= may name in compiler_options
    options: tuple[str, ...] = ()  # what else compiler_options may hold (patterns)
    static: tuple[str, ...] = ()  # options for a program that must run in any image
    max_options: int = 16
    # a bound on each, whatever the allow-list's patterns let through: an argument of 128 KB
    # is more than exec takes (E2BIG), and nobody needs a macro name a screen long
    max_option_chars: int = 256

    def command(self, sources: Iterable[str], options: Iterable[str]) -> tuple[str, ...]:
        expanded: list[str] = []
        for part in self.argv:
            if part == "{sources}":
                expanded.extend(sources)
            elif part == "{options}":
                expanded.extend(options)
            else:
                expanded.append(part)
        return tuple(expanded)


@dataclass(frozen=True)
class Language:
    name: str
    display: str
    version: str
    image: str
    # other names a submission may give it, in any case: what users of other judges type
    # (Judge0's `c++`, `py`, `js`), so their habits work; no two languages share one
    aliases: tuple[str, ...]
    source_file: str
    run: tuple[str, ...]  # with {entry}
    sources: tuple[str, ...]  # suffixes of the files the compile step takes
    compile: Compile | None = None
    env: tuple[str, ...] = ()
    # threads the runtime itself starts (they count against the processes limit)
    runtime_threads: int = 0
    # a fork server in the image that runs ``run`` without starting a new interpreter
    forkserver: tuple[str, ...] = ()

    @property
    def compiled(self) -> bool:
        """Whether a compile step builds a program (C, C++); a step that produces none only
        checks the sources' syntax (Python, JavaScript)."""
        return self.compile is not None and self.compile.artifact is not None

    @property
    def syntax_checked(self) -> bool:
        return self.compile is not None and self.compile.artifact is None

    @property
    def compile_image(self) -> str:
        """The image whose identity keys this language's compiled programs."""
        return self.compile.image if self.compile else self.image

    @property
    def job_env(self) -> tuple[str, ...]:
        """The job's whole environment; the supervisor adds HOME and TMPDIR (its work dir)."""
        return (*BASE_ENV, *self.env)

    def command(self, entry: str, args: Iterable[str] = ()) -> tuple[str, ...]:
        """The argv that runs a program whose entry file is ``entry``."""
        return (*(entry if part == "{entry}" else part for part in self.run), *args)

    def is_source(self, name: str) -> bool:
        return name.endswith(self.sources)

    def option_allowed(self, option: str, extra: frozenset[str] = frozenset()) -> bool:
        """Whether ``compiler_options`` may hold ``option`` (``extra``: the operator's)."""
        if self.compile is None or len(option) > self.compile.max_option_chars:
            return False
        if option in extra:
            return True
        if option.startswith("-std="):
            return option.removeprefix("-std=") in self.compile.standards
        return any(re.fullmatch(pattern, option) for pattern in self.compile.options)


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language(
            name="python",
            aliases=("py", "python3", "py3"),
            display="Python 3 (CPython, Debian)",
            version="3.11",
            image="python",
            source_file="main.py",
            run=("/usr/bin/python3", "{entry}"),
            sources=(".py",),
            # CPython's start is most of a trivial test's cost; forking a started one is not
            forkserver=("/usr/bin/python3", "/opt/runner/forkserver.py"),
            compile=Compile(
                image="python",
                argv=("/usr/bin/python3", "-c", PY_SYNTAX_CHECK, "{sources}"),
                cpu_time_ms=5_000,
                wall_time_ms=10_000,
                memory_mb=256,
                processes=4,
            ),
            env=("PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "PYTHONHASHSEED=0"),
        ),
        Language(
            name="c",
            aliases=("gcc",),
            display="C17 (gcc, -O2)",
            version="gcc 12",
            image="native",
            source_file="main.c",
            run=("./main",),
            sources=(".c",),
            compile=Compile(
                image="gcc",
                argv=(
                    *("/usr/bin/gcc", "-std=c17", "-O2", "-pipe", "{options}"),
                    *("-o", "main", "{sources}", "-lm"),
                ),
                artifact="main",
                standards=C_STANDARDS,
                options=_COMMON_OPTIONS,
                static=("-static",),
            ),
        ),
        Language(
            name="cpp",
            aliases=("c++", "cxx", "g++"),
            display="C++17 (g++, -O2)",
            version="g++ 12",
            image="native",
            source_file="main.cpp",
            run=("./main",),
            sources=(".cpp", ".cc", ".cxx"),
            compile=Compile(
                image="gcc",
                argv=(
                    *("/usr/bin/g++", "-std=c++17", "-O2", "-pipe", "{options}"),
                    *("-o", "main", "{sources}"),
                ),
                artifact="main",
                standards=CPP_STANDARDS,
                options=_COMMON_OPTIONS,
                static=("-static",),
            ),
        ),
        Language(
            name="javascript",
            aliases=("js", "node", "nodejs"),
            display="JavaScript (Node.js, Debian)",
            version="18",
            image="javascript",
            source_file="main.js",
            run=("/usr/bin/node", "{entry}"),
            sources=(".js", ".mjs", ".cjs"),
            compile=Compile(
                image="javascript",
                argv=("/usr/bin/node", "-e", JS_SYNTAX_CHECK, "{sources}"),
                cpu_time_ms=5_000,
                wall_time_ms=10_000,
                memory_mb=256,
                processes=64,
            ),
            runtime_threads=16,
        ),
    )
}

# every name a submission may give a language, in lower case -> the language's own name
NAMES: dict[str, str] = {
    alias.lower(): lang.name for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)
}


def language_named(name: str) -> Language | None:
    """The language a submission names, by its name or an alias, in any case."""
    found = NAMES.get(name.lower())
    return LANGUAGES[found] if found is not None else None
