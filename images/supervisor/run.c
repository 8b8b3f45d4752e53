/* Running one job: the child's limits and identity, then watching it until it ends. */
#include "supervisor.h"

/* ------------------------------------------------------------------ running a job */

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

/* Give up every capability: the bounding set too, where the job may (in its cell it may,
 * and must: a job that is not exec'ed keeps what setns gave it). */
void drop_capabilities(void) {
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    struct {
        uint32_t version;
        int pid;
    } head = {0x20080522, 0}; /* _LINUX_CAPABILITY_VERSION_3 */
    struct {
        uint32_t effective, permitted, inheritable;
    } none[2] = {{0, 0, 0}, {0, 0, 0}};
    syscall(SYS_capset, &head, none);
}

/* The job's own process (forked by one that entered its cell): descriptors, session, limits,
 * work dir, uid, no capabilities, then exec. */
static void child_exec(job_t *job, int fd0, int out_w, int err_w, int errpipe_w) {
    const char *step = "dup2";
    sigset_t mask;
    sigemptyset(&mask);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    if (dup2(fd0, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) goto fail;
    /* only 0-2 and the CLOEXEC error pipe survive: the supervisor's own stdout stays ours */
    close_from(3, errpipe_w);
    setsid();
    limit_t limits[MAX_LIMITS];
    int nlimits = job_limits(job, limits);
    for (int i = 0; i < nlimits; i++) {
        struct rlimit rl = {limits[i].soft, limits[i].hard};
        step = "setrlimit";
        if (setrlimit(limits[i].resource, &rl) < 0) goto fail;
    }
    step = "chdir";
    if (chdir(job->workdir[0] ? job->workdir : "/") < 0) goto fail;
    step = "switch uid";
    /* not "if root": in a cell, root is unmapped and reads as the overflow uid */
    if (getuid() != job->uid || geteuid() != job->uid) {
        if (setgroups(0, NULL) < 0 || setresgid(job->uid, job->uid, job->uid) < 0 ||
            setresuid(job->uid, job->uid, job->uid) < 0)
            goto fail;
    }
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
 * -1 with the reason on the error pipe. */
static pid_t spawn_exec(job_t *job, const int fds[4], const cell_t *cell) {
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
    while (middle > 0 && waitpid(middle, NULL, 0) < 0 && errno == EINTR) {}
    close(gate[1]); /* the job goes */
    return pid;
}

void drain(int fd, buf_t *b) {
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) { buf_add(b, chunk, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        return;
    }
}

/* The job's memory now (memory.c), without what we hold of its output, which is ours. */
static long memory_now(const scan_t *scan, const memcg_t *base, const result_t *res) {
    long own_kb = (long)((res->stdout_buf.cap + res->stderr_buf.cap) / 1024);
    return base ? job_memory_kb(scan->resident_kb, base, own_kb) : scan->resident_kb;
}

void run_job(job_t *job, result_t *res) {
    memset(res, 0, sizeof *res);
    res->killed = "none";
    res->stdout_buf.limit = job->out_bytes + 1; /* one past the cap tells OLE from a full fit */
    res->stderr_buf.limit = job->err_bytes;
    reaped_cpu_us = 0;
    reaped_maxrss = 0;
    main_status = -1;
    long oom_before = oom_kills();

    int outp[2], errp[2], errpipe[2];
    /* the job's own pipes, as a program's output pipes are: /dev/stdout can be reopened */
    setfsuid(job->uid);
    int piped = pipe2(outp, O_CLOEXEC) == 0 && pipe2(errp, O_CLOEXEC) == 0;
    setfsuid(geteuid());
    if (!piped || pipe2(errpipe, O_CLOEXEC) < 0) {
        snprintf(res->exec_error, sizeof res->exec_error, "pipe: %s", strerror(errno));
        return;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    cell_t *cell = &job->cell;
    if (job->isolate && cell_open(job, cell, res->cell_error, sizeof res->cell_error) < 0) {
        snprintf(res->exec_error, sizeof res->exec_error, "isolation: %.140s", res->cell_error);
        close(outp[0]); close(outp[1]); close(errp[0]); close(errp[1]);
        close(errpipe[0]); close(errpipe[1]); close(sfd);
        return;
    }
    memcg_t base;
    int have_memcg = memcg_read(&base) == 0;
    res->shmem_base_kb = have_memcg ? base.shmem_kb : -1;
    int64_t start = now_us();
    int fd0 = job->stdin_fd >= 0 ? job->stdin_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int job_fds[4] = {fd0, outp[1], errp[1], errpipe[1]};
    res->via = "server";
    main_pid = server_spawn(job, job_fds, cell->pidfd, res);
    if (main_pid == 0) {
        res->via = "exec";
        main_pid = spawn_exec(job, job_fds, cell);
    }
    if (fd0 != job->stdin_fd) close(fd0);
    close(outp[1]);
    close(errp[1]);
    close(errpipe[1]);
    if (main_pid < 0) {
        cell_discard(cell);
        if (!res->exec_error[0]) { /* why the job did not start */
            ssize_t n = read(errpipe[0], res->exec_error, sizeof res->exec_error - 1);
            res->exec_error[n > 0 ? n : 0] = 0;
            if (n <= 0) snprintf(res->exec_error, sizeof res->exec_error, "the job did not start");
        }
        close(outp[0]); close(errp[0]); close(errpipe[0]); close(sfd);
        return;
    }
    fcntl(outp[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);

    long peak_kb = 0;
    struct pollfd fds[3] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}, {sfd, POLLIN, 0}};
    long hz = sysconf(_SC_CLK_TCK);
    int64_t next_scan = start + TICK_MS * 1000;
    while (main_status < 0) {
        int64_t t = now_us();
        int64_t wait_ms = (next_scan - t) / 1000 + 1;
        if (job->wall_ms) {
            int64_t left = (start + job->wall_ms * 1000 - t) / 1000 + 1;
            if (left < wait_ms) wait_ms = left;
        }
        if (wait_ms < 0) wait_ms = 0;
        int n = poll(fds, 3, (int)wait_ms);
        if (n < 0 && errno != EINTR) break;
        if (fds[0].revents & (POLLIN | POLLHUP)) drain(outp[0], &res->stdout_buf);
        if (fds[1].revents & (POLLIN | POLLHUP)) drain(errp[0], &res->stderr_buf);
        if (fds[0].revents & POLLHUP) fds[0].fd = -1;
        if (fds[1].revents & POLLHUP) fds[1].fd = -1;
        if (fds[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            reap(0);
        }
        if (main_status >= 0) break;
        t = now_us();
        if (res->stdout_buf.total > job->out_bytes) { res->killed = "output"; break; }
        if (job->wall_ms && t - start >= job->wall_ms * 1000) { res->killed = "wall"; break; }
        if (t >= next_scan) {
            next_scan = t + TICK_MS * 1000;
            scan_t scan = {0, 0, 0};
            scan_uid(job->uid, 0, &scan);
            /* orphans are reaped by the cell's init, which keeps their CPU time for us */
            long long ticks = scan.ticks + cell_reaped_ticks(cell);
            if (job->cpu_ms && reaped_cpu_us + ticks * 1000000 / hz > job->cpu_ms * 1000) {
                res->killed = "cpu";
                break;
            }
            long kb = memory_now(&scan, have_memcg ? &base : NULL, res);
            if (kb > peak_kb) peak_kb = kb;
            if (job->mem_kb && kb > job->mem_kb) {
                res->killed = "memory";
                break;
            }
        }
    }
    int64_t end = now_us();
    /* one more look before anything is killed: what the job holds in files and shared memory
     * at its end is still there (a full /tmp ends a program before the next tick would) */
    scan_t last = {0, 0, 0};
    scan_uid(job->uid, 0, &last);
    long last_kb = memory_now(&last, have_memcg ? &base : NULL, res);
    if (last_kb > peak_kb) peak_kb = last_kb;
    /* the main process may not have switched uid yet, so it and its group are killed by pid */
    if (main_status < 0) {
        kill(-main_pid, SIGKILL);
        kill(main_pid, SIGKILL);
    }
    /* the main process first: it is ours, not the cell init's, and a dying init waits until
     * every process of its namespace is reaped */
    reap(1);
    struct rusage orphans;
    cell_stop(cell, &orphans); /* everything still in the cell dies */
    account(&orphans);
    if (!job->isolate && geteuid() == 0) kill_uid(job->uid); /* a cell's died with it */
    /* all writers are dead now: read what is left in the pipes */
    drain(outp[0], &res->stdout_buf);
    drain(errp[0], &res->stderr_buf);
    char msg[128];
    ssize_t n = read(errpipe[0], msg, sizeof msg - 1);
    if (n > 0) {
        msg[n] = 0;
        snprintf(res->exec_error, sizeof res->exec_error, "%s", msg);
    }
    close(outp[0]); close(errp[0]); close(errpipe[0]); close(sfd);

    if (strcmp(res->killed, "none") == 0 && res->stdout_buf.total > job->out_bytes)
        res->killed = "output";
    res->wall_us = end - start;
    res->cpu_us = reaped_cpu_us;
    /* one process's peak never exceeds the job's: a floor under what the ticks saw */
    res->maxrss_kb = reaped_maxrss > peak_kb ? reaped_maxrss : peak_kb;
    res->oom_kills = oom_kills() - oom_before;
    if (main_status >= 0 && WIFEXITED(main_status)) {
        res->exit_code = WEXITSTATUS(main_status);
    } else if (main_status >= 0 && WIFSIGNALED(main_status)) {
        res->exit_code = -1;
        res->signal = WTERMSIG(main_status);
    } else {
        res->exit_code = -1;
        res->signal = SIGKILL;
    }
}
