"""Pascal with Debian's Free Pascal 3.2.2, in FPC's default mode: ``fpc -O2 -XS`` with
Debian's configuration alone (not an ``fpc.cfg`` among the program's files) compiles the entry
once, in the fpc image (fpc finds the units it uses among the program's files), into
a static binary that needs no library at all, run in C's native image.

Runtime errors are FPC's own: its runtime library turns a fault it catches into ``Runtime
error N`` on stderr and exit code N (an access violation 216, a division by zero 200, an
exception nobody caught 217), so they are ``RE`` with that code; a program dies of a signal
only where FPC catches none (SIGABRT). The stack limit is the job's memory limit, as for C: a
recursion without end fills the memory first (``MLE``). A hog is stopped by the sandbox's
cgroup (``MLE``); a heap the kernel would not map at all is FPC's runtime error 203, ``MLE``
as well."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "3.2.2"

LANGUAGE = Language(
    name="pascal",
    # not "delphi": FPC's default mode is not Delphi's language (-Mdelphi would be)
    aliases=("pas", "fpc", "freepascal"),
    display="Pascal (Free Pascal, -O2)",
    version=VERSION,
    image="native",
    source_file="main.pas",
    run=("./main",),
    sources=(".pas", ".pp"),
    selftest="var c: char;\nbegin\n  while not eof(input) do begin read(c); write(c) end\nend.\n",
    compile=Compile(
        image="fpc",
        # one file: fpc compiles the units the entry uses from the work dir itself
        # -n @/etc/fpc.cfg: Debian's configuration alone, never an fpc.cfg or .fpc.cfg among
        # the program's files (fpc reads the work dir's and HOME's first, and takes the first)
        argv=(
            *("/usr/bin/fpc", "-n", "@/etc/fpc.cfg", "-O2", "-XS", "-omain"),
            "{options}",
            "{entry}",
        ),
        artifact="main",
        memory_mb=256,
        processes=16,
    ),
    # FPC's heap overflow: the kernel would not map what the program asked (a hog whose memory
    # was charged is stopped by the sandbox's cgroup first, MLE by the ledger)
    out_of_memory=("Runtime error 203",),
    images=(
        ImageSpec(
            key="fpc",
            dockerfile="images/fpc/Dockerfile",
            target="compiler",
            inputs=("images/fpc",),
            args=(("FPC_VERSION", VERSION),),
            description=f"Compiles Pascal submissions into static binaries (run in native): "
            f"Debian's Free Pascal {VERSION}",
            development_description=f"Debian's Free Pascal {VERSION}, gdb, strace",
        ),
    ),
)
