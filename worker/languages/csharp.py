"""C# with Debian's Mono 6.8: ``mcs -optimize+`` compiles every source once, in the mcs image,
to ``main.exe``, which ``mono`` runs in the mono image (FROM scratch: the runtime, mscorlib and
its AOT image, System, System.Core and System.Numerics, nothing else; mcs references exactly
those, so a program using another assembly is ``CE``, never a failure at run time).

Whose limits: the judge's. Mono's GC has no heap limit of its own here (no ``MONO_GC_PARAMS``),
so a hog grows until the sandbox's memory cgroup stops it (``MLE`` by the ledger); an
``OutOfMemoryException`` nobody caught (a heap Mono could not map at all) is ``MLE`` too. The
main thread's stack limit is the job's memory limit, as for C: a recursion without end fills
the memory first (``MLE``). A native crash prints Mono's report on stdout (Mono's choice; the
run is ``RE`` whatever it printed). Mono starts 2 threads of its own beside the program's."""

from dataclasses import replace

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "6.8"
# the assemblies the run image keeps, which mcs may link: what judged programs use (LINQ and
# HashSet in System.Core, BigInteger in System.Numerics, Regex and the generic collections
# beyond mscorlib's in System)
ASSEMBLIES = ("System.dll", "System.Core.dll", "System.Numerics.dll")

COMPILER = ImageSpec(
    key="mcs",
    dockerfile="images/mono/Dockerfile",
    target="compiler",
    inputs=("images/mono", "images/common"),
    args=(("MONO_VERSION", VERSION),),
    description=f"Compiles C# submissions: Debian's Mono {VERSION} C# compiler (mcs)",
    development_description=f"Debian's Mono {VERSION} and mcs with bash and strace",
)
RUNTIME = replace(
    COMPILER,
    key="mono",
    target="production",
    description=f"Runs compiled C# submissions: Debian's Mono {VERSION} runtime with mscorlib, "
    "System, System.Core and System.Numerics in a FROM-scratch root",
    # amd64, mono:6.10.0.104-slim as docker-library/repo-info lists it (6.8's slim tags are
    # retired; 6.10-slim is the nearest)
    official_slim=("mono:6.10-slim (6.8's slim tags are retired)", 94.7),
)

LANGUAGE = Language(
    name="csharp",
    aliases=("cs", "c#", "mono"),
    display="C# (Mono, mcs -optimize+)",
    version=VERSION,
    image=RUNTIME.key,
    source_file="main.cs",
    # the program's arguments come after the assembly, where mono takes no option
    run=("/usr/bin/mono", "main.exe"),
    sources=(".cs",),
    selftest="using System;\nclass Echo {\n    static void Main() {\n"
    "        Console.OpenStandardInput().CopyTo(Console.OpenStandardOutput());\n    }\n}\n",
    compile=Compile(
        image=COMPILER.key,
        argv=(
            *("/usr/bin/mono", "/usr/lib/mono/4.5/mcs.exe", "-optimize+", "-noconfig"),
            *(f"-r:{assembly}" for assembly in ASSEMBLIES),
            *("-out:main.exe", "{options}", "{sources}"),
        ),
        artifact="main.exe",
        processes=32,
    ),
    # no /dev/shm/mono.PID performance area; a native crash's report (on stdout: Mono's) written
    # to no file (mono_crash.*.json in the work dir would be cut short by the output limit and
    # the crash judged OLE, not RE)
    env=("MONO_DISABLE_SHARED_AREA=1", "MONO_CRASH_NOFILE=1"),
    runtime_threads=2,
    # an OutOfMemoryException nobody caught: a heap Mono could not reserve (a 64 GB array), which
    # the kernel's ledger never saw
    out_of_memory=("System.OutOfMemoryException",),
    images=(COMPILER, RUNTIME),
)
