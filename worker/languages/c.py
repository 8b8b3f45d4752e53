"""C17 with Debian's GCC, compiled once per program in the gcc image; the program runs in the
native image (loader, libc, libm, libstdc++, libgcc_s: nothing else). C++ shares both."""

from dataclasses import replace

from worker.languages.model import GCC_OPTIONS, GCC_VERSION, Compile, ImageSpec, Language

# the standards GCC 12 (Debian bookworm's) names: it knows c2x, not yet c23
STANDARDS = tuple(
    f"{d}{v}" for d in ("c", "gnu") for v in ("89", "90", "99", "11", "17", "18", "2x")
)
# one Dockerfile, two targets: the toolchain, and the run image it assembles
COMPILER = ImageSpec(
    key="gcc",
    dockerfile="images/gcc/Dockerfile",
    target="compiler",
    inputs=("images/gcc", "images/common"),
    args=(("GCC_VERSION", GCC_VERSION),),
    description=f"Compiles C and C++ submissions: Debian's gcc-{GCC_VERSION} and g++-{GCC_VERSION}",
    development_description=f"gcc-{GCC_VERSION}, g++-{GCC_VERSION}, gdb, strace",
)
NATIVE = replace(
    COMPILER,
    key="native",
    target="production",
    description="Runs compiled C and C++ submissions: loader, libc, libm, libstdc++ and "
    f"libgcc_s of gcc-{GCC_VERSION}, nothing else",
)

LANGUAGE = Language(
    name="c",
    aliases=("gcc",),
    display="C17 (gcc, -O2)",
    version=f"gcc {GCC_VERSION}",
    image=NATIVE.key,
    source_file="main.c",
    run=("./main",),
    sources=(".c",),
    selftest="#include <stdio.h>\nint main(void){int c;while((c=getchar())!=EOF)putchar(c);}\n",
    compile=Compile(
        image=COMPILER.key,
        argv=(
            *("/usr/bin/gcc", "-std=c17", "-O2", "-pipe", "{options}"),
            *("-o", "main", "{sources}", "-lm"),
        ),
        artifact="main",
        standards=STANDARDS,
        options=GCC_OPTIONS,
        static=("-static",),
    ),
    images=(COMPILER, NATIVE),
)
