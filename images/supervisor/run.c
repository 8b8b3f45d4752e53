/* Running jobs: starting each (spawn.c, server.c, park.c), watching it until it ends.
 *
 * A run is one job, or a pair: a job and its partner (the problem's own program, such as an
 * interactor) at once in the same sandbox, each in a cell of its own under its own uid, wired
 * by two pipes (pair.c): the job's stdout is the partner's stdin, the partner's stdout the
 * job's stdin. One loop watches both, and each is limited, measured and ended on its own: a
 * job's CPU time is what the sandbox's cgroup was charged while it ran (ledger.c), less the
 * supervisor's own and, in a pair, the partner's, which is measured by its processes (by pid,
 * uid and cell: the partner is the problem's own program, which hides nothing); memory as
 * memory.c says; wall time from its own start (waiting for the other counts). A job ends when its main
 * process exits or when it is killed for its CPU, wall, memory or output limit; everything else
 * in its cell dies with it, which closes its ends of the pipes: the other reads EOF (or gets
 * SIGPIPE writing) and goes on until it ends too. The supervisor is on neither pipe (nothing
 * relays or counts those bytes); it reads each job's stderr, and a single job's stdout. The
 * answer goes out once every job of the run has ended. */
#include "supervisor.h"

/* The run under way: its jobs; the sandbox's memory, its cgroup's CPU time and the
 * supervisor's own as the run's window opened. */
static run_t runs[PAIR];
static int nruns;
static memcg_t base;
static int have_memcg;
static int64_t base_cgroup_ns, base_self_ns;
static long hz;

/* ------------------------------------------------------------------ starting a job (spawn.c) */

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Each job's stderr and exec-error pipe, and a single job's stdin and stdout; a pair's
 * stdin and stdout are each other's (pair.c). Ours go into runs[i], the job's own into
 * ends[i]: stdin, stdout, stderr, exec-error pipe. Output pipes are the job's own, as a
 * program's are (/dev/stdout can be reopened). NULL, or why not. */
static const char *open_pipes(int ends[PAIR][4]) {
    static char why[80];
    int failed = nruns == PAIR && pair_pipes(runs, ends) < 0;
    for (int i = 0; !failed && i < nruns; i++) {
        run_t *r = &runs[i];
        if (r->parked) continue; /* its runtime holds its pipes already (park.c) */
        int out[2] = {-1, -1}, err[2] = {-1, -1}, errpipe[2] = {-1, -1};
        setfsuid(r->job->uid);
        failed = pipe2(err, O_CLOEXEC) < 0 || (nruns == 1 && pipe2(out, O_CLOEXEC) < 0);
        setfsuid(geteuid());
        failed = failed || pipe2(errpipe, O_CLOEXEC) < 0;
        r->out = out[0], r->err = err[0], r->errpipe = errpipe[0];
        ends[i][2] = err[1], ends[i][3] = errpipe[1];
        if (nruns == 1) {
            int fd0 = r->job->stdin_fd;
            ends[i][0] = fd0 >= 0 ? fd0 : open("/dev/null", O_RDONLY | O_CLOEXEC);
            ends[i][1] = out[1];
        }
    }
    if (!failed) return NULL;
    snprintf(why, sizeof why, "pipe: %s", strerror(errno));
    return why;
}

/* Start a job with its ends of the pipes (closed here then): by its fork server when it is up
 * and takes the job, else exec'ed. A job that did not start has ended already. */
static void run_start(run_t *r, int ends[4]) {
    job_t *job = r->job;
    r->start = now_us();
    if (r->parked) {
        r->res->via = "parked";
        r->pid = park_go(r);
        if (r->pid < 0) {
            cell_discard(&job->cell);
            r->end = r->start;
            return;
        }
        fcntl(r->out, F_SETFL, O_NONBLOCK);
        fcntl(r->err, F_SETFL, O_NONBLOCK);
        return;
    }
    r->res->via = "server";
    r->pid = r->by_server ? server_spawn(job, ends, job->cell.pidfd, r->res, &r->starter_ns) : 0;
    if (r->pid == 0) {
        r->res->via = "exec";
        r->pid = spawn_exec(job, ends, &job->cell, &r->starter_ns);
    }
    for (int k = 0; k < 4; k++)
        if (ends[k] != job->stdin_fd) close_fd(&ends[k]);
    if (r->pid < 0) {
        cell_discard(&job->cell);
        r->end = r->start;
        return;
    }
    if (r->out >= 0) fcntl(r->out, F_SETFL, O_NONBLOCK);
    fcntl(r->err, F_SETFL, O_NONBLOCK);
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

/* ------------------------------------------------------------------ watching it */

/* What a buffer of ours holds in memory: the pages its bytes take, not its capacity (what is
 * not written is not resident). */
static long held_kb(const buf_t *b) {
    return (long)((b->len + 4095) / 4096 * 4 + (b->ring ? b->ring_size / 1024 : 0));
}

/* The CPU time (µs) the sandbox's cgroup was charged since the run's window opened, less the
 * supervisor's own and what started the jobs: every job's of the run (ledger.c). */
static int64_t charged_us(void) {
    int64_t ns = (ledger_cpu_ns() - base_cgroup_ns) - (self_cpu_ns() - base_self_ns);
    for (int i = 0; i < nruns; i++) ns -= runs[i].starter_ns;
    return ns > 0 ? ns / 1000 : 0;
}

/* A pair's job's CPU time: the run's, less its partner's (never below nothing: the partner's
 * is counted by ticks while it runs). */
static int64_t pair_job_us(int64_t partner_us) {
    int64_t us = charged_us() - partner_us;
    return us > 0 ? us : 0;
}

/* A job's CPU time (µs) and memory now; its peak goes up to what this look saw. A pair's
 * partner is looked at first: the job's figures are the cgroup's less the partner's. */
static long look(run_t *r, int64_t *cpu_us) {
    scan_t scan = {0, 0, 0, 0};
    scan_uid(r->job->uid, 0, &scan, r->job->partner);
    const memcg_t *from = have_memcg ? &base : NULL;
    long given = given_removed_kb(r->job), own_kb = 0; /* what we hold of output is ours */
    for (int i = 0; i < nruns; i++)
        own_kb += held_kb(&runs[i].res->stdout_buf) + held_kb(&runs[i].res->stderr_buf);
    long kb = scan.resident_kb;
    if (r->job->partner) {
        /* its processes' CPU; orphans are reaped by its cell's init, which keeps theirs */
        long long ticks = scan.ticks + cell_reaped_ticks(&r->job->cell);
        r->used_us = r->res->cpu_us + ticks * 1000000 / hz;
        r->share = (pair_share_t){partner_shmem_kb(r->job), scan.anon_kb};
        kb = pair_memory_kb(r->job, kb, from, &r->share, NULL, own_kb, given);
    } else if (nruns == PAIR) {
        r->used_us = pair_job_us(runs[1].used_us);
        kb = pair_memory_kb(r->job, kb, from, &runs[1].share, runs[1].job, own_kb, given);
    } else {
        r->used_us = charged_us();
        if (from) kb = job_memory_kb(kb, from, own_kb, given);
    }
    if (kb > r->peak_kb) r->peak_kb = kb;
    *cpu_us = r->used_us;
    return kb;
}

/* A job's end: by itself (its main process was reaped), or killed for `killed`. One more look
 * first: what it holds in files and shared memory at its end is still there (a full /tmp ends
 * a program before the next tick would). Then all of it dies: its main process and group by
 * pid (it may not have switched uid yet), the rest with its cell (or by uid, without one). */
static void run_end(run_t *r, const char *killed) {
    r->end = now_us();
    if (killed) r->res->killed = killed;
    int64_t cpu_us;
    look(r, &cpu_us);
    if (r->status < 0) {
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
    }
    /* the main process first: it is ours, not the cell init's, and a dying init waits until
     * every process of its namespace is reaped */
    reap(r);
    struct rusage orphans;
    cell_stop(&r->job->cell, &orphans); /* everything still in the cell dies */
    account(r, &orphans);
    if (r->job->partner) r->used_us = r->res->cpu_us; /* all of it reaped by now */
    if (!r->job->isolate && geteuid() == 0) kill_uid(r->job->uid); /* a cell's died with it */
}

/* Whether a running job is over a limit it is watched for between looks (the main process
 * gone counts as its end), and ends it then. */
static void end_if_due(run_t *r, int64_t t) {
    if (r->status >= 0) run_end(r, NULL);
    else if (nruns == 1 && r->res->stdout_buf.total > r->job->out_bytes) run_end(r, "output");
    else if (r->job->wall_ms && t - r->start >= r->job->wall_ms * 1000) run_end(r, "wall");
}

/* Until every job has ended: their output read as it comes, their processes reaped as they
 * exit, their wall time checked, and every tick their CPU time and memory. */
static void watch_runs(int sfd) {
    int64_t next_scan = now_us() + TICK_MS * 1000;
    for (;;) {
        struct pollfd fds[2 * PAIR + 1];
        int *from[2 * PAIR];
        buf_t *into[2 * PAIR];
        int nfds = 0, live = 0;
        int64_t wake = next_scan;
        for (int i = 0; i < nruns; i++) {
            run_t *r = &runs[i];
            if (r->end) continue;
            live++;
            int64_t deadline = r->start + r->job->wall_ms * 1000;
            if (r->job->wall_ms && deadline < wake) wake = deadline;
            if (r->out >= 0) from[nfds] = &r->out, into[nfds++] = &r->res->stdout_buf;
            if (r->err >= 0) from[nfds] = &r->err, into[nfds++] = &r->res->stderr_buf;
        }
        if (!live) return;
        for (int i = 0; i < nfds; i++) fds[i] = (struct pollfd){*from[i], POLLIN, 0};
        fds[nfds] = (struct pollfd){sfd, POLLIN, 0};
        int64_t wait_ms = (wake - now_us()) / 1000 + 1;
        int n = poll(fds, (nfds_t)nfds + 1, wait_ms > 0 ? (int)wait_ms : 0);
        if (n < 0 && errno != EINTR) { /* cannot watch: every job ends now */
            for (int i = 0; i < nruns; i++)
                if (!runs[i].end) run_end(&runs[i], NULL);
            return;
        }
        for (int i = 0; n > 0 && i < nfds; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            drain(*from[i], into[i]);
            if (fds[i].revents & (POLLHUP | POLLERR)) close_fd(from[i]); /* no writer is left */
        }
        if (n > 0 && (fds[nfds].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            reap(NULL);
        }
        int64_t t = now_us();
        int tick = t >= next_scan;
        if (tick) next_scan = t + TICK_MS * 1000;
        for (int i = nruns - 1; i >= 0; i--) { /* a partner first: see look() */
            run_t *r = &runs[i];
            if (r->end) continue;
            end_if_due(r, t);
            if (r->end || !tick) continue;
            int64_t cpu_us;
            long kb = look(r, &cpu_us);
            if (r->job->cpu_ms && cpu_us > r->job->cpu_ms * 1000) run_end(r, "cpu");
            else if (r->job->mem_kb && kb > r->job->mem_kb) run_end(r, "memory");
        }
    }
}

/* A job's result, once every job has ended: what is left in its pipes (their writers are
 * dead), why it did not start, its times, how its main process ended. */
static void run_result(run_t *r) {
    result_t *res = r->res;
    if (r->out >= 0) drain(r->out, &res->stdout_buf);
    if (r->err >= 0) drain(r->err, &res->stderr_buf);
    char msg[128];
    ssize_t n = read(r->errpipe, msg, sizeof msg - 1);
    if (n > 0) {
        msg[n] = 0;
        snprintf(res->exec_error, sizeof res->exec_error, "%s", msg);
    }
    close_fd(&r->out);
    close_fd(&r->err);
    close_fd(&r->errpipe);
    if (r->pid < 0) {
        if (!res->exec_error[0]) snprintf(res->exec_error, sizeof res->exec_error, "the job did not start");
        return;
    }
    if (strcmp(res->killed, "none") == 0 && res->stdout_buf.total > r->job->out_bytes)
        res->killed = "output";
    res->wall_us = r->end - r->start;
    /* a job's CPU time is the cgroup's, now that every process of the run has ended */
    if (!r->job->partner) res->cpu_us = nruns == PAIR ? pair_job_us(runs[1].res->cpu_us) : charged_us();
    /* one process's peak never exceeds the job's: a floor under what the looks saw */
    if (r->peak_kb > res->maxrss_kb) res->maxrss_kb = r->peak_kb;
    if (r->status >= 0 && WIFEXITED(r->status)) {
        res->exit_code = WEXITSTATUS(r->status);
    } else if (r->status >= 0 && WIFSIGNALED(r->status)) {
        res->exit_code = -1;
        res->signal = WTERMSIG(r->status);
    } else {
        res->exit_code = -1;
        res->signal = SIGKILL;
    }
}

/* ------------------------------------------------------------------ a run */

/* Each job's cell; NULL, or why not (the failing job's cell_error says the sandbox is unfit). */
static const char *open_cells(void) {
    static char why[160];
    for (int i = 0; i < nruns; i++) {
        result_t *res = runs[i].res;
        job_t *job = runs[i].job;
        if (job->isolate && !runs[i].parked && cell_open(job, &job->cell, res->cell_error, sizeof res->cell_error) < 0) {
            snprintf(why, sizeof why, "isolation: %.140s", res->cell_error);
            return why;
        }
    }
    return NULL;
}

/* Run n jobs (one, or a job and its partner) until each has ended; res[i] is job i's. */
void run_jobs(job_t *jobs[PAIR], result_t res[PAIR], int n) {
    int ends[PAIR][4];
    nruns = n;
    hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        res[i].killed = "none";
        res[i].via = "exec";
        res[i].stdout_buf.limit = jobs[i]->out_bytes + 1; /* one past the cap tells OLE from a fit */
        res[i].stderr_buf.limit = jobs[i]->err_bytes;
        res[i].stderr_buf.ring_size = ERR_TAIL_BYTES;
        runs[i] = (run_t){.job = jobs[i], .res = &res[i], .pid = -1, .status = -1, .out = -1,
                          .err = -1, .errpipe = -1};
        for (int k = 0; k < 4; k++) ends[i][k] = -1;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    const char *why = ledger_open();
    /* the runtime parked for the job, when it was started for exactly this job (before the
     * window opens, as a fork server's start: the runtime's start is not the job's) */
    if (!why) runs[0].parked = park_claim(jobs[0], &runs[0], n);
    if (!why) why = open_pipes(ends);
    if (!why) why = open_cells();
    if (why) {
        for (int i = 0; i < n; i++) {
            snprintf(res[i].exec_error, sizeof res[i].exec_error, "%s", why);
            cell_discard(&jobs[i]->cell);
            close_fd(&runs[i].out);
            close_fd(&runs[i].err);
            close_fd(&runs[i].errpipe);
            for (int k = 0; k < 4; k++)
                if (ends[i][k] != jobs[i]->stdin_fd) close_fd(&ends[i][k]);
        }
        close(sfd);
        return;
    }
    /* a fork server that has to start does so before the window opens: its start is not the
     * job's */
    for (int i = 0; i < n; i++) runs[i].by_server = server_ready(jobs[i], &res[i]);
    peak_start();
    have_memcg = memcg_read(&base) == 0;
    base_cgroup_ns = ledger_cpu_ns();
    base_self_ns = self_cpu_ns();
    long oom_before = oom_kills();
    watch(runs, n);
    for (int i = 0; i < n; i++) {
        run_start(&runs[i], ends[i]);
    }
    watch_runs(sfd);
    close(sfd);
    long kills = oom_kills() - oom_before;
    for (int i = 0; i < n; i++) {
        run_result(&runs[i]);
        res[i].oom_kills = kills;
    }
    if (n == PAIR) pair_oom_kills(runs, kills);
    watch(NULL, 0);
}
