"""PHP 8.2: Debian's CLI with Debian's php.ini (no memory or time limit of PHP's own: the
judge's decide; errors on stderr); every source is linted once (``php -l``), so a syntax error
is ``CE`` before any test."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "8.2"
# `php -l` lints one file: one child per source file, its errors (on stderr) passed through.
SYNTAX_CHECK = """$failed = false;
foreach (array_slice($argv, 1) as $file) {
    $quiet = [0 => ["file", "/dev/null", "r"], 1 => ["file", "/dev/null", "w"], 2 => STDERR];
    if (proc_close(proc_open([PHP_BINARY, "-l", $file], $quiet, $pipes)) !== 0) $failed = true;
}
exit($failed ? 1 : 0);
"""

LANGUAGE = Language(
    name="php",
    aliases=("php8", "php8.2"),
    display="PHP 8.2 (CLI, Debian)",
    version=VERSION,
    image="php",
    source_file="main.php",
    # -f: an entry file whose name starts with "-" is the script; "--": so are the program's
    # arguments, never options of PHP's
    run=("/usr/bin/php", "-f", "{entry}", "--"),
    sources=(".php",),
    selftest="<?php\nfwrite(STDOUT, stream_get_contents(STDIN));\n",
    compile=Compile(
        image="php",
        argv=("/usr/bin/php", "-r", SYNTAX_CHECK, "--", "{sources}"),
        cpu_time_ms=5_000,
        wall_time_ms=10_000,
        memory_mb=256,
        processes=4,
    ),
    images=(
        ImageSpec(
            key="php",
            dockerfile="images/php/Dockerfile",
            target="production",
            inputs=("images/php", "images/common"),
            args=(("PHP_VERSION", VERSION),),
            description=f"Sandbox for PHP submissions: Debian's PHP {VERSION} CLI in a minimal "
            "FROM-scratch root",
            development_description=f"Debian's PHP {VERSION} CLI with bash and strace",
            # amd64, php:8.2.34-cli; the official PHP images have no slim variant
            official_slim=("php:8.2-cli", 171.4),
        ),
    ),
)
