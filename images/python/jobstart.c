/* _jobstart: the parts of the Python fork server (forkserver.py) that need C.
 *
 * spawn(filter, cell) makes one job: an intermediate process that shares the server's memory
 * (CLONE_VM | CLONE_VFORK: no copy of the server, no Python run in it) takes on what the job
 * must have before it exists, as the supervisor's own child does on the exec path
 * (images/supervisor/cell.c, cell_enter): the job's OOM score, its cell (setns) and its
 * seccomp filter. It then forks the job, a copy of the server as it
 * stood when spawn was called, and exits, so the job is reparented to the supervisor. The
 * job comes back from spawn() with None; the server gets the job's pid once the intermediate
 * is reaped. One Python process is forked per job, not two.
 *
 * run(code, globals) runs a script's code object as `python3 main.py` does: from C, with the
 * whole recursion limit ahead of its first frame, whatever frames of the server's lie below.
 *
 * drop_capabilities() gives up every capability (the bounding set too) and makes the process
 * dumpable again, after its uid switch. */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "run() knows where CPython 3.11 keeps a thread's recursion count"
#endif

#define CELL_FLAGS (CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWPID)

struct request {
    struct sock_fprog filter;
    int cell;
    /* written by the intermediate process, read by the server once it is reaped */
    pid_t job;
    int err;
    const char *step;
};

static jmp_buf in_job; /* where a job, a copy of the server, comes back into the server's code */
static char middle_stack[64 * 1024] __attribute__((aligned(16)));

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
    r->step = "seccomp filter";
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

static PyObject *spawn(PyObject *self, PyObject *args) {
    Py_buffer filter;
    int cell;
    if (!PyArg_ParseTuple(args, "y*i", &filter, &cell)) return NULL;
    if (filter.len <= 0 || filter.len % sizeof(struct sock_filter) != 0 ||
        filter.len / sizeof(struct sock_filter) > 4096) {
        PyBuffer_Release(&filter);
        PyErr_SetString(PyExc_ValueError, "not a seccomp filter");
        return NULL;
    }
    /* the request outlives nothing: the intermediate is gone when clone returns */
    static struct request r;
    memset(&r, 0, sizeof r);
    r.filter.len = (unsigned short)(filter.len / sizeof(struct sock_filter));
    r.filter.filter = filter.buf;
    r.cell = cell;
    PyOS_BeforeFork();
    if (setjmp(in_job) != 0) {
        /* the job, in its own copy of the server */
        PyOS_AfterFork_Child();
        PyBuffer_Release(&filter);
        Py_RETURN_NONE;
    }
    pid_t middle_pid = clone(middle, middle_stack + sizeof middle_stack,
                             CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
    int clone_errno = errno;
    PyOS_AfterFork_Parent();
    PyBuffer_Release(&filter);
    if (middle_pid < 0) {
        errno = clone_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int status;
    while (waitpid(middle_pid, &status, 0) < 0 && errno == EINTR) {}
    if (r.job <= 0) {
        PyErr_Format(PyExc_OSError, "%s: %s", r.step ? r.step : "spawn",
                     strerror(r.err ? r.err : ECHILD));
        return NULL;
    }
    return PyLong_FromLong((long)r.job);
}

static PyObject *run(PyObject *self, PyObject *args) {
    PyObject *code, *globals;
    if (!PyArg_ParseTuple(args, "O!O!", &PyCode_Type, &code, &PyDict_Type, &globals)) return NULL;
    PyThreadState *tstate = PyThreadState_Get();
    int below = tstate->recursion_remaining;
    tstate->recursion_remaining = tstate->recursion_limit; /* as if no frame were below */
    PyObject *result = PyEval_EvalCode(code, globals, globals);
    tstate->recursion_remaining = below;
    return result;
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
    {"spawn", spawn, METH_VARARGS, "spawn(filter, cell) -> the job's pid, or None in the job"},
    {"run", run, METH_VARARGS, "run(code, globals): the script, with the whole recursion limit"},
    {"drop_capabilities", drop_capabilities, METH_NOARGS, "no capability left, dumpable"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jobstart", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jobstart(void) { return PyModule_Create(&module); }
