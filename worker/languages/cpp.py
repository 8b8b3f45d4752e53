"""C++17 with Debian's g++, in the images C declares (worker/languages/c.py)."""

from worker.languages.model import GCC_OPTIONS, GCC_VERSION, Compile, Language

STANDARDS = tuple(
    f"{d}++{v}"
    for d in ("c", "gnu")
    for v in ("98", "03", "11", "14", "17", "20", "2a", "23", "2b")
)

LANGUAGE = Language(
    name="cpp",
    aliases=("c++", "cxx", "g++"),
    display="C++17 (g++, -O2)",
    version=f"g++ {GCC_VERSION}",
    image="native",
    source_file="main.cpp",
    run=("./main",),
    sources=(".cpp", ".cc", ".cxx"),
    selftest="#include <iostream>\nint main(){std::cout<<std::cin.rdbuf();return 0;}\n",
    compile=Compile(
        image="gcc",
        argv=(
            *("/usr/bin/g++", "-std=c++17", "-O2", "-pipe", "{options}"),
            *("-o", "main", "{sources}"),
        ),
        artifact="main",
        standards=STANDARDS,
        options=GCC_OPTIONS,
        static=("-static",),
    ),
)
