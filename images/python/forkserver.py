"""Python fork server: a started interpreter that forks one fresh copy of itself per job.

Why: starting CPython costs about 10-14 ms of CPU here, most of a trivial test's whole cost;
forking an interpreter that has already started costs well under 1 ms. The supervisor starts
this server once per sandbox (as ``python3 /opt/runner/forkserver.py``, which runs this file as
compiled when the image was built: forkserver-start.py; with the language's environment,
stdin on /dev/null and stdout/stderr on pipes, exactly like a job) and hands it each job
over a SOCK_SEQPACKET socket on fd 3: one datagram of NUL-terminated fields, each tagged by
its first byte (``u`` uid, ``d`` work dir, ``r`` "resource soft hard", ``a`` argv entry,
``e`` environment entry, ``f`` the job's seccomp filter in hex, ``c`` the index among the
descriptors of its cell's pidfd), with the job's stdin, stdout, stderr and exec-error pipe,
then the cell when there is one, as SCM_RIGHTS descriptors. It answers ``ok PID USEC`` (the
job, and the CPU time of the process that started it, which is not the job's) or
``err TEXT``.

The server's loop is ``_jobstart.serve`` (images/python/jobstart.c), in C, so that serving
jobs never changes the memory the next job is copied from. Each job is made by an intermediate
process that shares the server's memory does what the supervisor's own child does on the
exec path (images/supervisor/cell.c, ``cell_enter``): it sets the job's OOM score, enters the
job's cell (its user, IPC, mount and PID namespaces) and takes on the job's seccomp filter;
then it forks the job, a copy of the server, and exits, so the job is
reparented to the supervisor (a child subreaper), which waits for it, measures it and kills
it exactly as it does a job it exec'ed itself. The server answers only after the
intermediate is gone, so the job already belongs to the supervisor.

The job then does what the exec path's job does (images/supervisor/spawn.c, ``child_exec``):
descriptors, new session, rlimits, work dir, uid, no capabilities, umask, and instead of exec
it runs the script the way ``python3 main.py`` would: a fresh ``__main__`` with its names in
the interpreter's order, ``sys.argv``, ``sys.path[0]``, the environment, standard streams made
afresh for the job's descriptors (:func:`std_streams`: a pipe is a pipe), ``site``'s user
paths from the job's $HOME (:func:`user_site`), new threads' default stack from the job's
RLIMIT_STACK as glibc sizes it at a process's start (``_jobstart.thread_stack``), the script
run from C with the whole recursion limit ahead and no frame of this file below it
(``_jobstart.run``: sys._getframe, inspect, tracebacks, warnings' stacklevel, faulthandler),
the streams flushed once it has run, uncaught exceptions printed by ``sys.excepthook``, exit
statuses as CPython computes them, and what a program can observe of the interpreter's
shutdown (see :func:`finish`), whose callbacks see no frame of this file either. Modules only
the server needed are taken out of ``sys.modules``, so the program sees the modules a fresh
interpreter has; nothing is frozen for the collector while it runs (see the end of the file).
tests/sandbox/test_forkserver.py runs probe programs and a corpus of contestants' idioms both
ways and compares them byte for byte.

What a fork cannot give is exec'ed instead, from the job itself once it is set up, exactly as
the exec path execs it (``_jobstart.execve``), so that it is never judged differently: a user
site directory (python3 puts it on sys.path and runs its .pth files while it starts), and a
stack limit the server's address layout has no room for (an exec'ed interpreter's layout
leaves its main thread room to grow to RLIMIT_STACK; a fork has the server's, made for the
server's limit: STACK_ROOM). What stays visible, and changes no verdict: the address-space
layout, inherited from the server and so the same for every job of a sandbox (ASLR happens
once per sandbox), with the libraries the server loaded; /proc/self/cmdline and
/proc/self/environ are the server's (changing them needs CAP_SYS_RESOURCE; ``sys.argv``,
``sys.orig_argv`` and ``os.environ`` are the job's); the collector's counters and the server's
few hundred objects of its own (gc.get_count(), gc.get_stats(), gc.get_objects()), and during
the last collections at exit the server's objects are frozen; CPU time the interpreter's
start did not cost (time.process_time(), resource.getrusage()).

Trust: the server runs as the sandbox's root with the supervisor's few capabilities, like the
supervisor, and never runs submitted code itself; a job drops to its own uid and every
capability before it runs anything submitted and keeps no descriptor to the server. A job's
memory is a copy of the server's as it stood when it said ``ready``, plus its own request:
the same for every job, so a job's memory figure does not depend on how many jobs came first.
"""

import sys

FRESH = frozenset(sys.modules)  # what `python3 main.py` has loaded when main.py starts

import _signal  # noqa: E402 - after FRESH on purpose
import _weakref  # noqa: E402
import atexit  # noqa: E402
import builtins  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
from stat import S_ISDIR  # noqa: E402

import _jobstart  # noqa: E402 - jobstart.c, next to this file

bare = _jobstart.bare  # calls as the interpreter does from C: no frame of this file below
FDS = 4  # stdin, stdout, stderr, exec-error pipe; then the cell, when the job has one
INTERRUPTED = "interrupted"  # run_script's status for an uncaught KeyboardInterrupt
ModuleType = type(sys)
# What shutdown restores (CPython keeps a copy of the builtins made at start), and the
# modules the server holds, which a job's shutdown leaves alone: their objects are the
# server's, shared with every job, and a forked copy that tore them down would write to
# nearly every page it shares.
BUILTINS = dict(vars(builtins))
# The server's own standard streams, made for its descriptors (stdin is /dev/null): a job
# gets streams made afresh for its own (see std_streams), and these stay alive here, so that
# nothing of theirs is finalized in a job.
SERVER_STREAMS = (sys.stdin, sys.stdout, sys.stderr)
SERVER_MODULES = tuple(sys.modules.values())  # held, so that their ids stay theirs
SERVER_MODULE_IDS = frozenset(map(id, SERVER_MODULES))
# names CPython's shutdown sets to None in sys before it removes the modules
SYS_CLEARED = (
    *("path", "argv", "ps1", "ps2", "last_type", "last_value", "last_traceback"),
    *("path_hooks", "path_importer_cache", "meta_path", "__interactivehook__"),
)


def parse(data):
    """The job's fields of its request; the server read the two it needs (filter, cell)."""
    job = {"uid": -1, "dir": "/", "limits": [], "argv": [], "env": []}
    for field in data.split(b"\0")[:-1]:
        tag, value = field[:1], os.fsdecode(field[1:])
        if tag == b"u":
            job["uid"] = int(value)
        elif tag == b"d":
            job["dir"] = value
        elif tag == b"r":
            job["limits"].append(tuple(int(v) for v in value.split()))
        elif tag == b"a":
            job["argv"].append(value)
        elif tag == b"e":
            job["env"].append(value)
        elif tag not in (b"f", b"c"):
            raise ValueError(f"unknown field tag {tag!r}")
    if job["uid"] < 1000 or len(job["argv"]) < 2:
        raise ValueError("a job needs a uid and argv [python, script, ...]")
    return job


# ---------------------------------------------------------------------------------- the script


def run_script(code, namespace):
    """Run the script like ``python3 main.py``; the exit status it would have. Prints what the
    interpreter prints for an uncaught exception (without this frame) or a non-integer
    ``SystemExit``."""
    try:
        # from C, with the whole recursion limit ahead, as a script started the plain way has
        _jobstart.run(code, namespace)
    except SystemExit as exc:
        return exit_status(exc)
    except BaseException as exc:
        # the traceback as the interpreter shows it: from the script's frame, not this one
        exc.__traceback__ = exc.__traceback__.tb_next
        bare(sys.excepthook, type(exc), exc, exc.__traceback__)
        return INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def exit_status(exc):
    """CPython's exit status for a SystemExit: its code as a C long (one too big is -1), the
    low byte of that; a code that is not an integer is printed and exits 1."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        value = int.__int__(code)  # the number itself, whatever a subclass overrides
        return value & 0xFF if -(1 << 63) <= value < 1 << 63 else 0xFF
    if sys.stderr is not None:
        sys.stderr.write(str(code))
        sys.stderr.write("\n")
    return 1


# ---------------------------------------------------------------------------------- shutdown


def unraisable_args_type():
    """The type sys.unraisablehook is called with, which sys does not name: caught once."""
    seen = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append

    class Raises:
        def __del__(self):
            raise RuntimeError

    Raises()
    sys.unraisablehook = hook
    return type(seen[0])


UnraisableHookArgs = unraisable_args_type()


def unraisable(exc, obj):
    """What CPython prints for an exception it cannot raise (``Exception ignored in: ...``),
    with the traceback from the frame that raised it, as C code would have no frame of its own
    in it (CPython's own reporting, called from here, would add this frame)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    bare(sys.unraisablehook, UnraisableHookArgs((type(exc), exc, tb, None, obj)))


def clear_module(namespace):
    """CPython's clearing of a module that outlived shutdown: names with one leading
    underscore first, then the others, but ``__builtins__``."""
    names = [name for name in namespace if name != "__builtins__"]
    for underscore in (True, False):
        for name in names:
            if underscore == (name.startswith("_") and not name.startswith("__")):
                bare(namespace.__setitem__, name, None)


def finish(status):
    """End the job as CPython's shutdown (``Py_FinalizeEx``) would, minus tearing down the
    server's heap.

    A full shutdown frees every object, so in a forked copy it writes to nearly every page the
    server shares with the job, which costs more than the rest of a trivial job together. What
    a program can observe of a shutdown is done here, in CPython's order: non-daemon threads
    joined, atexit callbacks run, sys.stdout and sys.stderr flushed (a failed flush exits
    120), garbage collected; then sys.stdin/stdout/stderr put back to the originals and other
    sys entries cleared, every module taken out of sys.modules, the builtins restored, garbage
    collected again (the script's objects are finalized here, with their globals intact), the
    script's modules that are still alive cleared (the server's are left alone: they hold
    nothing of the script, and touching them would copy the pages they share with the job),
    and the original streams flushed as their finalization would. An uncaught
    KeyboardInterrupt ends as death by SIGINT. Objects kept alive only by the server's own
    modules are not finalized, which CPython does not promise either.

    Whatever may run the program's code (its threads' ends, atexit callbacks, its streams'
    flushes, its finalizers) is called through ``bare``, as CPython calls it from C: with no
    frame of this file below it.
    """
    interrupted = status == INTERRUPTED
    if interrupted:
        status = 1
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            bare(threading._shutdown)
        except BaseException as exc:
            unraisable(exc, threading)
    bare(atexit._run_exitfuncs)
    if not _jobstart.flush_std_files():
        status = 120
    _jobstart.freeze_server()  # the server's objects, alive for good: only the job's collected
    if gc.isenabled():
        bare(gc.collect)
    originals = [sys.__dict__.get(f"__{name}__") for name in ("stdin", "stdout", "stderr")]
    if "_" in builtins.__dict__:
        bare(builtins.__dict__.__setitem__, "_", None)
    for name in SYS_CLEARED:
        bare(sys.__dict__.__setitem__, name, None)
    for name, stream in zip(("stdin", "stdout", "stderr"), originals, strict=True):
        bare(sys.__dict__.__setitem__, name, stream)
    # every module leaves sys.modules (a finalizer that imports, or a traceback printed from
    # one, finds none); only the script's are looked after, the server's hold nothing of it
    alive = []
    for name, module in list(sys.modules.items()):
        if isinstance(module, ModuleType) and id(module) not in SERVER_MODULE_IDS:
            alive.append(_weakref.ref(module))
        bare(sys.modules.__setitem__, name, None)
    del module
    bare(sys.modules.clear)
    if builtins.__dict__ != BUILTINS:  # compared by identity first: nothing is written
        bare(builtins.__dict__.clear)
        builtins.__dict__.update(BUILTINS)
    bare(gc.collect)
    for ref in reversed(alive):
        module = ref()
        if module is not None:
            clear_module(module.__dict__)
        del module
    for stream in originals:
        if stream is not None:
            try:  # noqa: SIM105 - contextlib would be one more module in every job
                bare(stream.flush)
            except Exception:
                pass  # CPython reports it to sys.stderr, which is gone by now
    if interrupted:
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
    os._exit(status & 0xFF)


# ---------------------------------------------------------------------------------- the job


def fd_nature(fd):
    """What the standard streams the interpreter makes for a descriptor take from it and keep:
    its block size (their buffers'), whether it is a terminal (line buffering) and its
    position, or None where it cannot seek (whether they can seek, and where they start)."""
    try:
        position = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        position = None
    return os.fstat(fd).st_blksize, os.isatty(fd), position


def std_streams():
    """sys.stdin, stdout and stderr as the interpreter makes them at its start for the job's
    descriptors 0-2 (pylifecycle.c, create_stdio). The server's were made for its own and keep
    what they found there (fd_nature): where a job's descriptor differs (stdin a pipe from an
    interactor, where the server's is /dev/null, which can seek), its stream is made afresh;
    where it does not, the server's, never used, is what a fresh one would be, and stays (making
    three streams costs a job more than the rest of its start)."""
    buffered = not SERVER_STREAMS[1].write_through  # -u / PYTHONUNBUFFERED, as the server has
    for fd, name, like in zip(
        (0, 1, 2), ("stdin", "stdout", "stderr"), SERVER_STREAMS, strict=True
    ):
        if fd_nature(fd) == SERVER_NATURE[fd]:
            continue
        write = fd > 0
        buffering = -1 if buffered or not write else 0
        buf = open(fd, "wb" if write else "rb", buffering, None, None, None, False)  # noqa: SIM115
        raw = buf.raw if buffering else buf
        raw.name = f"<{name}>"
        line_buffering = buffered and (raw.isatty() or fd == 2)
        stream = io.TextIOWrapper(
            buf, like.encoding, like.errors, "\n", line_buffering, not buffered
        )
        stream.mode = "w" if write else "r"
        setattr(sys, f"__{name}__", stream)
        setattr(sys, name, stream)


def user_site(env):
    """``site``'s user paths from the job's environment, as a fresh start computes them
    (site.getuserbase and getusersitepackages: $PYTHONUSERBASE, else ~/.local, ~ being $HOME);
    "user site" when the user site directory exists, whose .pth files and place in sys.path
    only a fresh start gives (the job is exec'ed then). The usual case, no such directory, adds
    nothing to sys.path. Computed here from the server's own figures rather than by site's
    functions, which would cost a job a fifth of a millisecond; tests compare the two."""
    site = sys.modules.get("site")  # None with -S, as in a fresh start
    if site is None or not site.USER_SITE:
        return ""
    if not env.get("PYTHONUSERBASE"):  # else the server's figures are the job's
        base, path = site.USER_BASE, site.USER_SITE
        if "HOME" in env and path.startswith(base):  # ~/.local, /lib/python3.X/site-packages
            site.USER_BASE = env["HOME"].rstrip("/") + "/.local"
            site.USER_SITE = site.USER_BASE + path[len(base) :]
        else:  # ~ from the password database: as site finds it
            site.USER_BASE = site.USER_SITE = None
            site.getusersitepackages()
    if not site.ENABLE_USER_SITE:
        return ""
    try:  # os.path.isdir
        return "user site" if S_ISDIR(os.stat(site.USER_SITE).st_mode) else ""
    except (OSError, ValueError):
        return ""


def stack_room():
    """How far the main thread's stack can grow here, in bytes: down to the mapping below it,
    less the kernel's guard gap. An exec'ed interpreter is laid out to grow to its
    RLIMIT_STACK; a forked job has its server's layout, made for the server's limit."""
    spans = []
    with open("/proc/self/maps", "rb") as maps:
        for line in maps:
            low, high = (int(x, 16) for x in line.split(None, 1)[0].split(b"-"))
            spans.append((low, high, line.rstrip().endswith(b"[stack]")))
    (stack,) = [low for low, _, is_stack in spans if is_stack]
    below = max((high for _, high, _ in spans if high <= stack), default=0)
    pages = 256  # the kernel's stack_guard_gap unless its command line says otherwise
    try:
        with open("/proc/cmdline") as cmdline:
            words = cmdline.read().split()
    except OSError:
        words = []
    for word in words:
        if word.startswith("stack_guard_gap="):
            pages = int(word.partition("=")[2], 0)
    return stack - below - pages * resource.getpagesize()


def stack_needed():
    """The job's main-thread stack limit in bytes (unlimited: as much as the machine has)."""
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    return MEMORY if soft == resource.RLIM_INFINITY else soft


def become_job(request, fds):
    """In the forked job: set up like the supervisor's exec path, run the script, exit."""
    stdin, stdout, stderr, errpipe = fds[:FDS]
    step, job = "request", {"argv": ["python3"]}
    try:
        job = parse(request)
        step = "dup2"
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.closerange(3, errpipe)
        os.closerange(errpipe + 1, 1 << 16)
        os.setsid()
        for res, soft, hard in job["limits"]:
            step = f"setrlimit {res}"
            resource.setrlimit(res, (soft, hard))
        step = "thread stack"
        _jobstart.thread_stack()  # from the job's RLIMIT_STACK, as glibc sizes it at a start
        step = "chdir"
        os.chdir(job["dir"])
        step = "switch uid"
        uid = job["uid"]
        if os.getresuid() != (uid, uid, uid):  # in a cell, root reads as the overflow uid
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        step = "drop capabilities"
        _jobstart.drop_capabilities()
        os.umask(0o022)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        os.write(errpipe, f"{step} {job['argv'][0]}: {reason}".encode()[:127])
        os._exit(127)
    os.environ.clear()
    env = {}
    for entry in job["env"]:
        name, _, value = entry.partition("=")
        os.environ[name] = env[name] = value
    argv = job["argv"]
    for name in set(sys.modules) - FRESH:
        del sys.modules[name]
    why = user_site(env)
    if not why and stack_needed() > STACK_ROOM:
        why = "stack"
    if why:  # what a fork cannot give as `python3 main.py` has it: the exec path's own way
        try:
            _jobstart.execve(argv[0], argv, job["env"])
        except OSError as exc:
            os.write(errpipe, f"exec {argv[0]}: {exc.strerror}".encode()[:127])
            os._exit(127)
    path = os.path.abspath(argv[1])
    os.close(errpipe)  # the job runs: the same signal as a successful exec
    std_streams()
    sys.path_importer_cache.pop(sys.path[0], None)
    sys.argv = argv[1:]
    sys.orig_argv = list(argv)
    sys.path[0] = os.path.dirname(path)
    # __main__ as the interpreter makes it: the module's own five names, then __annotations__
    # and __builtins__ (add_main_module), then __file__ and __cached__ (the script's run)
    main = ModuleType("__main__")
    main.__dict__.update(
        __annotations__={},
        __builtins__=sys.modules["builtins"],
        __file__=path,
        __cached__=None,
    )
    main.__loader__ = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path)
    sys.modules["__main__"] = main
    namespace = main.__dict__
    del main, job, fds, request  # the module lives in sys.modules only, as in a plain start
    try:
        with open(path, "rb") as script:
            source = script.read()
    except OSError as exc:
        sys.stderr.write(
            f"{argv[0]}: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}\n"
        )
        del namespace
        finish(2)
    try:
        code = compile(source, path, "exec")
    except (SyntaxError, ValueError) as exc:
        exc.__traceback__ = None  # the interpreter shows no frame for a script's syntax error
        bare(sys.excepthook, type(exc), exc, None)
        del namespace, exc
        finish(1)
    del source
    status = run_script(code, namespace)
    del namespace, code
    finish(status)


SERVER_NATURE = [fd_nature(fd) for fd in (0, 1, 2)]  # what SERVER_STREAMS were made for
STACK_ROOM = stack_room()
MEMORY = os.sysconf("SC_PHYS_PAGES") * resource.getpagesize()
compile(b"import sys\n", "warm", "exec")  # the compiler's first use is slow: not per job
# Nothing is frozen while a job runs: its collector tracks and walks what a fresh
# interpreter's does (gc.get_freeze_count() 0, gc.get_objects(), gc.get_referrers()). At its
# exit the server's objects are frozen (finish), so that the last collections, which are what
# a trivial job's collector costs, neither walk them nor copy their pages: they are marked
# here, all in the oldest generation.
gc.collect(1)
_jobstart.mark_server()
become_job(*_jobstart.serve(3))  # returns in each job, never in the server
