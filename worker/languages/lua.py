"""Lua 5.4: Debian's interpreter; every source is parsed once by ``luac -p`` (nothing
written), so a syntax error is ``CE`` before any test."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "5.4"

LANGUAGE = Language(
    name="lua",
    aliases=("lua5.4", "lua54"),
    display="Lua 5.4 (Debian)",
    version=VERSION,
    image="lua",
    source_file="main.lua",
    # "--": an entry file whose name starts with "-" is the script, never an option
    run=(f"/usr/bin/lua{VERSION}", "--", "{entry}"),
    sources=(".lua",),
    selftest='io.write(io.read("a"))\n',
    compile=Compile(
        image="lua",
        argv=(f"/usr/bin/luac{VERSION}", "-p", "--", "{sources}"),
        cpu_time_ms=5_000,
        wall_time_ms=10_000,
        memory_mb=256,
        processes=4,
    ),
    images=(
        ImageSpec(
            key="lua",
            dockerfile="images/lua/Dockerfile",
            target="production",
            inputs=("images/lua", "images/common"),
            args=(("LUA_VERSION", VERSION),),
            description=f"Sandbox for Lua submissions: Debian's Lua {VERSION} in a minimal "
            "FROM-scratch root",
            development_description=f"Debian's Lua {VERSION} with bash and strace",
            # Docker Hub has no official Lua image: a slim one would start from Debian's slim
            # base, about 28 MB compressed (74.8 MB on disk) before Lua is added
            official_slim=("debian:bookworm-slim (no official Lua image)", 28.0),
        ),
    ),
)
