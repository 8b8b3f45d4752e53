"""Python 3: Debian's CPython, syntax-checked once, each test forked from a started interpreter
(images/python/forkserver.py), which costs a test far less than the interpreter's own start."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "3.11"
# Prints only the errors (no traceback through the checker) and writes no bytecode.
SYNTAX_CHECK = """import sys, traceback
failed = False
for path in sys.argv[1:]:
    try:
        compile(open(path, "rb").read(), path, "exec")
    except (SyntaxError, ValueError) as exc:
        sys.stderr.write("".join(traceback.format_exception_only(exc)))
        failed = True
sys.exit(1 if failed else 0)
"""

LANGUAGE = Language(
    name="python",
    aliases=("py", "python3", "py3"),
    display="Python 3 (CPython, Debian)",
    version=VERSION,
    image="python",
    source_file="main.py",
    run=("/usr/bin/python3", "{entry}"),
    sources=(".py",),
    selftest="import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())\n",
    # CPython's start is most of a trivial test's cost; forking a started one is not
    forkserver=("/usr/bin/python3", "/opt/runner/forkserver.py"),
    compile=Compile(
        image="python",
        argv=("/usr/bin/python3", "-c", SYNTAX_CHECK, "{sources}"),
        cpu_time_ms=5_000,
        wall_time_ms=10_000,
        memory_mb=256,
        processes=4,
    ),
    env=("PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "PYTHONHASHSEED=0"),
    images=(
        ImageSpec(
            key="python",
            dockerfile="images/python/Dockerfile",
            target="production",
            inputs=("images/python", "images/common"),
            args=(("PYTHON_VERSION", VERSION),),
            description=f"Sandbox for Python submissions: Debian's python{VERSION} in a minimal "
            "FROM-scratch root",
            development_description=f"full Debian python{VERSION}, pip, strace",
            # amd64, compressed (3.11.16 on bookworm), as docker-library/repo-info lists it
            official_slim=("python:3.11-slim-bookworm", 47.8),
        ),
    ),
)
