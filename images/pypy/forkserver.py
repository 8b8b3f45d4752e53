"""PyPy fork server: a started pypy3 that forks one fresh copy of itself per job.

Why: PyPy's own start (about 24 ms of CPU here) is most of a trivial test's cost; forking one
that has started costs a few milliseconds. The supervisor starts it once per sandbox, with
the language's environment, stdin on /dev/null and stdout/stderr on pipes, as

    pypy3 -c LAUNCH        (worker/languages/pypy.py: LAUNCH runs this file, then the job)

and hands it each job over the SOCK_SEQPACKET socket on fd 3 (images/supervisor/server.c, the
protocol images/python/forkserver.py describes): one datagram of tagged fields plus the job's
stdin, stdout, stderr, exec-error pipe and cell as SCM_RIGHTS. Per job, an intermediate
process (a fork of the server) does what the supervisor's own child does on the exec path
(cell.c): the job's OOM score, its cell (setns), its seccomp filter; it forks the job and
exits, so the job is reparented to the supervisor, which measures, kills and reaps it as it
does an exec'ed one. The server answers ``ok PID USEC`` once the intermediate is reaped (the
job waits for that), or ``err TEXT``.

Why it is faithful: ``pypy3 main.py`` itself runs the script from Python (PyPy's app_main:
``run_toplevel(execfile, ...)``, whose frames are hidden: ``__pypy__.hidden_applevel``, so no
traceback, ``sys._getframe`` or ``inspect`` sees them) and ends through PyPy's own exit
(threads joined, atexit, every open file flushed, the status from the script's SystemExit or
exception). Started with ``-c``, the server is the same stack one frame shorter than a file's
(``run_toplevel(exec_, LAUNCH)``): LAUNCH's frame is made hidden, and once :func:`job` has
returned in a job, LAUNCH execs the script's code itself, at the depth ``pypy3 main.py``
runs it, and an uncaught exception, a SystemExit or a normal end goes back into app_main
and PyPy's exit exactly as the script's would. The job gets the rest of what app_main gives
a script: ``__main__`` afresh (``__file__`` as given, ``__cached__`` None), ``sys.argv``,
``sys.path[0]`` (the script's directory), standard streams made as app_main makes them for
the job's descriptors, the job's environment (``os.environ`` and ``posix.environ``), the
modules a fresh start has (the server's own are taken out of ``sys.modules``), and new
threads' default stack from the job's RLIMIT_STACK, as glibc sizes it at a start.

What a fork cannot give is exec'ed, from the job once it is set up, as the exec path execs it:
a user site directory (site puts it on sys.path while starting) and a stack limit the
server's address layout has no room for. What stays visible and changes no verdict:
/proc/self/cmdline and /proc/self/environ (the server's), the address-space layout (the
server's, once per sandbox), the garbage collector's statistics and thresholds (the server's
heap, a little larger than a fresh start's), the JIT's warm-up of the few functions the server
ran, CPU time the start did not cost (``time.process_time()``, ``resource.getrusage()``), the
memory figure (lower: pages of the start a job never touches), and, since this loop is Python
(a job's heap is the server's as it stood at the fork), dead bytes of earlier requests: their
uid, work dir, limits, argv and environment, never a program's files, input or output; no
object reaches them.
tests/sandbox/test_forkserver.py runs probes both ways and compares them.
"""

import sys

FRESH = frozenset(sys.modules)  # what `pypy3 main.py` has loaded when main.py starts

import contextlib  # noqa: E402 - after FRESH on purpose
import io  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
from _ast import PyCF_ACCEPT_NULL_BYTES  # noqa: E402
from stat import S_ISDIR  # noqa: E402

import _cffi_backend as _ffi  # noqa: E402 - PyPy's own, without cffi's parser
from __pypy__ import hidden_applevel  # noqa: E402

# LAUNCH's frame, below the script's in a job: hidden, as app_main's own frames are
hidden_applevel(type(lambda: None)(sys._getframe(1).f_code, {}))

FDS = 4  # stdin, stdout, stderr, exec-error pipe; then the cell, when the job has one
CELL_FLAGS = 0x10000000 | 0x08000000 | 0x00020000 | 0x20000000 | 0x40000000  # user ipc ns pid net
PR_SET_DUMPABLE, PR_CAPBSET_READ, PR_CAPBSET_DROP = 4, 23, 24
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PR_SET_NO_NEW_PRIVS = 22, 2, 38
SYS_CAPSET = 126  # x86_64
THREAD_STACK_UNLIMITED = 2 * 1024 * 1024  # glibc's default for an unlimited RLIMIT_STACK
PTHREAD_STACK_MIN = 16384

_libc = _ffi.load_library(None)
_int = _ffi.new_primitive_type("int")
_long = _ffi.new_primitive_type("long")
_ulong = _ffi.new_primitive_type("unsigned long")
_size = _ffi.new_primitive_type("size_t")
_voidp = _ffi.new_pointer_type(_ffi.new_void_type())
_char_array = _ffi.new_array_type(_ffi.new_pointer_type(_ffi.new_primitive_type("char")), None)


def _function(name, result, *args):
    return _libc.load_function(_ffi.new_function_type(args, result, False), name)


_setns = _function("setns", _int, _int, _int)
_prctl = _function("prctl", _int, _int, _ulong, _ulong, _ulong, _ulong)
_capset = _function("syscall", _long, _long, _voidp, _voidp)
_get_default = _function("pthread_getattr_default_np", _int, _voidp)
_set_default = _function("pthread_setattr_default_np", _int, _voidp)
_set_stacksize = _function("pthread_attr_setstacksize", _int, _voidp, _size)
_attr_destroy = _function("pthread_attr_destroy", _int, _voidp)


def _check(result, what):
    if result < 0:
        err = _ffi.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _buffer(data):
    """A C copy of ``data`` (kept alive by the caller) and its address as an integer."""
    buf = _ffi.newp(_char_array, data)
    return buf, int(_ffi.cast(_ulong, buf))


# ---------------------------------------------------------------------------------- the server


def serve(sock):
    """The server's loop; returns only in a job, with its request and descriptors."""
    sock.send(b"ready")
    while True:
        try:
            data, ancillary, flags, _ = sock.recvmsg(16 * 1024, socket.CMSG_SPACE(4 * (FDS + 1)))
        except InterruptedError:
            continue
        if not data:
            os._exit(0)  # the supervisor is gone
        fds = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(
                    int.from_bytes(payload[i : i + 4], sys.byteorder)
                    for i in range(0, len(payload) - len(payload) % 4, 4)
                )
        for fd in fds:
            os.set_inheritable(fd, False)
        answer = spawn(data, fds, flags)
        if isinstance(answer, tuple):  # in the job
            sock.close()
            return answer
        for fd in fds:
            os.close(fd)
        try:
            sock.send(answer)
        except OSError:
            os._exit(0)


def spawn(data, fds, flags):
    """Make the job through an intermediate process: the answer in the server, (data, fds)
    in the job."""
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        return b"err request or descriptors truncated"
    seccomp, want = None, FDS
    for field in data.split(b"\0")[:-1]:
        if field[:1] == b"f":
            try:
                seccomp = bytes.fromhex(field[1:].decode())
            except ValueError:
                seccomp = None
        elif field[:1] == b"c":
            if field[1:] != b"4":
                return b"err the cell is not descriptor 4"
            want = FDS + 1
    if not seccomp or len(seccomp) % 8:
        return b"err no valid seccomp filter in the request"
    if len(fds) != want:
        return f"err {len(fds)} descriptors, {want} expected".encode()
    cell = fds[FDS] if want > FDS else -1
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    middle = os.fork()
    if middle == 0:
        try:
            job = intermediate(seccomp, cell, report_r, report_w)
        except BaseException as exc:  # never back into the server's loop
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
            os.write(report_w, f"err {reason}".encode()[:200])
            os._exit(1)
        if job == 0:  # the job waits until the intermediate is reaped: it never sees it
            os.close(report_w)
            os.close(gate_w)
            while os.read(gate_r, 1):
                pass
            os.close(gate_r)
            return data, fds
        os.write(report_w, f"ok {job}".encode())
        os._exit(0)
    os.close(report_w)
    os.close(gate_r)
    _, _, usage = os.wait4(middle, 0)
    report = os.read(report_r, 256).decode(errors="replace")
    os.close(report_r)
    os.close(gate_w)
    if not report.startswith("ok "):
        return (report or "err spawn: the intermediate process died").encode()
    usec = round((usage.ru_utime + usage.ru_stime) * 1e6)
    return f"{report} {usec}".encode()


def intermediate(seccomp, cell, report_r, report_w):
    """In the intermediate process: what the job must have before it exists, as the
    supervisor's child takes it on on the exec path (cell.c); then the job, forked."""
    os.close(report_r)
    step = "oom_score_adj"
    try:
        with open("/proc/self/oom_score_adj", "wb", buffering=0) as oom:
            oom.write(b"1000")
        step = "enter the cell"
        if cell >= 0:
            _check(_setns(cell, CELL_FLAGS), "setns")
        step = "seccomp filter"  # no_new_privs: as in job_filter_install (cell.c)
        _check(_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        program, address = _buffer(seccomp)
        count = (len(seccomp) // 8).to_bytes(8, sys.byteorder)
        header, header_address = _buffer(count + address.to_bytes(8, sys.byteorder))
        _check(_prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, header_address, 0, 0), "seccomp")
        del program, header  # kept alive until the filter was copied in
        step = "fork"
        return os.fork()
    except OSError as exc:
        os.write(report_w, f"err {step}: {exc.strerror or exc}".encode()[:200])
        os._exit(1)


# ---------------------------------------------------------------------------------- the job


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
        elif tag not in (b"f", b"c"):
            raise ValueError(f"unknown field tag {tag!r}")
    if job["uid"] < 1000 or len(job["argv"]) < 2:
        raise ValueError("a job needs a uid and argv [pypy3, script, ...]")
    return job


def close_all_but(keep):
    """Every descriptor from 3 on but ``keep`` closed: those open, not all 65536 numbers
    (os.closerange closes each in turn, 13 ms here)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):  # the directory listdir read, closed by now
                os.close(fd)


def thread_stack():
    """glibc's default stack for new threads, from RLIMIT_STACK as a process starting finds
    it (a forked job would keep its server's)."""
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if soft == resource.RLIM_INFINITY:
        size = THREAD_STACK_UNLIMITED
    else:
        size = max(soft, PTHREAD_STACK_MIN)
    page = resource.getpagesize()
    size = (size + page - 1) // page * page
    attr = _ffi.newp(_char_array, 128)  # a pthread_attr_t (56 bytes on x86_64)
    err = _get_default(attr)
    if err == 0:
        err = _set_stacksize(attr, size)
        if err == 0:
            err = _set_default(attr)
        _attr_destroy(attr)
    if err:
        raise OSError(err, os.strerror(err))


def drop_capabilities():
    cap = 0
    while _prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0:
        _prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        cap += 1
    head = _ffi.newp(_char_array, (0x20080522).to_bytes(4, sys.byteorder) + bytes(4))
    _check(_capset(SYS_CAPSET, head, _ffi.newp(_char_array, 24)), "capset")
    # a uid switch makes a process undumpable, which gives its /proc entry to root: the
    # supervisor finds, measures and kills a job's processes by their /proc owner
    _check(_prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")


def user_site(env):
    """Whether site would put a user site directory on sys.path for the job's $HOME."""
    site = sys.modules.get("site")
    if site is None or not site.ENABLE_USER_SITE or env.get("PYTHONNOUSERSITE"):
        return False
    base = env.get("PYTHONUSERBASE") or os.path.join(env.get("HOME", "/"), ".local")
    path = os.path.join(base, "lib", f"pypy{sys.version_info[0]}.{sys.version_info[1]}",
                        "site-packages")  # fmt: skip
    try:
        return S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def stack_room():
    """How far the main thread's stack can grow here: down to the mapping below it, less the
    kernel's guard gap. An exec'ed pypy3 is laid out to grow to its RLIMIT_STACK."""
    spans = []
    with open("/proc/self/maps", "rb") as maps:
        for line in maps:
            low, high = (int(x, 16) for x in line.split(None, 1)[0].split(b"-"))
            spans.append((low, high, line.rstrip().endswith(b"[stack]")))
    (stack,) = [low for low, _, is_stack in spans if is_stack]
    below = max((high for _, high, _ in spans if high <= stack), default=0)
    return stack - below - 256 * resource.getpagesize()


def create_stdio(fd, writing, name, encoding, errors):
    """app_main's create_stdio: what sys.stdin, stdout and stderr are at a start."""
    mode = "w" if writing else "r"
    try:
        buf = open(fd, mode + "b", -1, closefd=False)  # noqa: SIM115 - the job's to close
    except OSError:
        return None
    buf.raw.name = name
    stream = io.TextIOWrapper(buf, encoding, errors, newline="\n", line_buffering=buf.raw.isatty())
    stream.mode = mode
    return stream


@hidden_applevel
def become_job(data, fds):
    """In the forked job: set up like the supervisor's exec path; the code to run and its
    namespace, the script compiled as app_main compiles it."""
    stdin, stdout, stderr, errpipe = fds[:FDS]
    step, job = "request", {"argv": ["pypy3"]}
    try:
        job = parse(data)
        step = "dup2"
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        close_all_but(errpipe)
        os.setsid()
        for res, soft, hard in job["limits"]:
            step = f"setrlimit {res}"
            resource.setrlimit(res, (soft, hard))
        step = "thread stack"
        thread_stack()
        step = "chdir"
        os.chdir(job["dir"])
        step = "switch uid"
        uid = job["uid"]
        if os.getresuid() != (uid, uid, uid):
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        step = "drop capabilities"
        drop_capabilities()
        os.umask(0o022)
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        os.write(errpipe, f"{step} {job['argv'][0]}: {reason}".encode()[:127])
        os._exit(127)
    argv, env = job["argv"], dict(entry.partition("=")[::2] for entry in job["env"])
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if user_site(env) or soft == resource.RLIM_INFINITY or soft > STACK_ROOM:
        # what a fork cannot give as `pypy3 main.py` has it: the exec path's own way
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for number in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(number, signal.SIG_DFL)
        try:
            os.execve(argv[0], argv, env)
        except OSError as exc:
            os.write(errpipe, f"exec {argv[0]}: {exc.strerror}".encode()[:127])
            os._exit(127)
    os.close(errpipe)  # the job runs: the same signal as a successful exec
    os.environ.clear()
    os.environ.update(env)
    posix = sys.modules["posix"]
    posix.environ.clear()
    posix.environ.update((os.fsencode(k), os.fsencode(v)) for k, v in env.items())
    encoding = env.get("PYTHONIOENCODING") or None
    errors = None
    if encoding and ":" in encoding:
        encoding, errors = encoding.split(":", 1)
    sys.stderr = sys.__stderr__ = create_stdio(2, True, "<stderr>", encoding, "backslashreplace")
    sys.stdout = sys.__stdout__ = create_stdio(1, True, "<stdout>", encoding, errors)
    sys.stdin = sys.__stdin__ = create_stdio(0, False, "<stdin>", encoding, errors)
    filename = argv[1]
    sys.argv[:] = argv[1:]
    sys.path[0] = sys.pypy_resolvedirof(filename)
    # __main__ as app_main makes it: its names in app_main's order, the loader last
    main = type(sys)("__main__")
    main.__loader__ = sys.__loader__
    main.__builtins__ = sys.modules["builtins"]
    main.__annotations__ = {}
    main.__file__ = os.path.abspath(filename)
    main.__cached__ = None
    main.__loader__ = sys.modules["_frozen_importlib_external"].SourceFileLoader(
        "__main__", filename
    )
    sys.modules["__main__"] = main
    site = sys.modules.get("site")
    if site is not None:  # the user paths for the job's $HOME, as site computes them
        site.USER_BASE = site.USER_SITE = None
        site.getusersitepackages()
    for name in set(sys.modules) - FRESH:
        del sys.modules[name]
    with open(main.__file__, "rb") as script:
        source = script.read()
    return compile(source, main.__file__, "exec", PyCF_ACCEPT_NULL_BYTES), main.__dict__


@hidden_applevel
def job():
    """What LAUNCH calls: returns only in a job, once it is set up, with the script's code and
    namespace; LAUNCH runs it."""
    return become_job(*serve(socket.socket(fileno=3)))


STACK_ROOM = stack_room()
