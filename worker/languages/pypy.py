"""PyPy 3: Debian's pypy3 (PyPy 7.3, Python 3.9), what Python contestants pick when CPython is
too slow. Syntax-checked once, as Python is; each test is forked from a started pypy3
(images/pypy/forkserver.py: faithful because PyPy itself runs a script from Python, through
frames it hides, and the server takes that very path; its docstring and docs/contract.md list
what may differ), which costs a test a few milliseconds where PyPy's own start costs about 25
(one thread: no JIT thread of its own, so it can fork). It writes no bytecode (the image ships the
standard library's, and ``PYTHONDONTWRITEBYTECODE`` keeps an imported module of the program's
from leaving a ``__pycache__`` behind); its garbage collector sizes itself from the machine, but
the sandbox's memory limit is the ledger that decides (a hog is ``MLE``)."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "3.9"
# Python's check, as PyPy's compiler sees the sources: only the errors, no bytecode written. PyPy
# folds constant operations as it compiles (b"x" * (400 << 20) is built, then dropped as too
# large), so compiling the sources as they are would make a program that merely runs big CE
# ("compilation used too much memory") under the check's limits; every constant operand of an
# operator is made a name first, which leaves every error compile() finds (return outside a
# function, nonlocal, duplicate arguments: ast.parse alone finds none of them) and folds nothing.
# The run compiles the program as `pypy3 main.py` does, under the test's limits.
SYNTAX_CHECK = """import ast, sys, traceback
class Opaque(ast.NodeTransformer):
    def visit_BinOp(self, node):
        self.generic_visit(node)
        for side in ("left", "right"):
            operand = getattr(node, side)
            if isinstance(operand, ast.Constant):
                setattr(node, side, ast.copy_location(ast.Name("_", ast.Load()), operand))
        return node
failed = False
for path in sys.argv[1:]:
    source = open(path, "rb").read()
    try:
        compile(Opaque().visit(ast.parse(source, path)), path, "exec")
    except (SyntaxError, ValueError) as exc:
        if isinstance(exc, SyntaxError) and exc.text is None and exc.lineno:
            lines = source.decode("utf-8", "replace").splitlines()
            exc.text = lines[exc.lineno - 1] + "\\n" if exc.lineno <= len(lines) else None
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        failed = True
sys.exit(1 if failed else 0)
"""

# The fork server's start (images/pypy/forkserver.py says why it is run this way): its frame is
# hidden, and in each job it runs the script's code itself, where `pypy3 main.py` runs it.
LAUNCH = """with open("/opt/runner/forkserver.py", "rb") as source:
    server = {}
    exec(compile(source.read(), source.name, "exec"), server)
del source
code, namespace = server["job"]()
del server
exec(code, namespace)
"""

LANGUAGE = Language(
    name="pypy",
    aliases=("pypy3",),
    display="PyPy 3.9 (PyPy 7.3, Debian)",
    version=VERSION,
    image="pypy",
    source_file="main.py",
    run=("/usr/bin/pypy3", "{entry}"),
    sources=(".py",),
    selftest="import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())\n",
    # PyPy's start is most of a trivial test's cost; forking a started one is not
    forkserver=("/usr/bin/pypy3", "-c", LAUNCH),
    compile=Compile(
        image="pypy",
        argv=("/usr/bin/pypy3", "-c", SYNTAX_CHECK, "{sources}"),
        cpu_time_ms=5_000,
        wall_time_ms=10_000,
        memory_mb=256,
        processes=4,
    ),
    env=("PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "PYTHONHASHSEED=0"),
    images=(
        ImageSpec(
            key="pypy",
            dockerfile="images/pypy/Dockerfile",
            target="production",
            inputs=("images/pypy", "images/common"),
            args=(("PYPY_VERSION", VERSION),),
            description=f"Sandbox for PyPy submissions: Debian's pypy3 (Python {VERSION}) in a "
            "minimal FROM-scratch root",
            development_description=f"Debian's pypy3 (Python {VERSION}) with bash and strace",
            # amd64, compressed, PyPy 7.3.11 on bullseye-slim, as docker-library/repo-info lists
            # it; ours on disk is 95 MB (libpypy alone 59), 27 MB compressed, which
            # tests/images compares then
            official_slim=("pypy:3.9-slim", 71.8),
        ),
    ),
)
