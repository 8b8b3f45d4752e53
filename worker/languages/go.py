"""Go 1.19: Debian's toolchain, ``go build`` once per program in the go image, into a static
binary (``CGO_ENABLED=0``: no libc) that runs in C's native image.

A program is its ``.go`` files, one package ``main``, built by file name in module mode
without a ``go.mod``: only the standard library can be imported (``GOPROXY=off``: no module is
ever fetched, and asking for one is ``CE`` saying so). The build's cache and ``GOPATH`` are
under ``HOME``, the job's work dir, so nothing of one build reaches the next.

Whose limits: Go's runtime sizes itself from the machine, the judge's limits decide.
``GOMAXPROCS=1``: the sandbox has one CPU (its quota), while Go would take every core the host
has, and so a thread count and a garbage collector's share of CPU time that depend on the host;
with one it starts 3 threads, and a fourth once a goroutine waits in the kernel (counted in
``runtime_threads``, measured in a sandbox).
Go sets no memory limit of its own (``GOMEMLIMIT`` is off): a hog is ``MLE`` by the sandbox's
ledger. A panic (exit code 2, its message and goroutine trace on stderr) and an
unrecoverable runtime error are ``RE``."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "1.19"

LANGUAGE = Language(
    name="go",
    aliases=("golang", f"go{VERSION}"),
    display=f"Go {VERSION} (go build, Debian)",
    version=VERSION,
    image="native",
    source_file="main.go",
    run=("./main",),
    sources=(".go",),
    selftest='package main\n\nimport (\n\t"io"\n\t"os"\n)\n\n'
    "func main() { io.Copy(os.Stdout, os.Stdin) }\n",
    compile=Compile(
        image="go",
        # -buildmode=exe: a package other than main is CE ("requires exactly one main
        # package"), not an archive written as ./main that no test could exec
        argv=(
            *(f"/usr/lib/go-{VERSION}/bin/go", "build", "-buildmode=exe", "-o", "main"),
            *("{options}", "{sources}"),
        ),
        artifact="main",
    ),
    # GOENV=off: no go/env file from HOME, the work dir, where a program's files are (one
    # named .config/go/env set GOOS, GOFLAGS... for the build); GOWORK=off: no go.work either
    env=("CGO_ENABLED=0", "GOPROXY=off", "GOENV=off", "GOWORK=off", "GOMAXPROCS=1"),
    # with GOMAXPROCS=1: its main thread, sysmon, one for the scheduler's spare work, and one
    # more when a goroutine waits in the kernel (a read of an interactor's pipe) past a tick of
    # sysmon, which hands the waiting thread's place to another: 4 in all for one goroutine
    # (measured in a sandbox; with 3, such a program died one run in two, "failed to create
    # new OS thread"; tests/sandbox/test_go.py)
    runtime_threads=3,
    images=(
        ImageSpec(
            key="go",
            dockerfile="images/go/Dockerfile",
            target="production",
            inputs=("images/go", "images/common"),
            args=(("GO_VERSION", VERSION),),
            description=f"Compiles Go submissions: Debian's Go {VERSION} toolchain in a minimal "
            "FROM-scratch root (static binaries run in native)",
            development_description=f"Debian's Go {VERSION} with bash and strace",
        ),
    ),
)
