"""Ruby 3.1: Debian's interpreter, RubyGems on (``--disable-gems`` would start it in 8 ms
instead of 45, but ``require "prime"`` would fail and ``DidYouMean``, ``ErrorHighlight`` and
``Gem`` would be gone: a program could tell); every source is compiled to bytecode once,
without running it, so a syntax error is ``CE`` before any test."""

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "3.1"
# `ruby -c` checks one file: every source is compiled (not run) here, its errors passed through.
SYNTAX_CHECK = """failed = false
ARGV.each do |path|
  RubyVM::InstructionSequence.compile_file(path)
rescue SyntaxError => e
  $stderr.puts e.message
  failed = true
end
exit(failed ? 1 : 0)
"""

LANGUAGE = Language(
    name="ruby",
    aliases=("rb", "ruby3"),
    display="Ruby 3.1 (CRuby, Debian)",
    version=VERSION,
    image="ruby",
    source_file="main.rb",
    # "--": an entry file whose name starts with "-" is the script, never an option
    run=("/usr/bin/ruby", "--", "{entry}"),
    sources=(".rb",),
    selftest="STDOUT.binmode.write(STDIN.binmode.read)\n",
    compile=Compile(
        image="ruby",
        argv=("/usr/bin/ruby", "-e", SYNTAX_CHECK, "--", "{sources}"),
        cpu_time_ms=5_000,
        wall_time_ms=10_000,
        memory_mb=256,
        processes=4,
    ),
    # the timer thread CRuby starts beside a program's first thread of its own
    runtime_threads=1,
    images=(
        ImageSpec(
            key="ruby",
            dockerfile="images/ruby/Dockerfile",
            target="production",
            inputs=("images/ruby", "images/common"),
            args=(("RUBY_VERSION", VERSION),),
            description=f"Sandbox for Ruby submissions: Debian's Ruby {VERSION} in a minimal "
            "FROM-scratch root",
            development_description=f"Debian's Ruby {VERSION} with bash, irb and strace",
            # amd64; 3.1's tags are retired: 3.0.6-slim was 67.1 MB, 3.2-slim-bookworm 64.4
            official_slim=("ruby:3.1-slim", 64.0),
        ),
    ),
)
