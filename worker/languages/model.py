"""What a language is: :class:`Language` and its optional :class:`Compile` step, and the
constants more than one language shares. The languages themselves are the package's other
modules, one each (:mod:`worker.languages`).

Each language names the image its programs run in (a key of
:data:`worker.images.catalog.IMAGES`, which one language declares in :attr:`Language.images`
and others may reuse: C and C++ share the gcc images), the file a lone ``source`` is written to
(also the default entry point), which of a program's files are its sources, an optional compile
step (run once per program, in its own image, with its own limits) and the command that runs
it. For interpreted languages the "compile" step is a syntax check of every source file, so a
syntax error is a ``CE`` before any test runs.

Argument templates: ``{entry}`` is the program's entry file and, in :attr:`Language.run`,
``{memory_mb}`` and ``{stack_kb}`` the job's memory and stack limits (for a runtime that would
otherwise size itself from the machine, as a JVM does: ``-Xmx{memory_mb}m``); ``{sources}`` is
every source file
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
from dataclasses import dataclass, field

BASE_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8")
# The major version of Debian bookworm's GCC, which C and C++ compile with (images/gcc checks
# it at build time)
GCC_VERSION = "12"
# C and C++ options anyone may ask for beside a standard: an optimisation level, warnings, a
# macro defined or undefined
OPTIMISATIONS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Og", "-Ofast")
WARNINGS = ("-Wall", "-Wextra", "-Werror", "-Wpedantic", "-w")
_MACRO = r"[A-Za-z_][A-Za-z0-9_]*"
GCC_OPTIONS = (
    "|".join(map(re.escape, (*OPTIMISATIONS, *WARNINGS))),
    rf"-D{_MACRO}(=[A-Za-z0-9_.+-]{{0,64}})?",
    rf"-U{_MACRO}",
)


# What an image is to the build tool: its Dockerfile, target, build args and the files that
# define it. A language declares its images with it; the build tool (worker.images) reads them.
@dataclass(frozen=True)
class ImageSpec:
    key: str
    dockerfile: str
    target: str
    inputs: tuple[str, ...]
    args: tuple[tuple[str, str], ...] = ()
    sandbox: bool = True  # pooled as a sandbox by workers (the supervisor image is not)
    # what the image is, its OCI description label (the build writes every OCI label:
    # worker/images/build.py); development_description says what the Dockerfile's
    # ``development`` target adds ("Debugging variant of NAME: " goes before it)
    description: str = field(default="", compare=False)
    development_description: str = field(default="", compare=False)
    # the official image a deployment would run this runtime in otherwise, and its size in MB
    # as Docker Hub lists it (compressed for transfer, so less than it takes on disk): this
    # image must be smaller (tests/images), scripts/bench images reports both
    official_slim: tuple[str, float] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Compile:
    image: str
    argv: tuple[str, ...]  # with {sources} (or {entry}) and {options}
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
        """The compiler's argv: ``{entry}`` the first of ``sources`` (for a compiler that takes
        one file and finds the others itself, as fpc finds units)."""
        files = tuple(sources)
        expanded: list[str] = []
        for part in self.argv:
            if part == "{sources}":
                expanded.extend(files)
            elif part == "{entry}":
                expanded.append(files[0])
            elif part == "{options}":
                expanded.extend(options)
            else:
                expanded.append(part)
        return tuple(expanded)


@dataclass(frozen=True)
class Language:
    name: str  # also the name of its module: worker/languages/<name>.py
    display: str
    # what Debian bookworm ships, as its image's build checks it (a major, or major.minor)
    version: str
    image: str
    # other names a submission may give it, in any case: what users of other judges type
    # (Judge0's `c++`, `py`, `js`), so their habits work; no two languages share one
    aliases: tuple[str, ...]
    source_file: str
    run: tuple[str, ...]  # with {entry}, {memory_mb}, {stack_kb}
    sources: tuple[str, ...]  # suffixes of the files the compile step takes
    # a program that copies its standard input to its standard output, byte for byte, and
    # writes nothing on stderr: every worker compiles (when the language compiles) and runs it
    # in a real sandbox at its start, and judges no program of a language whose self-test
    # failed (worker/judging/selftest.py)
    selftest: str
    compile: Compile | None = None
    env: tuple[str, ...] = ()
    # what the runtime writes on stderr when a program runs out of memory its own way (a JVM
    # at its -Xmx, or one that cannot reserve its heap): a run that failed saying one of these
    # is MLE, not RE (the kernel's ledger catches the rest)
    out_of_memory: tuple[str, ...] = ()
    # the largest {stack_kb} its runtime accepts (a JVM's -Xss: 1 GB), when the job's is larger
    max_stack_kb: int | None = None
    # threads the runtime itself starts (they count against the processes limit)
    runtime_threads: int = 0
    # a fork server in the image that runs ``run`` without starting a new interpreter
    forkserver: tuple[str, ...] = ()
    # for a runtime that cannot fork once started: the options, put after ``run``'s argv[0],
    # that start it parked (a launcher in the image that waits for its one job, before any
    # of the job's code: images/supervisor/park.c)
    park: tuple[str, ...] = ()
    # files the parked runtime needs before its job's arrive, (name in the work dir, file in
    # the image): the image's stands in until the job's own replaces it (park.c, park_file)
    park_files: tuple[tuple[str, str], ...] = ()
    # the images this language brings to the catalogue (another may run or compile in them)
    images: tuple[ImageSpec, ...] = ()

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
    def image_keys(self) -> frozenset[str]:
        """Every image its programs compile or run in: what a worker running it needs."""
        return frozenset({self.image, self.compile_image})

    @property
    def job_env(self) -> tuple[str, ...]:
        """The job's whole environment; the supervisor adds HOME and TMPDIR (its work dir)."""
        return (*BASE_ENV, *self.env)

    def command(
        self,
        entry: str,
        args: Iterable[str] = (),
        *,
        memory_mb: int | None = None,
        stack_kb: int | None = None,
    ) -> tuple[str, ...]:
        """The argv that runs a program whose entry file is ``entry``, under the job's limits
        where ``run`` names them."""
        if stack_kb is not None and self.max_stack_kb is not None:
            stack_kb = min(stack_kb, self.max_stack_kb)
        values = {"{entry}": entry, "{memory_mb}": memory_mb, "{stack_kb}": stack_kb}
        argv: list[str] = []
        for part in self.run:
            for placeholder, value in values.items():
                if placeholder in part:
                    if value is None:
                        raise ValueError(f"{self.name}: run needs {placeholder}")
                    part = part.replace(placeholder, str(value))
            argv.append(part)
        return (*argv, *args)

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
