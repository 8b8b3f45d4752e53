"""Haskell with Debian's GHC 9.0.2: ``ghc -O2`` compiles every source once, in the ghc image,
into a static binary (libgmp and libffi linked in: ``-optl-static``), run in C's native image;
the packages GHC ships are there (base, containers, array, bytestring, text, mtl, unix...), and
no package environment file among the program's changes which (``-package-env -``).

Whose limits: the judge's. The binary is linked with ``-rtsopts=ignoreAll``: its RTS takes no
option from its command line or from ``GHCRTS``, so ``+RTS -M1m`` among a test's arguments
reaches the program as arguments, and no program sets a heap (``-M``) or stack (``-K``) limit
of its own; the RTS's defaults set none a job could reach (``-K`` is 80% of the host's memory).
A hog grows until the sandbox's cgroup stops it: ``MLE``. GHC's stack lives on its heap, so a
recursion too deep is memory like any other: ``MLE`` too, never a ``stack overflow`` that a
smaller ``-K`` would invent. An ``error`` nobody catches is exit code 1, ``RE``. The
non-threaded RTS starts no thread of its own.

GHC is slow and hungry: a small program takes 0.5 to 1 s to compile here and a few hundred MB,
so its compile step gets 20 s of CPU (twice C's), 25 s wall and 1 GB."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "9.0.2"

LANGUAGE = Language(
    name="haskell",
    aliases=("hs", "ghc"),
    display="Haskell (GHC, -O2)",
    version=VERSION,
    image="native",
    source_file="main.hs",
    run=("./main",),
    sources=(".hs",),
    selftest="import qualified Data.ByteString as B\n\nmain :: IO ()\n"
    "main = B.getContents >>= B.putStr\n",
    compile=Compile(
        image="ghc",
        argv=(
            *("/usr/bin/ghc", "-O2", "-rtsopts=ignoreAll", "-optl-static", "-optl-pthread"),
            # no package environment file: ghc reads one from HOME, the work dir, where a
            # program's files are (.ghc/<arch>-<os>-<version>/environments/default)
            *("-package-env", "-", "-o", "main", "{options}", "{sources}"),
        ),
        artifact="main",
        cpu_time_ms=20_000,
        wall_time_ms=25_000,
        memory_mb=1024,
        processes=32,
    ),
    # what GHC's RTS says when the kernel will not map what the program asked (it then aborts)
    out_of_memory=("internal error: Unable to commit", "out of memory (requested"),
    images=(
        ImageSpec(
            key="ghc",
            dockerfile="images/ghc/Dockerfile",
            target="compiler",
            inputs=("images/ghc",),
            args=(("GHC_VERSION", VERSION),),
            description=f"Compiles Haskell submissions into static binaries (run in native): "
            f"Debian's GHC {VERSION}",
            development_description=f"Debian's GHC {VERSION}, gdb, strace",
        ),
    ),
)
