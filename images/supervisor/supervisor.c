/*
 * In-container supervisor: runs one job at a time (or one pair: a job and its partner, for
 * interactive problems) for the worker, over the container's attached stdin/stdout (never
 * `docker exec`), and reports exit status, CPU time, wall time, peak memory and capped output.
 *
 * Why C and static: every sandbox image carries it, including the native run image that has
 * no language runtime, and it must add next to nothing to a job's latency (fork+exec, no
 * interpreter start).
 *
 * Trust model: the supervisor starts as the container's root with only SETUID, SETGID, KILL
 * and CHOWN and, given `--uid UID` (the worker always gives one, unique to the sandbox),
 * drops root at once: it runs as UID with those four capabilities, so no process in the
 * sandbox but Docker's init is root (its /proc is not masked: cell.c), and the namespaces of
 * the cells it makes are that uid's, whose per-user budgets on the host are the sandbox's
 * own. Each job runs under its own fresh unprivileged uid (chosen by the worker), in its own
 * work dir and, unless the worker asks otherwise, in a cell of its own (fresh user, IPC,
 * mount, PID and network namespaces, cell.c), with no capability, a seccomp filter of its own
 * and no-new-privileges. A job's CPU time and memory are what the kernel charged the
 * sandbox's cgroup while it ran (ledger.c, memory.c). A job cannot signal or ptrace the supervisor or its partner
 * (different uids), cannot reach the supervisor's stdout (all other descriptors are closed
 * before exec); what it made dies with its cell, and what it owns outside is killed and wiped
 * before the next job.
 *
 * Wire format, both directions: records `NAME SP LEN LF` followed by LEN raw bytes; a message
 * ends with the record `end 0`. Requests start with `op` = `ping` or `run`; see the worker's
 * sandbox/protocol.py for the field list, kept in step with this file.
 *
 * A file's name (`file`, `collect`) is a relative path of safe parts (`pkg/mod.py`): the
 * directories it needs are made in the job's work dir, as the job, and nothing on the way is
 * ever followed as a symlink (wire.c, open_beneath).
 *
 * A `run` may be a pair (run.c, pair.c): after the job's fields, an empty `partner` record
 * opens its partner's section (the same field names, its own `uid` first; no `stdin` in
 * either, no `server` for the partner). The two run at once, each in a cell of its own under
 * its own uid, the job's stdout the partner's stdin and the partner's stdout the job's stdin.
 * The answer is the job's fields, an empty `partner` record and the partner's fields, then the
 * run's `cleanup`. The partner's work dir is the partner's alone (0700): it holds the test's
 * input and answer, which the job must not read.
 *
 * A job may name a fork server (`server` records, e.g. Python's images/python/forkserver.py):
 * the supervisor then starts that server once and has it fork the job instead of exec'ing a
 * new interpreter, which removes the interpreter's start from every test (see server.c).
 *
 * A job may instead be handed to a runtime parked for it (`park` records: the launcher's
 * options; `park_uid`: the next job's uid, for which one is parked once this run is answered):
 * for a runtime that cannot fork once started, one started ahead per job, in the job's cell as
 * its uid, and used for that job alone (see park.c).
 *
 * Files: supervisor.c (requests, main), run.c (running a job, or a pair), park.c (parked
 * runtimes), process.c (a job's processes and the cleanup after it), server.c (fork servers),
 * spawn.c (starting a job's process), cell.c (a job's namespaces and seccomp filter),
 * memory.c (a job's memory), ledger.c (the sandbox's cgroup), files.c (a job's files),
 * pair.c (what only a pair needs), wire.c (utilities, wire format); in that order they stand
 * in layers, each calling only those below it (supervisor.h).
 */
#include "supervisor.h"

/* ------------------------------------------------------------------ job description */

static long num(const char *name, const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < 0) die("bad number for %s: '%s'", name, s);
    return v;
}

/* One part of a file's name: what a flat name may be. */
static int safe_part(const char *s, size_t n) {
    if (n == 0 || n > MAX_PART || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '.' || s[i] == '_' || s[i] == '-' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

/* A file's name: a relative path of safe parts (`pkg/mod.py`), never absolute, never up,
 * no empty part. */
static int safe_name(const char *s) {
    size_t len = strlen(s);
    if (len == 0 || len > MAX_NAME) return 0;
    for (int parts = 1;; parts++) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (parts > MAX_PARTS || !safe_part(s, n)) return 0;
        if (!slash) return 1;
        s = slash + 1;
    }
}

static void given_hold(job_t *job, int fd);

/* `file` body: "MODE NAME\n" then the content, streamed to disk. The file and the directories
 * its name needs are made as the job (its fsuid and fsgid): they are its own from the start.
 * The supervisor holds each file (given_hold) until the job has ended. */
static void read_file_record(job_t *job, size_t len) {
    char head[MAX_NAME + 16];
    size_t i = 0;
    for (;;) {
        if (len == 0) die("file record without header line");
        int c = in_byte();
        if (c < 0) die("eof inside a record");
        len--;
        if (c == '\n') break;
        if (i == sizeof head - 1) die("file header too long");
        head[i++] = (char)c;
    }
    head[i] = 0;
    char *sp = strchr(head, ' ');
    if (!sp) die("bad file header '%s'", head);
    *sp = 0;
    mode_t mode = (mode_t)strtol(head, NULL, 8) & 0755;
    const char *name = sp + 1;
    if (!safe_name(name)) die("unsafe file name '%s'", name);
    setfsgid(job->uid);
    setfsuid(job->uid);
    int fd = open_beneath(job->workdir, name, O_WRONLY | O_CREAT | O_EXCL, 0600, 1);
    if (fd < 0 && errno == EEXIST && park_replace(job->uid, name)) /* the parked runtime's */
        fd = open_beneath(job->workdir, name, O_WRONLY | O_CREAT | O_EXCL, 0600, 1);
    if (fd < 0 && !job->error[0])
        snprintf(job->error, sizeof job->error, "create %s: %s", name, strerror(errno));
    int err = body_to_fd(len, fd);
    if (fd >= 0) {
        if (err && !job->error[0])
            snprintf(job->error, sizeof job->error, "write %s: %s", name, strerror(err));
        if (fchmod(fd, mode) < 0 && !job->error[0])
            snprintf(job->error, sizeof job->error, "chmod %s: %s", name, strerror(errno));
        given_hold(job, fd);
        close(fd);
    }
    setfsuid(geteuid());
    setfsgid(getegid());
}

/* The job's input: a file of the supervisor's, readable by all (mode 0444: the job may
 * reopen /dev/stdin) and handed to the job read-only, so it can neither write nor truncate it
 * (which would lower the sandbox's memory below what it held as the job started). A runtime
 * parked for the job holds that file as its stdin already (park.c): it is written there. */
static void read_stdin_record(job_t *job, size_t len) {
    int ro = -1;
    int fd = park_stdin(job->uid);
    if (fd < 0) fd = stdin_file(job->uid, &ro);
    else ro = stdin_reopen(fd);
    if ((fd < 0 || ro < 0) && !job->error[0])
        snprintf(job->error, sizeof job->error, "stdin file: %s", strerror(errno));
    int err = body_to_fd(len, fd);
    if (fd >= 0) {
        if (err && !job->error[0])
            snprintf(job->error, sizeof job->error, "stdin write: %s", strerror(err));
        close(fd);
    }
    if (job->stdin_fd >= 0) close(job->stdin_fd);
    job->stdin_fd = ro;
}

/* Hold a file the job was given (fd: open on it), and note its size: what the job frees of it
 * by truncating it is counted as the job's memory (memory.c); one it unlinks stays held. */
static void given_hold(job_t *job, int fd) {
    char self[64];
    struct stat st;
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    int held = open(self, O_PATH | O_CLOEXEC); /* O_PATH: never a writer, exec stays possible */
    if (held < 0 || fstat(held, &st) < 0) {
        if (held >= 0) close(held);
        return;
    }
    int *given = realloc(job->given, (size_t)(job->ngiven + 1) * sizeof *given);
    if (given) job->given = given;
    long *blocks = realloc(job->given_blocks, (size_t)(job->ngiven + 1) * sizeof *blocks);
    if (blocks) job->given_blocks = blocks;
    if (!given || !blocks) die("out of memory");
    job->given[job->ngiven] = held;
    job->given_blocks[job->ngiven++] = (long)st.st_blocks;
}

/* The job has ended: its files go with its work dir. */
static void given_release(job_t *job) {
    for (int i = 0; i < job->ngiven; i++) close(job->given[i]);
    free(job->given);
    free(job->given_blocks);
    job->given = NULL;
    job->given_blocks = NULL;
    job->ngiven = 0;
}

/* ------------------------------------------------------------------ requests */

static uid_t last_uids[PAIR] = {(uid_t)-1, (uid_t)-1}; /* the last run's jobs' */

static void init_job(job_t *job, int partner) {
    memset(job, 0, sizeof *job);
    job->stdin_fd = -1;
    job->cell = (cell_t){0, -1, -1};
    job->ctl_fd = -1;
    job->out_bytes = 64 * 1024;
    job->err_bytes = 64 * 1024;
    job->collect_max = 64 * 1024 * 1024;
    job->partner = partner;
}

/* A job's input and given files let go: they are the supervisor's until the job has ended. */
static void job_release(job_t *job) {
    given_release(job);
    if (job->stdin_fd >= 0) close(job->stdin_fd);
    job->stdin_fd = -1;
}

static void free_job(job_t *job) {
    job_release(job);
    for (int i = 0; i < job->nargs; i++) free(job->argv[i]);
    for (int i = 0; i < job->nenv; i++) free(job->envp[i]);
    for (int i = 0; i < job->ncollect; i++) free(job->collect[i]);
    for (int i = 0; i < job->nserver; i++) free(job->server[i]);
    for (int i = 0; i < job->npark; i++) free(job->park[i]);
    for (int i = 0; i < job->npark_file; i++) free(job->park_file[i]);
}

/* The job's uid, fresh: unprivileged, neither of the last run's jobs' nor the other job's of
 * this run. Its work dir is its own at once (its files are made as it): 0711 lets the
 * supervisor and a fork server through before a job's uid switch; a partner's is 0700, for no
 * other uid to enter (the job it is paired with, above all: the partner's files are the
 * test's input and answer). */
static void read_uid(job_t *job, const job_t *other, const char *v) {
    job->uid = (uid_t)num("uid", v);
    if (job->uid < 1000 || job->uid == last_uids[0] || job->uid == last_uids[1] ||
        job->uid == supervisor_uid || (other && job->uid == other->uid))
        die("uid %u not fresh", (unsigned)job->uid);
    snprintf(job->workdir, sizeof job->workdir, "%s/%u", BOX_ROOT, (unsigned)job->uid);
    if (park_holds(job->uid)) return; /* made for the runtime parked for this job */
    const char *why = workdir_make(job);
    if (why) snprintf(job->error, sizeof job->error, "work dir %s: %s", job->workdir, why);
}

/* One record of a job's section of a `run` request; `other`: the job it is paired with. */
static void read_field(job_t *job, const job_t *other, const char *name, size_t len) {
    if (strcmp(name, "file") == 0 || strcmp(name, "stdin") == 0) {
        if (!job->uid) die("%s before uid", name);
        if (name[0] == 'f') read_file_record(job, len);
        else read_stdin_record(job, len);
        return;
    }
    char *v = body_to_str(len);
    int keep = 0;
    if (strcmp(name, "uid") == 0 && !job->uid) {
        read_uid(job, other, v);
    } else if (strcmp(name, "arg") == 0 && job->nargs < MAX_ARGS) {
        job->argv[job->nargs++] = v, keep = 1;
    } else if (strcmp(name, "env") == 0 && job->nenv < MAX_ENV) {
        job->envp[job->nenv++] = v, keep = 1;
    } else if (strcmp(name, "server") == 0 && job->nserver < MAX_SERVER_ARGS) {
        if (job->partner) die("a partner is exec'ed, never handed to a fork server");
        job->server[job->nserver++] = v, keep = 1;
    } else if (strcmp(name, "park") == 0 && job->npark < MAX_SERVER_ARGS) {
        if (job->partner) die("a partner is exec'ed, never parked");
        job->park[job->npark++] = v, keep = 1;
    } else if (strcmp(name, "park_file") == 0 && job->npark_file < MAX_PARK_FILES) {
        if (job->partner) die("a partner is exec'ed, never parked");
        const char *eq = strchr(v, '=');
        if (!eq || !safe_part(v, (size_t)(eq - v)) || eq[1] != '/')
            die("park_file is NAME=PATH: a flat name, an absolute path");
        job->park_file[job->npark_file++] = v, keep = 1;
    } else if (strcmp(name, "park_uid") == 0 && !job->park_uid) {
        job->park_uid = (uid_t)num(name, v);
        if (job->park_uid < 1000 || job->park_uid == supervisor_uid) die("park_uid not fresh");
    } else if (strcmp(name, "isolate") == 0) {
        if (strcmp(v, "namespaces") == 0) job->isolate = 1;
        else if (strcmp(v, "uid") != 0) die("unknown isolation '%s'", v);
    } else if (strcmp(name, "collect") == 0 && job->ncollect < MAX_COLLECT) {
        if (!safe_name(v)) die("unsafe collect name");
        job->collect[job->ncollect++] = v, keep = 1;
    } else if (strcmp(name, "cpu_ms") == 0) job->cpu_ms = num(name, v);
    else if (strcmp(name, "wall_ms") == 0) job->wall_ms = num(name, v);
    else if (strcmp(name, "mem_kb") == 0) job->mem_kb = num(name, v);
    else if (strcmp(name, "procs") == 0) job->procs = num(name, v);
    else if (strcmp(name, "fsize_kb") == 0) job->fsize_kb = num(name, v);
    else if (strcmp(name, "nofile") == 0) job->nofile = num(name, v);
    else if (strcmp(name, "stack_kb") == 0) job->stack_kb = num(name, v);
    else if (strcmp(name, "out_bytes") == 0) job->out_bytes = (size_t)num(name, v);
    else if (strcmp(name, "err_bytes") == 0) job->err_bytes = (size_t)num(name, v);
    else if (strcmp(name, "collect_max") == 0) job->collect_max = (size_t)num(name, v);
    else die("unknown or repeated-past-limit field '%s'", name);
    if (!keep) free(v);
}

/* A `run` request up to its `end`: the job's section, then, after a `partner` record, its
 * partner's, each starting with its uid. How many jobs it has. */
static int read_request(job_t *job, job_t *partner) {
    job_t *cur = job;
    char name[32];
    size_t len;
    for (;;) {
        if (read_header(name, sizeof name, &len) < 0) exit(0);
        if (strcmp(name, "end") == 0) break;
        if (strcmp(name, "partner") == 0) {
            if (cur == partner || len != 0) die("one empty partner record, after the job's fields");
            cur = partner;
            continue;
        }
        read_field(cur, cur == partner ? job : NULL, name, len);
    }
    int n = cur == partner ? PAIR : 1;
    if (job->park_uid && (job->park_uid == job->uid || (n == PAIR && job->park_uid == partner->uid)))
        die("park_uid is the next job's: not one of this run's");
    for (int i = 0; i < n; i++) {
        job_t *one = i ? partner : job;
        if (!one->uid || one->nargs == 0) die("run needs uid and at least one arg for each job");
        if (n == PAIR && one->stdin_fd >= 0) die("a pair's jobs read each other: no stdin record");
        /* the job's home and temp dir are its work dir: the only place it may write */
        char home[96], tmpdir[96];
        snprintf(home, sizeof home, "HOME=%s", one->workdir);
        snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", one->workdir);
        if (one->nenv + 2 > MAX_ENV) die("too many env entries");
        one->envp[one->nenv++] = strdup(home);
        one->envp[one->nenv++] = strdup(tmpdir);
    }
    return n;
}

/* The files the job is to hand back, read as it: its work dir may let no other uid in. */
static void put_collected(job_t *job) {
    setfsuid(job->uid);
    for (int i = 0; i < job->ncollect; i++) {
        /* O_NONBLOCK: a FIFO left under that name must not hold the answer up */
        int fd = open_beneath(job->workdir, job->collect[i], O_RDONLY | O_NONBLOCK, 0, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (size_t)st.st_size > job->collect_max) {
            if (fd >= 0) close(fd);
            continue; /* absent, odd or too big: the worker sees it missing */
        }
        buf_t b = {0};
        b.limit = job->collect_max;
        char head[MAX_NAME + 16];
        int n = snprintf(head, sizeof head, "%o %s\n", (unsigned)(st.st_mode & 0755), job->collect[i]);
        buf_add(&b, head, (size_t)n);
        drain(fd, &b);
        close(fd);
        put("file", b.data, b.len);
        buf_free(&b);
    }
    setfsuid(geteuid());
}

/* One job's section of the answer. */
static void put_result(job_t *job, result_t *res) {
    put_str("status", res->exec_error[0] ? "error" : "ok");
    if (res->exec_error[0]) put_str("error", res->exec_error);
    put_str("via", res->via);
    if (res->server_error[0]) put_str("server_error", res->server_error);
    if (res->park_error[0]) put_str("park_error", res->park_error);
    put_num("exit_code", res->exit_code);
    put_num("signal", res->signal);
    put_num("cpu_us", res->cpu_us);
    put_num("wall_us", res->wall_us);
    put_num("maxrss_kb", res->maxrss_kb);
    put_str("killed", res->killed);
    put_num("oom_kills", res->oom_kills);
    size_t shown = res->stdout_buf.len > job->out_bytes ? job->out_bytes : res->stdout_buf.len;
    put("stdout", res->stdout_buf.data ? res->stdout_buf.data : "", shown);
    put_num("stdout_total", (long long)res->stdout_buf.total);
    put("stderr", res->stderr_buf.data ? res->stderr_buf.data : "", res->stderr_buf.len);
    put_num("stderr_total", (long long)res->stderr_buf.total);
    static char tail[ERR_TAIL_BYTES];
    size_t tail_len = buf_tail(&res->stderr_buf, tail);
    if (tail_len) put("stderr_tail", tail, tail_len);
    put_collected(job);
    buf_free(&res->stdout_buf);
    buf_free(&res->stderr_buf);
}

/* After a run: the sandbox back to what it held before it (held_by_jobs_kb: its jobs' files,
 * input, cells and whatever the kernel kept for them all gone), within RESIDUE_KB (the
 * kernel's per-CPU batches of charges), and never more than SETTLED_KB above the least it held
 * before any run (what runs leave, below RESIDUE_KB each, must not pile up). The kernel frees a
 * cell's namespaces, and what they held, a little after its init is reaped, so this waits a
 * little. Memory a run leaves would be freed while the next job runs, hiding as much of that
 * job's, or crowd it out (negative dentries the job made, say, that the next one's
 * allocations would have to reclaim). */
#define RESIDUE_KB 2048
#define SETTLED_KB (16 * 1024)
static const char *memory_back(long before_kb) {
    static long least_kb = LONG_MAX;
    if (before_kb >= 0 && before_kb < least_kb) least_kb = before_kb;
    cell_reap_retired();
    for (int i = 0; before_kb >= 0 && i < 500; i++) {
        long now = held_by_jobs_kb(server_process());
        if (now < 0 || (now <= before_kb + RESIDUE_KB && now <= least_kb + SETTLED_KB)) return NULL;
        usleep(1000);
    }
    return before_kb >= 0 ? "memory still held after the job" : NULL;
}

static void handle_run(void) {
    job_t job, partner;
    init_job(&job, 0);
    init_job(&partner, 1);
    /* a runtime parked since then is not the jobs': what was held before it was started */
    long before_kb = park_before_kb(held_by_jobs_kb(server_process()));
    int n = read_request(&job, &partner);
    job_t *jobs[PAIR] = {&job, &partner};
    last_uids[0] = job.uid;
    last_uids[1] = n == PAIR ? partner.uid : (uid_t)-1;

    put_str("op", "result");
    int cell_failed = 0, ran = 0;
    if (job.error[0] || (n == PAIR && partner.error[0])) { /* neither runs */
        for (int i = 0; i < n; i++) {
            if (i) put("partner", "", 0);
            put_str("status", "error");
            put_str("error", jobs[i]->error[0] ? jobs[i]->error
                                               : "not run: the other job of the pair was not set up");
        }
    } else {
        result_t res[PAIR];
        run_jobs(jobs, res, n);
        ran = 1;
        for (int i = 0; i < n; i++) {
            if (i) put("partner", "", 0);
            put_result(jobs[i], &res[i]);
            cell_failed |= res[i].cell_error[0] != 0;
        }
    }
    /* one the run did not take (its work dir may be the job's), or one it threw away */
    const char *bad = park_drop(job.uid);
    for (int i = 0; i < n; i++) job_release(jobs[i]); /* before the wipe: gone with it */
    for (int i = 0; i < n; i++) {
        const char *left = wipe(jobs[i]);
        if (!bad) bad = left;
    }
    if (!bad && server_lost_job) bad = "the fork server failed during a job";
    if (!bad && cell_failed) bad = "the job's cell could not be made";
    if (!bad && ran) bad = memory_back(before_kb);
    server_lost_job = 0;
    put_str("cleanup", bad ? bad : "ok");
    flush_message();
    /* the next run's cells, and its runtime, while the worker reads this answer and sends
     * that run */
    if (job.isolate && !bad) cell_prepare(n);
    if (!bad && n == 1 && job.npark && job.park_uid) park_next(&job);
    free_job(&job);
    free_job(&partner);
}

static int selftest(int argc, char **argv) {
    /* supervisor --selftest EXPECTED -- ARGV...: the image's HEALTHCHECK; proves a program runs */
    if (argc < 5 || strcmp(argv[3], "--") != 0) die("usage: --selftest EXPECTED -- ARGV...");
    job_t job;
    init_job(&job, 0);
    job.uid = geteuid() == 0 ? 65534 : geteuid();
    job.wall_ms = 5000;
    job.isolate = cell_probe() == NULL;
    job.out_bytes = 4096;
    job.err_bytes = 4096;
    for (int i = 4; i < argc && job.nargs < MAX_ARGS; i++) job.argv[job.nargs++] = argv[i];
    static char path_env[] = "PATH=/usr/local/bin:/usr/bin:/bin";
    job.envp[0] = path_env;
    job_t *jobs[PAIR] = {&job, NULL};
    result_t results[PAIR], *res = &results[0];
    run_jobs(jobs, results, 1);
    cell_discard(&job.cell);
    const char *want = argv[2];
    size_t wl = strlen(want);
    int ok = !res->exec_error[0] && res->exit_code == 0 && strcmp(res->killed, "none") == 0 &&
             (wl == 0 || (res->stdout_buf.len == wl + 1 && memcmp(res->stdout_buf.data, want, wl) == 0 &&
                          res->stdout_buf.data[wl] == '\n'));
    if (!ok) fprintf(stderr, "selftest failed: exit %d signal %d %s\n", res->exit_code, res->signal, res->exec_error);
    return ok ? 0 : 1;
}

uid_t supervisor_uid;

/* From now on run as uid (and gid) `uid`, not root, with the capabilities the container
 * granted (its bounding set: SETUID, SETGID, KILL, CHOWN) kept in effect and as ambient ones,
 * so that a fork server it execs has them too (to switch a job without a cell to its uid).
 * /box becomes the uid's: work dirs are made there. */
static void drop_root(uid_t uid) {
    if (uid < 1000) die("--uid %u: an unprivileged uid, 1000 or more", (unsigned)uid);
    if (chown(BOX_ROOT, uid, uid) < 0) die("chown %s: %s", BOX_ROOT, strerror(errno));
    if (prctl(PR_SET_KEEPCAPS, 1) < 0 || setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
        setresuid(uid, uid, uid) < 0)
        die("switch to uid %u: %s", (unsigned)uid, strerror(errno));
    capsets_t caps[2];
    if (capabilities(caps, 0) < 0) die("capget: %s", strerror(errno));
    for (int i = 0; i < 2; i++) caps[i].effective = caps[i].inheritable = caps[i].permitted;
    if (capabilities(caps, 1) < 0) die("capset: %s", strerror(errno));
    for (int cap = 0; cap < 64; cap++)
        if (caps[cap / 32].permitted & (1u << (cap % 32)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            die("ambient capability %d: %s", cap, strerror(errno));
    prctl(PR_SET_KEEPCAPS, 0);
    supervisor_uid = uid;
}

int main(int argc, char **argv) {
    /* a fixed threshold (glibc raises it as big blocks are freed): every buffer from 128 KiB
     * on is a mapping of its own, returned to the kernel when freed, so that what one job's
     * answer took is not resident in the next job (memory.c counts a job's peak) */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    /* orphans of a job (double forks) come to us, so they are reaped and their CPU counted */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts(VERSION);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--selftest") == 0) return selftest(argc, argv);
    if (argc == 3 && strcmp(argv[1], "--uid") == 0) {
        peak_open(); /* files only root may write: opened before root is dropped */
        drop_root((uid_t)num("--uid", argv[2]));
    }
    else if (argc > 1) die("usage: supervisor [--uid UID | --version | --selftest EXPECTED -- ARGV...]");
    prctl(PR_SET_DUMPABLE, 0); /* no job can ptrace or read us even if uids ever matched */
    for (;;) {
        char name[32];
        size_t len;
        if (read_header(name, sizeof name, &len) < 0) return 0;
        if (strcmp(name, "op") != 0) die("message must start with op");
        char *op = body_to_str(len);
        if (strcmp(op, "ping") == 0) {
            if (read_header(name, sizeof name, &len) < 0) return 0;
            if (strcmp(name, "end") != 0) die("ping takes no fields");
            put_str("op", "pong");
            put_str("version", VERSION);
            /* whether this kernel and this container's profile let us make cells */
            const char *why = cell_probe();
            put_str("isolation", why ? "uid" : "namespaces");
            if (why) put_str("isolation_error", why);
            /* whether a job's CPU time and memory can be read off the sandbox's cgroup */
            const char *ledger = ledger_open();
            put_str("accounting", ledger ? ledger : "cgroup");
            put_str("peak", peak_kind());
            flush_message();
        } else if (strcmp(op, "run") == 0) {
            handle_run();
        } else {
            die("unknown op '%s'", op);
        }
        free(op);
    }
}
