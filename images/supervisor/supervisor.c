/*
 * In-container supervisor: runs one job at a time for the worker, over the container's
 * attached stdin/stdout (never `docker exec`), and reports exit status, CPU time, wall time,
 * peak memory and capped output.
 *
 * Why C and static: every sandbox image carries it, including the native run image that has
 * no language runtime, and it must add next to nothing to a job's latency (fork+exec, no
 * interpreter start).
 *
 * Trust model: the supervisor runs as the container's root with only SETUID, SETGID, KILL
 * and CHOWN; each job runs under its own fresh unprivileged uid (chosen by the worker), in
 * its own work dir and, unless the worker asks otherwise, in a cell of its own (fresh user,
 * IPC, mount and PID namespaces, cell.c), with no capability, a seccomp filter of its own
 * and no-new-privileges. A job cannot signal or ptrace the supervisor (different
 * uid), cannot reach its stdout (all other descriptors are closed before exec); what it made
 * dies with its cell, and what it owns outside is killed and wiped before the next job.
 *
 * Wire format, both directions: records `NAME SP LEN LF` followed by LEN raw bytes; a message
 * ends with the record `end 0`. Requests start with `op` = `ping` or `run`; see the worker's
 * sandbox/protocol.py for the field list, kept in step with this file.
 *
 * A job may name a fork server (`server` records, e.g. Python's images/python/forkserver.py):
 * the supervisor then starts that server once and has it fork the job instead of exec'ing a
 * new interpreter, which removes the interpreter's start from every test (see server.c).
 *
 * Files: supervisor.c (requests, main), wire.c (utilities, wire format), process.c (a job's
 * processes and the cleanup after it), cell.c (a job's namespaces and seccomp filter),
 * memory.c (a job's memory), run.c (running one job), server.c (fork servers), supervisor.h.
 */
#include "supervisor.h"

/* ------------------------------------------------------------------ job description */

static long num(const char *name, const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || v < 0) die("bad number for %s: '%s'", name, s);
    return v;
}

static int safe_name(const char *s) {
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > 100) return 0;
    for (; *s; s++)
        if (!(*s == '.' || *s == '_' || *s == '-' || (*s >= '0' && *s <= '9') ||
              (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return 0;
    return 1;
}

/* `file` body: "MODE NAME\n" then the content, streamed to disk. */
static void read_file_record(job_t *job, size_t len) {
    char head[128];
    size_t i = 0;
    while (i < sizeof head - 1) {
        if (len == 0) die("file record without header line");
        int c = in_byte();
        if (c < 0) die("eof inside a record");
        len--;
        if (c == '\n') break;
        head[i++] = (char)c;
    }
    head[i] = 0;
    char *sp = strchr(head, ' ');
    if (!sp) die("bad file header '%s'", head);
    *sp = 0;
    mode_t mode = (mode_t)strtol(head, NULL, 8) & 0755;
    const char *name = sp + 1;
    if (!safe_name(name)) die("unsafe file name '%s'", name);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", job->workdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && !job->error[0])
        snprintf(job->error, sizeof job->error, "create %s: %s", name, strerror(errno));
    int err = body_to_fd(len, fd);
    if (fd >= 0) {
        if (err && !job->error[0])
            snprintf(job->error, sizeof job->error, "write %s: %s", name, strerror(err));
        /* mode before owner: once the file is the job's, root without CAP_FOWNER can't chmod */
        if ((fchmod(fd, mode) < 0 || fchown(fd, job->uid, job->uid) < 0) && !job->error[0])
            snprintf(job->error, sizeof job->error, "chown %s: %s", name, strerror(errno));
        close(fd);
    }
}

static void read_stdin_record(job_t *job, size_t len) {
    char path[96];
    snprintf(path, sizeof path, "%s/.stdin-%u", BOX_ROOT, (unsigned)job->uid);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) unlink(path); /* nothing on disk for the job to find; it gets the fd */
    else if (!job->error[0])
        snprintf(job->error, sizeof job->error, "stdin file: %s", strerror(errno));
    int err = body_to_fd(len, fd);
    if (fd >= 0) {
        if (err && !job->error[0])
            snprintf(job->error, sizeof job->error, "stdin write: %s", strerror(err));
        lseek(fd, 0, SEEK_SET);
        /* the job's own file, as a program's input file is: /dev/stdin can be reopened */
        if (fchown(fd, job->uid, job->uid) < 0 && !job->error[0])
            snprintf(job->error, sizeof job->error, "stdin chown: %s", strerror(errno));
        if (job->stdin_fd >= 0) close(job->stdin_fd);
        job->stdin_fd = fd;
    }
}

/* ------------------------------------------------------------------ requests */

static uid_t last_uid = (uid_t)-1;

static void free_job(job_t *job) {
    for (int i = 0; i < job->nargs; i++) free(job->argv[i]);
    for (int i = 0; i < job->nenv; i++) free(job->envp[i]);
    for (int i = 0; i < job->ncollect; i++) free(job->collect[i]);
    for (int i = 0; i < job->nserver; i++) free(job->server[i]);
    if (job->stdin_fd >= 0) close(job->stdin_fd);
}

static void put_collected(job_t *job) {
    for (int i = 0; i < job->ncollect; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", job->workdir, job->collect[i]);
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (size_t)st.st_size > job->collect_max) {
            if (fd >= 0) close(fd);
            continue; /* absent, odd or too big: the worker sees it missing */
        }
        buf_t b = {0};
        b.limit = job->collect_max;
        char head[160];
        int n = snprintf(head, sizeof head, "%o %s\n", (unsigned)(st.st_mode & 0755), job->collect[i]);
        buf_add(&b, head, (size_t)n);
        drain(fd, &b);
        close(fd);
        put("file", b.data, b.len);
        buf_free(&b);
    }
}

/* After a job: its shared memory gone from the sandbox's cgroup, down to what the sandbox held
 * as it started (the job's files and stdin included, and gone too by now). A cell's SysV
 * segments are freed a few milliseconds after the cell dies (the kernel defers it), so this
 * waits a little; memory that stays would count against the next job and crowd it out. */
static const char *memory_released(long base_kb) {
    memcg_t now;
    for (int i = 0; base_kb >= 0 && i < 2000; i++) {
        if (memcg_read(&now) < 0 || now.shmem_kb <= base_kb + 64) return NULL;
        usleep(1000);
    }
    return base_kb >= 0 ? "shared memory still held after the job" : NULL;
}

static void handle_run(void) {
    job_t job;
    memset(&job, 0, sizeof job);
    job.stdin_fd = -1;
    job.cell = (cell_t){0, -1, -1};
    job.out_bytes = 64 * 1024;
    job.err_bytes = 64 * 1024;
    job.collect_max = 64 * 1024 * 1024;
    int have_uid = 0;
    char name[32];
    size_t len;
    for (;;) {
        if (read_header(name, sizeof name, &len) < 0) exit(0);
        if (strcmp(name, "end") == 0) break;
        if (strcmp(name, "file") == 0) {
            if (!have_uid) die("file before uid");
            read_file_record(&job, len);
            continue;
        }
        if (strcmp(name, "stdin") == 0) {
            if (!have_uid) die("stdin before uid");
            read_stdin_record(&job, len);
            continue;
        }
        char *v = body_to_str(len);
        int keep = 0;
        if (strcmp(name, "uid") == 0) {
            job.uid = (uid_t)num(name, v);
            if (job.uid < 1000 || job.uid == last_uid) die("uid %u not fresh", (unsigned)job.uid);
            have_uid = 1;
            snprintf(job.workdir, sizeof job.workdir, "%s/%u", BOX_ROOT, (unsigned)job.uid);
            if (mkdir(job.workdir, 0700) < 0)
                snprintf(job.error, sizeof job.error, "mkdir %s: %s", job.workdir, strerror(errno));
        } else if (strcmp(name, "arg") == 0 && job.nargs < MAX_ARGS) {
            job.argv[job.nargs++] = v, keep = 1;
        } else if (strcmp(name, "env") == 0 && job.nenv < MAX_ENV) {
            job.envp[job.nenv++] = v, keep = 1;
        } else if (strcmp(name, "server") == 0 && job.nserver < MAX_SERVER_ARGS) {
            job.server[job.nserver++] = v, keep = 1;
        } else if (strcmp(name, "isolate") == 0) {
            if (strcmp(v, "namespaces") == 0) job.isolate = 1;
            else if (strcmp(v, "uid") != 0) die("unknown isolation '%s'", v);
        } else if (strcmp(name, "collect") == 0 && job.ncollect < MAX_COLLECT) {
            if (!safe_name(v)) die("unsafe collect name");
            job.collect[job.ncollect++] = v, keep = 1;
        } else if (strcmp(name, "cpu_ms") == 0) job.cpu_ms = num(name, v);
        else if (strcmp(name, "wall_ms") == 0) job.wall_ms = num(name, v);
        else if (strcmp(name, "mem_kb") == 0) job.mem_kb = num(name, v);
        else if (strcmp(name, "procs") == 0) job.procs = num(name, v);
        else if (strcmp(name, "fsize_kb") == 0) job.fsize_kb = num(name, v);
        else if (strcmp(name, "nofile") == 0) job.nofile = num(name, v);
        else if (strcmp(name, "stack_kb") == 0) job.stack_kb = num(name, v);
        else if (strcmp(name, "out_bytes") == 0) job.out_bytes = (size_t)num(name, v);
        else if (strcmp(name, "err_bytes") == 0) job.err_bytes = (size_t)num(name, v);
        else if (strcmp(name, "collect_max") == 0) job.collect_max = (size_t)num(name, v);
        else die("unknown or repeated-past-limit field '%s'", name);
        if (!keep) free(v);
    }
    if (!have_uid || job.nargs == 0) die("run needs uid and at least one arg");
    last_uid = job.uid;
    /* the job's home and temp dir are its work dir: the only place it may write */
    char home[96], tmpdir[96];
    snprintf(home, sizeof home, "HOME=%s", job.workdir);
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", job.workdir);
    if (job.nenv + 2 > MAX_ENV) die("too many env entries");
    job.envp[job.nenv++] = strdup(home);
    job.envp[job.nenv++] = strdup(tmpdir);

    if (!job.error[0] && (chmod(job.workdir, 0711) < 0 || chown(job.workdir, job.uid, job.uid) < 0))
        snprintf(job.error, sizeof job.error, "chown work dir: %s", strerror(errno));
    put_str("op", "result");
    int cell_failed = 0, ran = 0;
    long shmem_base_kb = -1;
    if (job.error[0]) {
        put_str("status", "error");
        put_str("error", job.error);
    } else {
        result_t res;
        run_job(&job, &res);
        cell_failed = res.cell_error[0] != 0;
        ran = 1;
        shmem_base_kb = res.shmem_base_kb;
        put_str("status", res.exec_error[0] ? "error" : "ok");
        if (res.exec_error[0]) put_str("error", res.exec_error);
        put_str("via", res.via);
        if (res.server_error[0]) put_str("server_error", res.server_error);
        put_num("exit_code", res.exit_code);
        put_num("signal", res.signal);
        put_num("cpu_us", res.cpu_us);
        put_num("wall_us", res.wall_us);
        put_num("maxrss_kb", res.maxrss_kb);
        put_str("killed", res.killed);
        put_num("oom_kills", res.oom_kills);
        size_t shown = res.stdout_buf.len > job.out_bytes ? job.out_bytes : res.stdout_buf.len;
        put("stdout", res.stdout_buf.data ? res.stdout_buf.data : "", shown);
        put_num("stdout_total", (long long)res.stdout_buf.total);
        put("stderr", res.stderr_buf.data ? res.stderr_buf.data : "", res.stderr_buf.len);
        put_num("stderr_total", (long long)res.stderr_buf.total);
        put_collected(&job);
        buf_free(&res.stdout_buf);
        buf_free(&res.stderr_buf);
    }
    const char *bad = wipe(&job);
    if (!bad && server_lost_job) bad = "the fork server failed during a job";
    if (!bad && cell_failed) bad = "the job's cell could not be made";
    if (!bad && ran) bad = memory_released(shmem_base_kb);
    server_lost_job = 0;
    put_str("cleanup", bad ? bad : "ok");
    free_job(&job);
    flush_message();
    /* the next job's cell, while the worker reads this answer and sends that job */
    if (job.isolate && !bad) cell_prepare();
}

static int selftest(int argc, char **argv) {
    /* supervisor --selftest EXPECTED -- ARGV...: the image's HEALTHCHECK; proves a program runs */
    if (argc < 5 || strcmp(argv[3], "--") != 0) die("usage: --selftest EXPECTED -- ARGV...");
    job_t job;
    memset(&job, 0, sizeof job);
    job.stdin_fd = -1;
    job.cell = (cell_t){0, -1, -1};
    job.uid = geteuid() == 0 ? 65534 : geteuid();
    job.wall_ms = 5000;
    job.isolate = cell_probe() == NULL;
    job.out_bytes = 4096;
    job.err_bytes = 4096;
    for (int i = 4; i < argc && job.nargs < MAX_ARGS; i++) job.argv[job.nargs++] = argv[i];
    static char path_env[] = "PATH=/usr/local/bin:/usr/bin:/bin";
    job.envp[0] = path_env;
    result_t res;
    run_job(&job, &res);
    cell_discard(&job.cell);
    const char *want = argv[2];
    size_t wl = strlen(want);
    int ok = !res.exec_error[0] && res.exit_code == 0 && strcmp(res.killed, "none") == 0 &&
             (wl == 0 || (res.stdout_buf.len == wl + 1 && memcmp(res.stdout_buf.data, want, wl) == 0 &&
                          res.stdout_buf.data[wl] == '\n'));
    if (!ok) fprintf(stderr, "selftest failed: exit %d signal %d %s\n", res.exit_code, res.signal, res.exec_error);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
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
    if (argc > 1) die("usage: supervisor [--version | --selftest EXPECTED -- ARGV...]");
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
            flush_message();
        } else if (strcmp(op, "run") == 0) {
            handle_run();
        } else {
            die("unknown op '%s'", op);
        }
        free(op);
    }
}
