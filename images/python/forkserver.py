"""Python fork server: a started interpreter that forks one fresh copy of itself per job.

Why: starting CPython costs about 10-14 ms of CPU here, most of a trivial test's whole cost;
forking an interpreter that has already started costs well under 1 ms. The supervisor starts
this server once per sandbox (as ``python3 forkserver.py``, with the language's environment,
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

The job then does what the exec path's job does (images/supervisor/run.c, ``child_exec``):
descriptors, new session, rlimits, work dir, uid, no capabilities, umask, and instead of exec
it runs the script the way ``python3 main.py`` would: a fresh ``__main__``, ``sys.argv``,
``sys.path[0]``, the environment, the whole recursion limit ahead of the script's first frame
(``_jobstart.run``), uncaught exceptions printed by ``sys.excepthook`` without this file's
frames, exit statuses as CPython computes them, and what a program can observe of the
interpreter's shutdown (see :func:`finish`). Modules only the server needed are taken out of
``sys.modules``, so the program sees the modules a fresh interpreter has.
tests/sandbox/test_forkserver.py runs probe programs and a corpus of contestants' idioms both
ways and compares them byte for byte.

One difference stays visible: a forked job's /proc/self/cmdline is the server's (changing it
needs CAP_SYS_RESOURCE); ``sys.argv`` and ``sys.orig_argv`` are the job's.

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
import os  # noqa: E402
import resource  # noqa: E402

import _jobstart  # noqa: E402 - jobstart.c, next to this file

FDS = 4  # stdin, stdout, stderr, exec-error pipe; then the cell, when the job has one
INTERRUPTED = "interrupted"  # run_script's status for an uncaught KeyboardInterrupt
ModuleType = type(sys)
# What shutdown restores (CPython keeps a copy of the builtins made at start), and the
# modules the server holds, which a job's shutdown leaves alone: their objects are the
# server's, shared with every job, and a forked copy that tore them down would write to
# nearly every page it shares.
BUILTINS = dict(vars(builtins))
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
        sys.excepthook(type(exc), exc, exc.__traceback__)
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
    sys.unraisablehook(UnraisableHookArgs((type(exc), exc, tb, None, obj)))


def is_closed(stream):
    """CPython's test at exit: a stream whose ``closed`` is missing or fails counts as open."""
    try:
        return bool(stream.closed)
    except Exception:
        return False


def flush_std_files():
    """CPython's flush of sys.stdout and sys.stderr at exit: False when one failed; a failed
    stdout flush is reported, a failed stderr one is not."""
    ok = True
    for stream in (sys.stdout, sys.stderr):
        if stream is None or is_closed(stream):
            continue
        try:
            stream.flush()
        except Exception as exc:
            ok = False
            if stream is sys.stdout:
                unraisable(exc, stream)
    return ok


def clear_module(namespace):
    """CPython's clearing of a module that outlived shutdown: names with one leading
    underscore first, then the others, but ``__builtins__``."""
    names = [name for name in namespace if name != "__builtins__"]
    for underscore in (True, False):
        for name in names:
            if underscore == (name.startswith("_") and not name.startswith("__")):
                namespace[name] = None


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
    """
    interrupted = status == INTERRUPTED
    if interrupted:
        status = 1
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException as exc:
            unraisable(exc, threading)
    atexit._run_exitfuncs()
    if not flush_std_files():
        status = 120
    if gc.isenabled():
        gc.collect()
    originals = [sys.__dict__.get(f"__{name}__") for name in ("stdin", "stdout", "stderr")]
    if "_" in builtins.__dict__:
        builtins.__dict__["_"] = None
    for name in SYS_CLEARED:
        sys.__dict__[name] = None
    sys.stdin, sys.stdout, sys.stderr = originals
    # every module leaves sys.modules (a finalizer that imports, or a traceback printed from
    # one, finds none); only the script's are looked after, the server's hold nothing of it
    alive = []
    for name, module in list(sys.modules.items()):
        if isinstance(module, ModuleType) and id(module) not in SERVER_MODULE_IDS:
            alive.append(_weakref.ref(module))
        sys.modules[name] = None
    del module
    sys.modules.clear()
    if builtins.__dict__ != BUILTINS:  # compared by identity first: nothing is written
        builtins.__dict__.clear()
        builtins.__dict__.update(BUILTINS)
    gc.collect()
    for ref in reversed(alive):
        module = ref()
        if module is not None:
            clear_module(module.__dict__)
        del module
    for stream in originals:
        if stream is not None:
            try:  # noqa: SIM105 - contextlib would be one more module in every job
                stream.flush()
            except Exception:
                pass  # CPython reports it to sys.stderr, which is gone by now
    if interrupted:
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
    os._exit(status & 0xFF)


# ---------------------------------------------------------------------------------- the job


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
    for entry in job["env"]:
        name, _, value = entry.partition("=")
        os.environ[name] = value
    argv = job["argv"]
    path = os.path.abspath(argv[1])
    os.close(errpipe)  # the job runs: the same signal as a successful exec
    for name in set(sys.modules) - FRESH:
        del sys.modules[name]
    sys.path_importer_cache.pop(sys.path[0], None)
    sys.argv = argv[1:]
    sys.orig_argv = list(argv)
    sys.path[0] = os.path.dirname(path)
    main = ModuleType("__main__")
    main.__dict__.update(
        __file__=path,
        __cached__=None,
        __builtins__=sys.modules["builtins"],
        __annotations__={},
        __loader__=sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path),
    )
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
        sys.excepthook(type(exc), exc, None)
        del namespace, exc
        finish(1)
    del source
    status = run_script(code, namespace)
    del namespace, code
    finish(status)


# Everything the server holds moves to the collector's permanent generation: a job's
# collections then never walk it, so they neither take time on it nor copy its pages.
compile(b"import sys\n", "warm", "exec")  # the compiler's first use is slow: not per job
gc.freeze()
become_job(*_jobstart.serve(3))  # returns in each job, never in the server
