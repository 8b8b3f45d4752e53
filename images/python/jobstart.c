/* _jobstart: the parts of the Python fork server (forkserver.py) that need C.
 *
 * serve(sock) is the server's whole loop, in C, so that serving a job allocates nothing and
 * writes nothing in the server's memory that the next job would inherit: every job is forked
 * from the server exactly as it stood when it said "ready", and its memory figure is the one
 * it gets as a fresh sandbox's first job. Per request it takes the datagram and descriptors
 * off the socket, reads the two fields it needs itself (the seccomp filter and the cell's
 * descriptor; the job reads the rest), and makes the job: an intermediate process that shares
 * the server's memory (CLONE_VM | CLONE_VFORK: no copy of the server, no Python run in it)
 * takes on what the job must have before it exists, as the supervisor's own child does on
 * the exec path (images/supervisor/cell.c, cell_enter): the job's OOM score, its cell
 * (setns) and its seccomp filter. It then forks the job, a copy of the server, and exits, so
 * the job is reparented to the supervisor; the server answers "ok PID USEC" (USEC: the
 * intermediate's CPU time, which the supervisor does not charge to the job) once the intermediate
 * is reaped, or "err TEXT" for a request it cannot serve. serve() returns only in a job, with
 * the request and its descriptors, once the intermediate is gone. One Python process is
 * forked per job, not two.
 *
 * run(code, globals) runs a script's code object as `python3 main.py` does: from C, with the
 * whole recursion limit ahead of its first frame and no frame below it, whatever frames of
 * the server's lie below (sys._getframe, tracebacks, inspect, warnings' stacklevel and
 * faulthandler all stop at the script's frame), then flushes sys.stderr and sys.stdout as
 * the interpreter does once a script has run. bare(callable, *args) calls what the
 * interpreter calls from C (excepthook, and at shutdown atexit callbacks, flushes,
 * collections) the same way; flush_std_files() is CPython's own flush at exit.
 *
 * mark_server() puts the server's objects, all in the collector's oldest generation, between
 * two markers of its own; freeze_server(), in a job at exit, moves them to the permanent
 * generation (gc.freeze), so that the job's last collections walk only what the job made:
 * a job sees nothing frozen while it runs, and its exit does not copy the server's pages.
 *
 * thread_stack() sets the default stack size of the threads a job starts from its
 * RLIMIT_STACK, as glibc does once, when a process starts (a forked job would keep its
 * server's).
 *
 * drop_capabilities() gives up every capability (the bounding set too) and makes the process
 * dumpable again, after its uid switch.
 *
 * execve(path, argv, env) execs a job that cannot run forked exactly as `python3 main.py`
 * would (forkserver.py says when), as the supervisor's exec path does: no signal blocked,
 * none ignored. */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#define Py_BUILD_CORE_MODULE /* the collector's lists (mark_server, freeze_server) */
#include <Python.h>
#include <internal/pycore_gc.h>
#include <internal/pycore_interp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "run() knows where CPython 3.11 keeps a thread's recursion count"
#endif

/* glibc's ARCH_STACK_DEFAULT_SIZE (sysdeps/<arch>/nptl/pthreaddef.h): a new thread's stack
 * when RLIMIT_STACK is unlimited */
#if defined(__x86_64__) || defined(__aarch64__) || defined(__i386__) || defined(__arm__)
#define THREAD_STACK_UNLIMITED (2 * 1024 * 1024)
#else
#error "the default thread stack for an unlimited RLIMIT_STACK: see glibc's pthreaddef.h"
#endif

#define CELL_FLAGS (CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET)

#define MAX_REQUEST (16 * 1024) /* the supervisor sends at most 15 KiB */
#define MAX_FILTER 256 /* instructions; the job filter has about 70 */
#define FDS 4 /* stdin, stdout, stderr, exec-error pipe; then the cell, when the job has one */

struct request {
    struct sock_fprog filter;
    int cell;
    /* written by the intermediate process, read by the server once it is reaped */
    pid_t job;
    int err;
    const char *step;
};

/* Everything serve() writes lives here, touched once before "ready": a job inherits the
 * same server whichever job it is. */
static struct {
    char data[MAX_REQUEST + 1];
    union {
        char buf[CMSG_SPACE((FDS + 1) * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct sock_filter filter[MAX_FILTER];
    char answer[256];
    struct request r;
    size_t len;
    int fds[FDS + 1];
    int nfds;
    int gate[2];
    struct rusage middle_usage; /* the intermediate's CPU time: the fleet's, not the job's */
} s;
static jmp_buf in_job; /* where a job, a copy of the server, comes back into the server's code */
static char middle_stack[16 * 1024] __attribute__((aligned(16)));

/* The intermediate process: the server's memory, its own stack and registers; system calls
 * only (its libc state is the server's). */
static int middle(void *arg) {
    struct request *r = arg;
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    r->step = "oom_score_adj";
    if (fd < 0 || write(fd, "1000", 4) != 4) goto fail;
    close(fd);
    r->step = "enter the cell";
    if (r->cell >= 0 && setns(r->cell, CELL_FLAGS) < 0) goto fail;
    r->step = "seccomp filter"; /* no_new_privs: as in job_filter_install (cell.c) */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) goto fail;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &r->filter, 0, 0) < 0) goto fail;
    r->step = "fork";
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); /* the job: a private copy */
    if (pid == 0) longjmp(in_job, 1);
    if (pid < 0) goto fail;
    r->job = pid;
    _exit(0);
fail:
    r->err = errno;
    _exit(1);
}

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Takes the next request off the socket into s: its size, 0 once the supervisor is gone. A
 * request the server cannot serve leaves its "err" answer in s.answer. */
static ssize_t receive(int sock) {
    struct iovec iov = {s.data, MAX_REQUEST};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = s.control.buf;
    mh.msg_controllen = sizeof s.control.buf;
    ssize_t n;
    while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
    s.nfds = 0;
    s.answer[0] = 0;
    if (n <= 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count && s.nfds < FDS + 1; i++)
            memcpy(&s.fds[s.nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        snprintf(s.answer, sizeof s.answer, "err request or descriptors truncated");
        return n;
    }
    s.len = (size_t)n;
    s.data[n] = 0;
    /* the fields the server itself needs; the job reads the others */
    s.r.filter.len = 0;
    s.r.cell = -1;
    int want = FDS;
    for (char *field = s.data; field < s.data + n; field += strlen(field) + 1) {
        if (field[0] == 'f') {
            size_t digits = strlen(field + 1);
            size_t bytes = digits / 2;
            if (digits % 2 || bytes % sizeof(struct sock_filter) || bytes == 0 ||
                bytes / sizeof(struct sock_filter) > MAX_FILTER)
                break;
            unsigned char *out = (unsigned char *)s.filter;
            for (size_t i = 0; i < bytes; i++) {
                int hi = hex(field[1 + 2 * i]), lo = hex(field[2 + 2 * i]);
                if (hi < 0 || lo < 0) goto bad_filter;
                out[i] = (unsigned char)(hi << 4 | lo);
            }
            s.r.filter.len = (unsigned short)(bytes / sizeof(struct sock_filter));
            s.r.filter.filter = s.filter;
        } else if (field[0] == 'c') {
            if (strcmp(field + 1, "4") != 0) {
                snprintf(s.answer, sizeof s.answer, "err the cell is not descriptor 4");
                return n;
            }
            want = FDS + 1;
        }
    }
bad_filter:
    if (s.r.filter.len == 0)
        snprintf(s.answer, sizeof s.answer, "err no valid seccomp filter in the request");
    else if (s.nfds != want)
        snprintf(s.answer, sizeof s.answer, "err %d descriptors, %d expected", s.nfds, want);
    else if (want > FDS)
        s.r.cell = s.fds[FDS];
    return n;
}

static PyObject *serve(PyObject *self, PyObject *args) {
    int sock;
    if (!PyArg_ParseTuple(args, "i", &sock)) return NULL;
    memset(&s, 0, sizeof s);
    memset(middle_stack, 0, sizeof middle_stack);
    if (send(sock, "ready", 5, MSG_NOSIGNAL) != 5) return PyErr_SetFromErrno(PyExc_OSError);
    for (;;) {
        ssize_t n = receive(sock);
        if (n == 0) _exit(0); /* the supervisor is gone */
        if (n < 0) return PyErr_SetFromErrno(PyExc_OSError);
        if (!s.answer[0]) {
            s.r.job = 0;
            s.r.err = 0;
            s.r.step = NULL;
            if (pipe2(s.gate, O_CLOEXEC) < 0) {
                snprintf(s.answer, sizeof s.answer, "err pipe: %s", strerror(errno));
            } else {
                PyOS_BeforeFork();
                if (setjmp(in_job) != 0) {
                    /* the job, in its own copy of the server: it waits until the intermediate
                     * is reaped, so a program never sees what forked it */
                    PyOS_AfterFork_Child();
                    close(sock);
                    close(s.gate[1]);
                    char none;
                    while (read(s.gate[0], &none, 1) < 0 && errno == EINTR) {}
                    close(s.gate[0]);
                    PyObject *fds = PyTuple_New(s.nfds);
                    for (int i = 0; fds && i < s.nfds; i++)
                        PyTuple_SET_ITEM(fds, i, PyLong_FromLong(s.fds[i]));
                    if (!fds) return NULL;
                    return Py_BuildValue("(y#N)", s.data, (Py_ssize_t)s.len, fds);
                }
                pid_t middle_pid = clone(middle, middle_stack + sizeof middle_stack,
                                         CLONE_VM | CLONE_VFORK | SIGCHLD, &s.r);
                int clone_errno = errno;
                PyOS_AfterFork_Parent();
                if (middle_pid >= 0) {
                    int status;
                    while (wait4(middle_pid, &status, 0, &s.middle_usage) < 0 && errno == EINTR) {}
                }
                close(s.gate[0]);
                close(s.gate[1]);
                if (middle_pid < 0)
                    snprintf(s.answer, sizeof s.answer, "err clone: %s", strerror(clone_errno));
                else if (s.r.job <= 0)
                    snprintf(s.answer, sizeof s.answer, "err %s: %s",
                             s.r.step ? s.r.step : "spawn", strerror(s.r.err ? s.r.err : ECHILD));
                else
                    snprintf(s.answer, sizeof s.answer, "ok %d %lld", (int)s.r.job,
                             (long long)(s.middle_usage.ru_utime.tv_sec + s.middle_usage.ru_stime.tv_sec) *
                                     1000000 +
                                 s.middle_usage.ru_utime.tv_usec + s.middle_usage.ru_stime.tv_usec);
            }
        }
        for (int i = 0; i < s.nfds; i++) close(s.fds[i]);
        if (send(sock, s.answer, strlen(s.answer), MSG_NOSIGNAL) < 0) _exit(0);
    }
}

/* What a call from C at the interpreter's top level has: no Python frame below it and the
 * whole recursion limit ahead. The server's frames stay where they are (on the thread's data
 * stack); only the chain a program walks starts afresh, and is put back on return. */
struct top {
    struct _PyInterpreterFrame *below;
    int remaining;
};

static struct top top_enter(PyThreadState *tstate) {
    struct top saved = {tstate->cframe->current_frame, tstate->recursion_remaining};
    tstate->cframe->current_frame = NULL;
    tstate->recursion_remaining = tstate->recursion_limit;
    return saved;
}

static void top_leave(PyThreadState *tstate, struct top saved) {
    tstate->cframe->current_frame = saved.below;
    tstate->recursion_remaining = saved.remaining;
}

/* pythonrun.c's flush_io, which runs once the script has: sys.stderr then sys.stdout
 * flushed, their errors ignored, the script's own exception (if any) kept. */
static void flush_io(void) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    const char *names[] = {"stderr", "stdout"};
    for (int i = 0; i < 2; i++) {
        PyObject *file = PySys_GetObject(names[i]);
        if (!file) continue;
        Py_INCREF(file);
        PyObject *r = PyObject_CallMethod(file, "flush", NULL);
        if (r)
            Py_DECREF(r);
        else
            PyErr_Clear();
        Py_DECREF(file);
    }
    PyErr_Restore(type, value, traceback);
}

static PyObject *run(PyObject *self, PyObject *args) {
    PyObject *code, *globals;
    if (!PyArg_ParseTuple(args, "O!O!", &PyCode_Type, &code, &PyDict_Type, &globals)) return NULL;
    PyThreadState *tstate = PyThreadState_Get();
    struct top saved = top_enter(tstate);
    PyObject *result = PyEval_EvalCode(code, globals, globals);
    flush_io();
    top_leave(tstate, saved);
    return result;
}

static PyObject *bare(PyObject *self, PyObject *args) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "bare(callable, *args)");
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, 1, n);
    if (!rest) return NULL;
    PyThreadState *tstate = PyThreadState_Get();
    struct top saved = top_enter(tstate);
    PyObject *result = PyObject_Call(PyTuple_GET_ITEM(args, 0), rest, NULL);
    top_leave(tstate, saved);
    Py_DECREF(rest);
    return result;
}

/* CPython's flush of sys.stdout and sys.stderr at exit (pylifecycle.c: flush_std_files and
 * file_is_closed), from the top: False when one failed; a failed stdout flush is reported as
 * unraisable, a failed stderr one is not. */
static int file_is_closed(PyObject *file) {
    PyObject *closed = PyObject_GetAttrString(file, "closed");
    if (!closed) {
        PyErr_Clear();
        return 0;
    }
    int r = PyObject_IsTrue(closed);
    Py_DECREF(closed);
    if (r < 0) PyErr_Clear();
    return r > 0;
}

static PyObject *flush_std_files(PyObject *self, PyObject *unused) {
    PyThreadState *tstate = PyThreadState_Get();
    struct top saved = top_enter(tstate);
    PyObject *out = PySys_GetObject("stdout"), *err = PySys_GetObject("stderr");
    Py_XINCREF(out);
    Py_XINCREF(err);
    int ok = 1;
    if (out && out != Py_None && !file_is_closed(out)) {
        PyObject *r = PyObject_CallMethod(out, "flush", NULL);
        if (!r) {
            PyErr_WriteUnraisable(out);
            ok = 0;
        }
        Py_XDECREF(r);
    }
    if (err && err != Py_None && !file_is_closed(err)) {
        PyObject *r = PyObject_CallMethod(err, "flush", NULL);
        if (!r) {
            PyErr_Clear();
            ok = 0;
        }
        Py_XDECREF(r);
    }
    Py_XDECREF(out);
    Py_XDECREF(err);
    top_leave(tstate, saved);
    return PyBool_FromLong(ok);
}

/* The server's objects: between these two, in the oldest generation's list. The collector
 * only ever appends to a list (objects it tracks, generations it merges, objects it finds
 * reachable after all) and never moves these two (always referenced from here), so the
 * objects between them stay the server's, in whichever list holds them, however a job
 * collects, freezes or unfreezes. */
static PyObject *marker[2];

static void gc_unlink(PyGC_Head *node) {
    PyGC_Head *prev = _PyGCHead_PREV(node), *next = _PyGCHead_NEXT(node);
    _PyGCHead_SET_NEXT(prev, next);
    _PyGCHead_SET_PREV(next, prev);
}

static void gc_link_after(PyGC_Head *at, PyGC_Head *node) {
    PyGC_Head *next = _PyGCHead_NEXT(at);
    _PyGCHead_SET_PREV(node, at);
    _PyGCHead_SET_NEXT(node, next);
    _PyGCHead_SET_NEXT(at, node);
    _PyGCHead_SET_PREV(next, node);
}

/* In the server, after gc.collect(1) (everything in the oldest generation), before "ready". */
static PyObject *mark_server(PyObject *self, PyObject *unused) {
    struct _gc_runtime_state *gc = &PyInterpreterState_Get()->gc;
    PyGC_Head *oldest = &gc->generations[NUM_GENERATIONS - 1].head;
    for (int i = 0; i < 2; i++) {
        if (!marker[i] && !(marker[i] = PyList_New(0))) return NULL;
        gc_unlink(_Py_AS_GC(marker[i]));
    }
    gc_link_after(oldest, _Py_AS_GC(marker[0]));                   /* first */
    gc_link_after(_PyGCHead_PREV(oldest), _Py_AS_GC(marker[1])); /* last */
    Py_RETURN_NONE;
}

/* In a job, before the collections of its exit: the server's objects frozen, unless the
 * program froze objects itself (theirs are frozen already, the rest stays as it is). */
static PyObject *freeze_server(PyObject *self, PyObject *unused) {
    struct _gc_runtime_state *gc = &PyInterpreterState_Get()->gc;
    PyGC_Head *frozen = &gc->permanent_generation.head;
    if (!marker[0] || _PyGCHead_NEXT(frozen) != frozen) Py_RETURN_FALSE;
    PyGC_Head *first = _Py_AS_GC(marker[0]), *last = _Py_AS_GC(marker[1]);
    PyGC_Head *before = _PyGCHead_PREV(first), *after = _PyGCHead_NEXT(last);
    _PyGCHead_SET_NEXT(before, after);
    _PyGCHead_SET_PREV(after, before);
    _PyGCHead_SET_NEXT(frozen, first);
    _PyGCHead_SET_PREV(first, frozen);
    _PyGCHead_SET_NEXT(last, frozen);
    _PyGCHead_SET_PREV(frozen, last);
    Py_RETURN_TRUE;
}

/* glibc's __pthread_early_init: the default stack of a new thread is RLIMIT_STACK as the
 * process found it at its start (unlimited: the architecture's default; at least
 * PTHREAD_STACK_MIN), rounded up to a page. The guard and everything else stay glibc's. */
static PyObject *thread_stack(PyObject *self, PyObject *unused) {
    struct rlimit rl;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size;
    if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        size = THREAD_STACK_UNLIMITED;
    else if (rl.rlim_cur < (rlim_t)PTHREAD_STACK_MIN)
        size = PTHREAD_STACK_MIN;
    else
        size = (size_t)rl.rlim_cur;
    size = (size + page - 1) / page * page;
    pthread_attr_t attr;
    int err = pthread_getattr_default_np(&attr);
    if (err == 0) {
        err = pthread_attr_setstacksize(&attr, size);
        if (err == 0) err = pthread_setattr_default_np(&attr);
        pthread_attr_destroy(&attr);
    }
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSize_t(size);
}

/* A NULL-terminated copy of a list of str (file system encoding); NULL with an exception. */
static char **strings(PyObject *list, PyObject **keep) {
    Py_ssize_t n = PyList_Check(list) ? PyList_GET_SIZE(list) : -1;
    if (n < 0) {
        PyErr_SetString(PyExc_TypeError, "a list of str expected");
        return NULL;
    }
    *keep = PyList_New(n);
    char **out = PyMem_Calloc((size_t)n + 1, sizeof *out);
    if (!*keep || !out) {
        PyMem_Free(out);
        return (char **)PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *bytes = PyUnicode_EncodeFSDefault(PyList_GET_ITEM(list, i));
        if (!bytes) {
            PyMem_Free(out);
            return NULL;
        }
        PyList_SET_ITEM(*keep, i, bytes);
        out[i] = PyBytes_AS_STRING(bytes);
    }
    return out;
}

static PyObject *job_execve(PyObject *self, PyObject *args) {
    PyObject *path, *argv, *env, *keep_argv = NULL, *keep_env = NULL;
    if (!PyArg_ParseTuple(args, "O&OO", PyUnicode_FSConverter, &path, &argv, &env)) return NULL;
    char **cargv = strings(argv, &keep_argv);
    char **cenv = cargv ? strings(env, &keep_env) : NULL;
    if (cenv) {
        /* as the supervisor's child before its exec (spawn.c): nothing blocked, and the
         * signals the interpreter ignores back to their defaults */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGXFSZ, SIG_DFL);
        execve(PyBytes_AS_STRING(path), cargv, cenv);
        PyErr_SetFromErrno(PyExc_OSError);
    }
    PyMem_Free(cargv);
    PyMem_Free(cenv);
    Py_XDECREF(keep_argv);
    Py_XDECREF(keep_env);
    Py_DECREF(path);
    return NULL;
}

static PyObject *drop_capabilities(PyObject *self, PyObject *unused) {
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    struct {
        unsigned int version;
        int pid;
    } head = {0x20080522, 0}; /* _LINUX_CAPABILITY_VERSION_3 */
    unsigned int none[6] = {0};
    /* a uid switch makes a process undumpable, which gives its /proc entry to root: the
     * supervisor finds, measures and kills a job's processes by their /proc owner */
    if (syscall(SYS_capset, &head, none) < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"serve", serve, METH_VARARGS, "serve(sock) -> (request, fds), in a job only"},
    {"run", run, METH_VARARGS, "run(code, globals): the script, as the interpreter's top level"},
    {"bare", bare, METH_VARARGS, "bare(callable, *args): called as from the interpreter's top"},
    {"flush_std_files", flush_std_files, METH_NOARGS, "sys.stdout and sys.stderr flushed at exit"},
    {"mark_server", mark_server, METH_NOARGS, "the server's objects between two markers"},
    {"freeze_server", freeze_server, METH_NOARGS, "the server's objects frozen, at a job's exit"},
    {"thread_stack", thread_stack, METH_NOARGS, "new threads' stack from RLIMIT_STACK; its size"},
    {"execve", job_execve, METH_VARARGS, "execve(path, argv, env): exec the job; raises on failure"},
    {"drop_capabilities", drop_capabilities, METH_NOARGS, "no capability left, dumpable"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jobstart", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jobstart(void) { return PyModule_Create(&module); }
