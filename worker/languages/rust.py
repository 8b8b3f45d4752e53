"""Rust 2021: Debian's rustc 1.63, ``rustc -O`` once per program in the rust image; the
program links libc and libgcc_s, which C's native image has, and runs there.

The entry is the crate's root: rustc finds the modules it declares (``mod util;``) among the
program's files itself. No crates beyond the standard library (no cargo, no network).
``-C strip=debuginfo`` (what cargo's release profile does since Rust 1.77): Debian's standard
library carries its debug information into every binary, 11 MB for an echo, 0.45 MB without,
and rustc links it in half the time; a panic's message, location and (with
``RUST_BACKTRACE``) its backtrace's names are the same.

A panic is ``RE`` (exit code 101, its message on stderr), a stack overflow too (Rust's guard
page handler says so on stderr, then SIGABRT). The main thread's stack is the job's stack
limit, which is its memory limit."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "1.63"

LANGUAGE = Language(
    name="rust",
    aliases=("rs", "rustc"),
    display=f"Rust 2021 (rustc {VERSION}, -O)",
    version=VERSION,
    image="native",
    source_file="main.rs",
    run=("./main",),
    sources=(".rs",),
    selftest="use std::io::{self, Read, Write};\n\nfn main() {\n    let mut buf = Vec::new();\n"
    "    io::stdin().read_to_end(&mut buf).unwrap();\n"
    "    io::stdout().write_all(&buf).unwrap();\n}\n",
    compile=Compile(
        image="rust",
        argv=(
            *("/usr/bin/rustc", "-O", "--edition", "2021", "-C", "strip=debuginfo"),
            # a binary whatever #![crate_type] says: a library's source is CE (no main), not
            # an rlib written as ./main that no test could exec
            *("{options}", "--crate-type", "bin", "--crate-name", "main", "-o", "main"),
            "{entry}",
        ),
        artifact="main",
        # rustc -O starts a thread for each of its 16 codegen units beside its own and the
        # linker's processes: 20 to 22 at once, measured; 16 failed one compile in two
        processes=32,
        # a program that needs no library at all: it runs beside any other (an interactor)
        static=("-C", "target-feature=+crt-static"),
    ),
    images=(
        ImageSpec(
            key="rust",
            dockerfile="images/rust/Dockerfile",
            target="production",
            inputs=("images/rust", "images/common"),
            args=(("RUST_VERSION", VERSION),),
            description=f"Compiles Rust submissions: Debian's rustc {VERSION} and the link step it "
            "needs in a minimal FROM-scratch root (programs run in native)",
            development_description=f"Debian's rustc {VERSION} with gcc, bash, gdb and strace",
        ),
    ),
)
