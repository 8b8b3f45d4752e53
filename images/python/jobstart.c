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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "run() knows where CPython 3.11 keeps a thread's recursion count"
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
    {"serve", serve, METH_VARARGS, "serve(sock) -> (request, fds), in a job only"},
    {"run", run, METH_VARARGS, "run(code, globals): the script, with the whole recursion limit"},
    {"drop_capabilities", drop_capabilities, METH_NOARGS, "no capability left, dumpable"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jobstart", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jobstart(void) { return PyModule_Create(&module); }
