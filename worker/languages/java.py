"""Java 17 with Debian's OpenJDK, compiled once per program in the javac image into one jar
that every test runs in the java image (``java -jar main.jar``).

**The class that runs.** File names are free (a lone source is written to ``Main.java``, and
``public class Solution`` compiles there too): the compile step runs the top-level class that
declares ``public static void main(String[] args)``; with several, those of the entry file
count first, then the only ``public`` one among them. None, or several with none or several
public, is ``CE`` saying which (images/java/JudgeCompile.java).

**Modules.** The run image keeps java.base (the language, collections, streams, I/O, text,
regex, BigInteger/BigDecimal, time), jdk.random (the algorithms ``RandomGenerator.of`` names)
and jdk.unsupported (``sun.misc.Unsafe``, which some fast-I/O templates use). The compiler sees
only these (``--limit-modules``), so a program importing another module's class (``java.awt``,
``java.sql``...) is ``CE`` ("package java.awt is not visible"); one that loads such a class by
name at run time is ``RE`` (ClassNotFoundException).

**Whose limits.** The heap is the job's memory limit (``-Xmx``) and every Java thread's stack
its stack limit (``-Xss``), so the JVM never sizes itself from the machine; the kernel's
ledger counts the whole process all the same. A program that runs out of heap (an uncaught
OutOfMemoryError), or a JVM that cannot reserve or commit its memory, is ``MLE``; a
StackOverflowError is ``RE`` (an endless recursion fills the memory before its stack, the
memory limit, is full: ``MLE``, as in C). A JVM takes no thread stack above 1 GB: with a larger
limit, the stack is 1 GB.

**What a program observes.** The serial collector (one thread, no GC threads to count, a
judge's usual), two JIT compiler threads whatever the machine's cores (so the JVM's threads
are the same everywhere), no perf data file in /tmp (``-XX:-UsePerfData``), no attach
listener; tiered compilation stays on (C2 is what makes a contestant's loop fast). The class
data sharing archive of the image's own runtime is on: the start it saves is the JVM's.

**Parked.** A test with the limits of its sandbox's previous one is handed to a JVM started
for it after that test (images/supervisor/park.c) with a native agent that waits in VMInit,
before the launcher loads the main class (images/java/libpark.c); docs/contract.md says what
may differ.
"""

from dataclasses import replace

from worker.languages.model import Compile, ImageSpec, Language

VERSION = "17"
MODULES = ("java.base", "jdk.random", "jdk.unsupported")
# Threads the JVM itself runs beside the program's main thread, with the flags below (counted
# in a sandbox: 14 in /proc/self/status for a program of one thread): the launcher's first
# thread, the VM thread, Reference Handler, Finalizer, Signal Dispatcher, Service Thread,
# Monitor Deflation Thread, the two compiler threads, Sweeper, Common-Cleaner, Notification
# Thread and the periodic task thread.
JVM_THREADS = 13
# What programs run with; the image's CDS archive is dumped with the same (images/java)
VM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:CICompilerCount=2",
    "-XX:-UsePerfData",
    "-XX:+DisableAttachMechanism",
)
# The compile step's JVM: a short run, so C1 only; its AppCDS archive holds javac's classes
COMPILE_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData")
COMPILE_MEMORY_MB = 512
TOOL = "/opt/runner/java/judge-compile"
# the runtime jlink made
JAVA = "/usr/lib/jvm/java/bin/java"
# the parked JVM's native agent (images/java/libpark.c)
AGENT = "/opt/runner/libpark.so"

COMPILER = ImageSpec(
    key="javac",
    dockerfile="images/java/Dockerfile",
    target="compiler",
    inputs=("images/java", "images/common"),
    args=(
        ("JAVA_VERSION", VERSION),
        ("JAVA_MODULES", ",".join(MODULES)),
        ("COMPILE_FLAGS", " ".join(COMPILE_FLAGS)),
        ("RUN_FLAGS", " ".join(VM_FLAGS)),
    ),
    description=f"Compiles Java submissions into a jar: Debian's OpenJDK {VERSION}",
    development_description=f"Debian's OpenJDK {VERSION} with strace",
)
RUNTIME = replace(
    COMPILER,
    key="java",
    target="production",
    description=f"Runs Java submissions: a runtime of Debian's OpenJDK {VERSION} with the modules "
    f"{','.join(MODULES)}, FROM scratch",
    # amd64, eclipse-temurin:17-jre (jdk-17.0.20+8 on Ubuntu, as docker-library/repo-info
    # lists it): the official JRE (the openjdk image is deprecated and has no JRE of 17)
    official_slim=("eclipse-temurin:17-jre", 115.6),
)

LANGUAGE = Language(
    name="java",
    aliases=("java17", "jdk", "openjdk"),
    display="Java 17 (OpenJDK, Debian)",
    version=VERSION,
    image=RUNTIME.key,
    source_file="Main.java",
    run=(
        *(JAVA, *VM_FLAGS),
        *("-Xmx{memory_mb}m", "-Xss{stack_kb}k", "-jar", "main.jar"),
    ),
    sources=(".java",),
    selftest=(
        "public class Main {\n"
        "    public static void main(String[] args) throws java.io.IOException {\n"
        "        System.in.transferTo(System.out);\n"
        "        System.out.flush();\n"
        "    }\n"
        "}\n"
    ),
    compile=Compile(
        image=COMPILER.key,
        argv=(
            *("/usr/bin/java", *COMPILE_FLAGS, f"-XX:SharedArchiveFile={TOOL}.jsa"),
            *(f"-Xmx{COMPILE_MEMORY_MB * 3 // 4}m", "-cp", f"{TOOL}.jar", "JudgeCompile"),
            *("main.jar", ",".join(MODULES), "{sources}"),
        ),
        artifact="main.jar",
        memory_mb=COMPILE_MEMORY_MB,
        processes=32,
    ),
    out_of_memory=(
        "java.lang.OutOfMemoryError: Java heap space",
        "java.lang.OutOfMemoryError: Requested array size exceeds VM limit",
        "java.lang.OutOfMemoryError: Metaspace",
        "java.lang.OutOfMemoryError: Compressed class space",
        "java.lang.OutOfMemoryError: Direct buffer memory",
        "Could not reserve enough space for",
        "Too small maximum heap",
        "Too small initial heap",
        "There is insufficient memory for the Java Runtime Environment to continue",
    ),
    max_stack_kb=1024 * 1024,
    runtime_threads=JVM_THREADS,
    # started ahead and waiting in the JVM's VMInit for its job (images/java/libpark.c); the C
    # launcher reads the jar's manifest before the JVM starts: the probe's stands in
    park=(f"-agentpath:{AGENT}",),
    park_files=(("main.jar", "/opt/runner/hello.jar"),),
    images=(COMPILER, RUNTIME),
)
