/* Starting a job's process: its rlimits, its identity (uid, capabilities), and the exec path,
 * by which a child of ours enters the job's cell and forks the job. Shared by the ways a job is
 * started: exec'ed (run.c), handed to a fork server (server.c, which sends it the same
 * rlimits), or parked ahead of its run (park.c, which starts its runtime this way). */
#include "supervisor.h"

/* The rlimits of a job, for both ways of starting one (exec here, or the fork server). */
int job_limits(const job_t *job, limit_t out[MAX_LIMITS]) {
    int n = 0;
#define LIMIT(res, soft, hard) (out[n++] = (limit_t){(res), (rlim_t)(soft), (rlim_t)(hard)})
    if (job->cpu_ms) { /* backstop; the tick enforces milliseconds */
        rlim_t s = (rlim_t)(job->cpu_ms + 999) / 1000 + 1;
        LIMIT(RLIMIT_CPU, s, s + 1);
    }
    if (job->procs) LIMIT(RLIMIT_NPROC, job->procs, job->procs);
    if (job->fsize_kb) LIMIT(RLIMIT_FSIZE, job->fsize_kb * 1024, job->fsize_kb * 1024);
    if (job->nofile) LIMIT(RLIMIT_NOFILE, job->nofile, job->nofile);
    if (job->stack_kb) LIMIT(RLIMIT_STACK, job->stack_kb * 1024, job->stack_kb * 1024);
    LIMIT(RLIMIT_CORE, 0, 0);
    LIMIT(RLIMIT_MSGQUEUE, 0, 0);
    LIMIT(RLIMIT_MEMLOCK, 0, 0);
#undef LIMIT
    return n;
}

/* This process's capability sets, read (`write` 0) or replaced: -1 with errno. */
int capabilities(capsets_t caps[2], int write) {
    struct {
        uint32_t version;
        int pid;
    } head = {0x20080522, 0}; /* _LINUX_CAPABILITY_VERSION_3: each set in two words */
    return (int)syscall(write ? SYS_capset : SYS_capget, &head, caps);
}

/* Give up every capability: the bounding set too, where the job may (in its cell it may,
 * and must: a job that is not exec'ed keeps what setns gave it). */
void drop_capabilities(void) {
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    capsets_t none[2] = {{0, 0, 0}, {0, 0, 0}};
    capabilities(none, 1);
}

/* The job's own process (forked by one that entered its cell): descriptors, signals, session,
 * limits, uid, work dir, no capabilities, then exec. */
static void child_exec(job_t *job, int fd0, int out_w, int err_w, int errpipe_w) {
    const char *step = "dup2";
    sigset_t mask;
    sigemptyset(&mask);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    /* ignored by the supervisor; default for a program as run by hand: one that writes to a
     * partner that has ended dies of it. A partner (an interactor) ignores it: writing to a
     * program that has ended fails with EPIPE, and the partner goes on to say its verdict,
     * as judges run interactors */
    signal(SIGPIPE, job->partner ? SIG_IGN : SIG_DFL);
    if (dup2(fd0, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) goto fail;
    /* only 0-2 and the CLOEXEC error pipe survive: the supervisor's own stdout stays ours;
     * and a runtime parked for the job keeps its control socket, on the highest descriptor
     * the job may have, so that every descriptor the runtime opens as it starts is numbered
     * as in an exec'ed one, and closing it leaves no gap below them (park.c) */
    if (job->ctl_fd >= 0) {
        int ctl = job->nofile ? (int)job->nofile - 1 : PARK_CTL_FD;
        step = "control socket";
        if (ctl <= errpipe_w || dup2(job->ctl_fd, ctl) < 0) goto fail;
        if (errpipe_w > 3) close_range(3, (unsigned)errpipe_w - 1, 0);
        if (ctl > errpipe_w + 1) close_range((unsigned)errpipe_w + 1, (unsigned)ctl - 1, 0);
        close_range((unsigned)ctl + 1, ~0U, 0);
    } else {
        close_from(3, errpipe_w);
    }
    setsid();
    limit_t limits[MAX_LIMITS];
    int nlimits = job_limits(job, limits);
    for (int i = 0; i < nlimits; i++) {
        struct rlimit rl = {limits[i].soft, limits[i].hard};
        step = "setrlimit";
        if (setrlimit(limits[i].resource, &rl) < 0) goto fail;
    }
    step = "switch uid";
    /* not "if root": in a cell, root is unmapped and reads as the overflow uid */
    if (getuid() != job->uid || geteuid() != job->uid) {
        if (setgroups(0, NULL) < 0 || setresgid(job->uid, job->uid, job->uid) < 0 ||
            setresuid(job->uid, job->uid, job->uid) < 0)
            goto fail;
    }
    /* as the job: a partner's work dir lets no other uid in, the supervisor's included */
    step = "chdir";
    if (chdir(job->workdir[0] ? job->workdir : "/") < 0) goto fail;
    drop_capabilities();
    umask(022);
    step = "exec";
    execve(job->argv[0], job->argv, job->envp);
fail:;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s %s: %s", step, job->argv[0], strerror(errno));
    if (write(errpipe_w, msg, (size_t)n) < 0) {}
    _exit(127);
}

/* The exec path: a child of ours enters the cell (cell_enter), forks the job and exits, so the
 * job becomes our child (we are a subreaper) like a fork server's job. The job waits until
 * that child is reaped: a program never sees the process that forked it. The job's pid, or
 * -1 with the reason on the error pipe; the child's CPU time goes into *starter_ns. */
pid_t spawn_exec(job_t *job, const int fds[4], const cell_t *cell, int64_t *starter_ns) {
    int pidpipe[2], gate[2];
    if (pipe2(pidpipe, O_CLOEXEC) < 0) return -1;
    if (pipe2(gate, O_CLOEXEC) < 0) {
        close(pidpipe[0]);
        close(pidpipe[1]);
        return -1;
    }
    pid_t middle = fork();
    if (middle == 0) {
        close(gate[1]);
        const char *step = cell_enter(cell->pidfd);
        pid_t pid = step ? -1 : fork();
        if (pid == 0) {
            char c;
            while (read(gate[0], &c, 1) < 0 && errno == EINTR) {}
            close(gate[0]);
            child_exec(job, fds[0], fds[1], fds[2], fds[3]);
        }
        if (pid < 0) {
            char msg[160];
            int n = snprintf(msg, sizeof msg, "%s: %s", step ? step : "fork", strerror(errno));
            if (write(fds[3], msg, (size_t)n) < 0) {}
            _exit(127);
        }
        if (write(pidpipe[1], &pid, sizeof pid) < 0) {}
        _exit(0);
    }
    close(pidpipe[1]);
    close(gate[0]);
    pid_t pid = -1;
    if (middle < 0 || read(pidpipe[0], &pid, sizeof pid) != sizeof pid) pid = -1;
    close(pidpipe[0]);
    /* not one of the job's processes: reaped here, before reap() could count it */
    struct rusage ru;
    while (middle > 0 && wait4(middle, NULL, 0, &ru) < 0 && errno == EINTR) {}
    if (middle > 0)
        *starter_ns += ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
                       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
    close(gate[1]); /* the job goes */
    return pid;
}
