"""JavaScript: Debian's Node.js, each source checked with ``node --check`` once."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "18"
# `node --check` takes one file: one child per source file, its errors passed through.
SYNTAX_CHECK = """const {spawnSync} = require('child_process');
let failed = false;
for (const file of process.argv.slice(1)) {
  const stdio = ['ignore', 'ignore', 'inherit'];
  if (spawnSync(process.execPath, ['--check', file], {stdio}).status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
"""

LANGUAGE = Language(
    name="javascript",
    aliases=("js", "node", "nodejs"),
    display="JavaScript (Node.js, Debian)",
    version=VERSION,
    image="javascript",
    source_file="main.js",
    # V8 sizes its heap from the machine (4 GB here) unless told: the judge's limit decides
    run=("/usr/bin/node", "--max-old-space-size={memory_mb}", "{entry}"),
    sources=(".js", ".mjs", ".cjs"),
    selftest="process.stdin.pipe(process.stdout);\n",
    compile=Compile(
        image="javascript",
        argv=("/usr/bin/node", "-e", SYNTAX_CHECK, "{sources}"),
        cpu_time_ms=5_000,
        wall_time_ms=10_000,
        memory_mb=256,
        processes=64,
    ),
    # V8 at its heap limit (the kernel's ledger, counting node's own pages too, mostly ends a
    # hog first)
    out_of_memory=("FATAL ERROR: Reached heap limit", "JavaScript heap out of memory"),
    runtime_threads=16,
    # node started ahead for the next test, as `node main.js` would be, waiting in a preload
    # (images/javascript/park.js) for its job: Node's start is not on the test's path
    park=("--require", "/opt/runner/park.js"),
    images=(
        ImageSpec(
            key="javascript",
            dockerfile="images/javascript/Dockerfile",
            target="production",
            inputs=("images/javascript", "images/common"),
            args=(("NODE_VERSION", VERSION),),
            description=f"Sandbox for JavaScript submissions: Debian's Node.js {VERSION} in a "
            "minimal FROM-scratch root",
            development_description=f"Debian's Node.js {VERSION} with bash and strace",
            # amd64, compressed (18.13 on bullseye), as docker-library/repo-info lists it;
            # ours on disk is larger (Debian's libnode alone is 70 MB): compared compressed
            official_slim=("node:18-slim", 79.7),
        ),
    ),
)
