"""Python fork server: a started interpreter that forks one fresh copy of itself per job.

Why: starting CPython costs about 10-14 ms of CPU here, most of a trivial test's whole cost;
forking an interpreter that has already started costs well under 1 ms. The supervisor starts
this server once per sandbox (as ``python3 forkserver.py``, with the language's environment,
stdin on /dev/null and stdout/stderr on pipes, exactly like a job) and hands it each job
over a SOCK_SEQPACKET socket on fd 3: one datagram of NUL-terminated fields, each tagged by
its first byte (``u`` uid, ``d`` work dir, ``r`` "resource soft hard", ``a`` argv entry,
``e`` environment entry), with the job's stdin, stdout, stderr and exec-error pipe as
SCM_RIGHTS descriptors. It answers ``ok PID`` or ``err TEXT``.

Each job is a double fork: the intermediate child forks the job and exits at once, so the job
is reparented to the supervisor (a child subreaper), which waits for it, measures it and
kills it exactly as it does a job it exec'ed itself. The server answers only after the
intermediate is gone, so the job already belongs to the supervisor.

The job then does what the supervisor's exec path does (images/supervisor/run.c,
``child_exec``): descriptors, new session, OOM score, rlimits, work dir, uid, umask, and
instead of exec it runs the script the way ``python3 main.py`` would: a fresh ``__main__``,
``sys.argv``, ``sys.path[0]``, the environment, uncaught exceptions printed by
``sys.excepthook`` without this file's frames, exit status 1, ``SystemExit`` honoured, and
what a program can observe of the interpreter's shutdown (see :func:`finish`). Modules only
the server needed are taken out of ``sys.modules``, so the program sees the modules a fresh
interpreter has. tests/sandbox/test_forkserver.py runs probe programs both ways and compares.

One difference stays visible: a forked job's /proc/self/cmdline is the server's (changing it
needs CAP_SYS_RESOURCE); ``sys.argv`` and ``sys.orig_argv`` are the job's.

Trust: the server runs as the sandbox's root with the supervisor's few capabilities, like the
supervisor, and never runs submitted code itself; a job drops to its own uid before it runs
anything submitted and keeps no descriptor to the server. A job's memory is a copy of the
server's, which holds nothing but the current job's request.
"""

import sys

FRESH = frozenset(sys.modules)  # what `python3 main.py` has loaded when main.py starts

import _socket  # noqa: E402 - after FRESH on purpose
import ctypes  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402

PR_SET_DUMPABLE = 4
OOM_SCORE = b"1000"  # the job, not the supervisor, is the OOM killer's first choice
MAX_REQUEST = 1 << 16
FDS = 4  # stdin, stdout, stderr, exec-error pipe
INTERRUPTED = "interrupted"  # run_script's status for an uncaught KeyboardInterrupt
LIBC = ctypes.CDLL(None, use_errno=True)


def parse(data):
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
        else:
            raise ValueError(f"unknown field tag {tag!r}")
    if job["uid"] < 1000 or len(job["argv"]) < 2:
        raise ValueError("a job needs a uid and argv [python, script, ...]")
    return job


def run_script(code, namespace):
    """Run the script like ``python3 main.py``; the exit status it would have. Prints what the
    interpreter prints for an uncaught exception (without this frame) or a non-integer
    ``SystemExit``."""
    try:
        exec(code, namespace)
    except SystemExit as exc:
        return exit_status(exc)
    except BaseException as exc:
        # the traceback as the interpreter shows it: from the script's frame, not this one
        exc.__traceback__ = exc.__traceback__.tb_next
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def exit_status(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def finish(namespace, status):
    """End the job as CPython's shutdown would, minus tearing down the whole heap.

    A full interpreter shutdown frees every object, so in a forked copy it writes to nearly
    every page the server shares with the job, which costs more than the rest of a trivial
    job together. What a program can observe of a shutdown is done here, in the order of
    CPython's ``Py_FinalizeEx``: non-daemon threads joined, atexit callbacks run, stdout and
    stderr flushed (a failed flush exits 120), garbage collected, the script's globals cleared
    as CPython clears a module (so its objects are finalized and its open files flushed),
    collected and flushed again, and an uncaught KeyboardInterrupt reported as death by
    SIGINT. Objects kept alive only by other modules are not finalized, which CPython does not
    promise either.
    """
    interrupted = status == INTERRUPTED
    if interrupted:
        status = 1
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    flushed = flush_std_files()
    gc.collect()
    names = [k for k in namespace if k != "__builtins__"]
    for first in (True, False):  # names with one leading underscore first, as CPython does
        for name in names:
            if first == (name.startswith("_") and not name.startswith("__")):
                namespace[name] = None
    gc.collect()
    if not (flush_std_files() and flushed):
        status = 120
    if interrupted:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status & 0xFF)


def flush_std_files():
    """CPython's flush at exit: False when it failed; a failed stdout flush is reported."""
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except Exception as exc:
            ok = False
            if stream is sys.stdout:
                report = f"Exception ignored in: {stream!r}\n{type(exc).__name__}: {exc}\n"
                os.write(2, report.encode(errors="replace"))
    return ok


def become_job(job, fds, server):
    """In the forked job: set up like the supervisor's exec path, run the script, exit."""
    stdin, stdout, stderr, errpipe = fds
    server.close()
    step = "dup2"
    try:
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.closerange(3, errpipe)
        os.closerange(errpipe + 1, 1 << 16)
        os.setsid()
        step = "oom_score_adj"
        with open("/proc/self/oom_score_adj", "wb", buffering=0) as adj:
            adj.write(OOM_SCORE)
        for res, soft, hard in job["limits"]:
            step = f"setrlimit {res}"
            resource.setrlimit(res, (soft, hard))
        step = "chdir"
        os.chdir(job["dir"])
        step = "switch uid"
        if os.geteuid() == 0:
            uid = job["uid"]
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            # a uid change makes a process undumpable, which gives its /proc entry to root:
            # the supervisor finds, measures and kills a job's processes by their /proc owner
            step = "prctl"
            if LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
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
    main = type(sys)("__main__")
    main.__dict__.update(
        __file__=path,
        __cached__=None,
        __builtins__=sys.modules["builtins"],
        __annotations__={},
        __loader__=sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path),
    )
    sys.modules["__main__"] = main
    try:
        with open(path, "rb") as script:
            source = script.read()
    except OSError as exc:
        sys.stderr.write(
            f"{argv[0]}: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}\n"
        )
        finish(main.__dict__, 2)
    try:
        code = compile(source, path, "exec")
    except (SyntaxError, ValueError) as exc:
        exc.__traceback__ = None  # the interpreter shows no frame for a script's syntax error
        sys.excepthook(type(exc), exc, None)
        finish(main.__dict__, 1)
    del source, job, fds
    finish(main.__dict__, run_script(code, main.__dict__))


def serve(server):
    # Everything the server holds moves to the collector's permanent generation: a job's
    # collections then never walk it, so they neither take time on it nor copy its pages.
    compile(b"import sys\n", "warm", "exec")  # the compiler's first use is slow: not per job
    gc.freeze()
    server.sendall(b"ready")
    while True:
        data, ancillary, _, _ = server.recvmsg(MAX_REQUEST, _socket.CMSG_SPACE(FDS * 4))
        if not data:
            os._exit(0)  # the supervisor is gone
        fds = []
        for level, kind, payload in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += [
                    int.from_bytes(payload[i : i + 4], sys.byteorder)
                    for i in range(0, len(payload) - 3, 4)
                ]
        try:
            if len(fds) != FDS:
                raise ValueError(f"expected {FDS} descriptors, got {len(fds)}")
            job = parse(data)
            answer = spawn()
        except Exception as exc:
            answer = f"err {type(exc).__name__}: {exc}"
        if answer is None:
            # the job: outside every try above, so nothing of the server's catches its exit
            become_job(job, fds, server)
        for fd in fds:
            os.close(fd)
        server.sendall(answer.encode()[:1024])


def spawn():
    """Double fork: ``ok PID`` in the server once the job is the supervisor's; None in the job."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(r)
        try:
            pid = os.fork()
        except BaseException:
            os._exit(1)
        if pid == 0:
            os.close(w)
            return None
        os.write(w, pid.to_bytes(4, "little"))
        os._exit(0)
    os.close(w)
    raw = os.read(r, 4)
    os.close(r)
    os.waitpid(middle, 0)
    if len(raw) != 4:
        raise OSError("the job could not be forked")
    return f"ok {int.from_bytes(raw, 'little')}"


serve(_socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, 3))
