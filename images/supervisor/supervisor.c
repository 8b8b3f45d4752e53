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
 * its own work dir, with no-new-privileges set on the container. A job cannot signal or
 * ptrace the supervisor (different uid), cannot reach its stdout (all other descriptors are
 * closed before exec), and everything the uid owns is killed and wiped before the next job.
 *
 * Wire format, both directions: records `NAME SP LEN LF` followed by LEN raw bytes; a message
 * ends with the record `end 0`. Requests start with `op` = `ping` or `run`; see the worker's
 * sandbox/protocol.py for the field list, kept in step with this file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VERSION "1"
#define BOX_ROOT "/box"
#define MAX_ARGS 64
#define MAX_ENV 64
#define MAX_COLLECT 8
#define TICK_MS 10
#define KILL_ROUNDS 200

/* ------------------------------------------------------------------ small utilities */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("supervisor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Growable byte buffer with an optional cap: bytes past the cap are counted, not kept. */
typedef struct {
    char *data;
    size_t len, cap, limit, total;
} buf_t;

static void buf_add(buf_t *b, const char *src, size_t n) {
    b->total += n;
    if (b->len >= b->limit) return;
    if (n > b->limit - b->len) n = b->limit - b->len;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) die("out of memory");
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void buf_free(buf_t *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ wire format */

static char inbuf[65536];
static size_t in_pos, in_len;

static int in_fill(void) {
    ssize_t n;
    do n = read(0, inbuf, sizeof inbuf); while (n < 0 && errno == EINTR);
    if (n <= 0) return -1;
    in_pos = 0;
    in_len = (size_t)n;
    return 0;
}

/* Read a record header; returns 0, or -1 on EOF (the worker hung up: exit quietly). */
static int read_header(char *name, size_t name_size, size_t *len) {
    size_t i = 0;
    char line[96];
    for (;;) {
        if (in_pos == in_len && in_fill() < 0) return -1;
        char c = inbuf[in_pos++];
        if (c == '\n') break;
        if (i + 1 >= sizeof line) die("record header too long");
        line[i++] = c;
    }
    line[i] = 0;
    char *sp = strchr(line, ' ');
    if (!sp) die("bad record header '%s'", line);
    *sp = 0;
    if ((size_t)(sp - line) >= name_size) die("record name too long");
    strcpy(name, line);
    char *end;
    unsigned long long v = strtoull(sp + 1, &end, 10);
    if (*end || end == sp + 1) die("bad record length in '%s'", line);
    *len = (size_t)v;
    return 0;
}

/* Copy a record body to fd (or discard it when fd < 0), without holding it in memory. */
static int body_to_fd(size_t len, int fd) {
    int failed = 0;
    while (len > 0) {
        if (in_pos == in_len && in_fill() < 0) die("eof inside a record");
        size_t n = in_len - in_pos;
        if (n > len) n = len;
        if (fd >= 0 && !failed && write_all(fd, inbuf + in_pos, n) < 0) failed = errno;
        in_pos += n;
        len -= n;
    }
    return failed;
}

static char *body_to_str(size_t len) {
    char *s = malloc(len + 1);
    if (!s) die("out of memory");
    size_t got = 0;
    while (got < len) {
        if (in_pos == in_len && in_fill() < 0) die("eof inside a record");
        size_t n = in_len - in_pos;
        if (n > len - got) n = len - got;
        memcpy(s + got, inbuf + in_pos, n);
        in_pos += n;
        got += n;
    }
    s[len] = 0;
    return s;
}

static buf_t out;

static void put(const char *name, const char *data, size_t len) {
    char head[96];
    int n = snprintf(head, sizeof head, "%s %zu\n", name, len);
    buf_add(&out, head, (size_t)n);
    buf_add(&out, data, len);
}

static void put_str(const char *name, const char *s) { put(name, s, strlen(s)); }

static void put_num(const char *name, long long v) {
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    put_str(name, s);
}

static void flush_message(void) {
    put("end", "", 0);
    if (write_all(1, out.data, out.len) < 0) exit(0); /* worker gone */
    out.len = 0;
    out.total = 0;
}

/* ------------------------------------------------------------------ job description */

typedef struct {
    uid_t uid;
    long cpu_ms, wall_ms, mem_kb, procs, fsize_kb, nofile, stack_kb;
    size_t out_bytes, err_bytes, collect_max;
    char *argv[MAX_ARGS + 1];
    char *envp[MAX_ENV + 1];
    char *collect[MAX_COLLECT];
    int nargs, nenv, ncollect;
    char workdir[64];
    int stdin_fd;
    char error[256];
} job_t;

typedef struct {
    int exit_code, signal;
    int64_t cpu_us, wall_us;
    long maxrss_kb;
    const char *killed;
    long oom_kills;
    buf_t stdout_buf, stderr_buf;
    char exec_error[160];
} result_t;

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
        if (in_pos == in_len && in_fill() < 0) die("eof inside a record");
        char c = inbuf[in_pos++];
        len--;
        if (c == '\n') break;
        head[i++] = c;
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
        if (job->stdin_fd >= 0) close(job->stdin_fd);
        job->stdin_fd = fd;
    }
}

/* ------------------------------------------------------------------ process bookkeeping */

/* Every live process of uid, by scanning /proc; sums their CPU (ticks) and RSS (kB). */
static int scan_uid(uid_t uid, int do_kill, long long *cpu_ticks, long *rss_kb) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int count = 0;
    long long ticks = 0;
    long rss = 0;
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        struct stat st;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s", e->d_name);
        if (stat(path, &st) < 0 || st.st_uid != uid) continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        count++;
        if (do_kill) {
            kill(pid, SIGKILL);
            continue;
        }
        if (cpu_ticks) {
            char line[1024];
            snprintf(path, sizeof path, "/proc/%d/stat", pid);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                ssize_t n = read(fd, line, sizeof line - 1);
                close(fd);
                char *p = n > 0 ? (line[n] = 0, strrchr(line, ')')) : NULL;
                unsigned long long ut = 0, stt = 0;
                /* fields after the command: state ppid ... utime(14) stime(15) */
                if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &ut, &stt) == 2)
                    ticks += (long long)(ut + stt);
            }
        }
        if (rss_kb) {
            char line[128];
            snprintf(path, sizeof path, "/proc/%d/statm", pid);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                ssize_t n = read(fd, line, sizeof line - 1);
                close(fd);
                long size = 0, res = 0;
                if (n > 0 && (line[n] = 0, sscanf(line, "%ld %ld", &size, &res) == 2))
                    rss += res * page_kb;
            }
        }
    }
    closedir(d);
    if (cpu_ticks) *cpu_ticks = ticks;
    if (rss_kb) *rss_kb = rss;
    return count;
}

static int64_t reaped_cpu_us;
static long reaped_maxrss;
static pid_t main_pid;
static int main_status = -1;

static void account(const struct rusage *ru) {
    reaped_cpu_us += (int64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec +
                     (int64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
    if (ru->ru_maxrss > reaped_maxrss) reaped_maxrss = ru->ru_maxrss;
}

/* Reap every exited child (the job's main process and orphans reparented to us). */
static void reap(int block) {
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, block ? 0 : WNOHANG, &ru);
        if (pid <= 0) {
            if (pid < 0 && errno == EINTR) continue;
            return;
        }
        account(&ru);
        if (pid == main_pid) main_status = status;
    }
}

/* Kill every process of uid and reap them; 0 when none is left. */
static int kill_uid(uid_t uid) {
    for (int round = 0; round < KILL_ROUNDS; round++) {
        int alive = scan_uid(uid, 1, NULL, NULL);
        reap(0);
        if (alive == 0) return 0;
        if (round > 2) usleep(1000);
    }
    return scan_uid(uid, 0, NULL, NULL) == 0 ? 0 : -1;
}

/* Container-wide OOM kills so far (cgroup v1 memory.oom_control, or v2 memory.events). */
static long oom_kills(void) {
    const char *paths[] = {"/sys/fs/cgroup/memory/memory.oom_control",
                           "/sys/fs/cgroup/memory.events"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        FILE *f = fopen(paths[i], "re");
        if (!f) continue;
        char key[64];
        long v, found = -1;
        while (fscanf(f, "%63s %ld", key, &v) == 2)
            if (strcmp(key, "oom_kill") == 0) found = v;
        fclose(f);
        if (found >= 0) return found;
    }
    return 0;
}

/* ------------------------------------------------------------------ cleanup (as the job uid) */

static int rm_tree_at(int dirfd) {
    DIR *d = fdopendir(dirfd);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0) continue;
        /* a directory, maybe chmod'ed shut by the job: open it up as its owner, then recurse */
        fchmodat(dirfd, e->d_name, 0700, 0);
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 || rm_tree_at(sub) < 0 || unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0) rc = -1;
    }
    closedir(d);
    return rc;
}

static void remove_ipc(uid_t uid) {
    const char *tables[] = {"/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg"};
    for (int t = 0; t < 3; t++) {
        FILE *f = fopen(tables[t], "re");
        if (!f) continue;
        char line[512];
        /* the header names the columns; the owner's column differs between the tables */
        int uid_col = -1, col = 0;
        if (fgets(line, sizeof line, f))
            for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"), col++)
                if (strcmp(tok, "uid") == 0) uid_col = col;
        while (uid_col > 1 && fgets(line, sizeof line, f)) {
            long id = -1, owner = -1;
            col = 0;
            for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"), col++) {
                if (col == 1) id = atol(tok);
                if (col == uid_col) owner = atol(tok);
            }
            if (owner != (long)uid || id < 0) continue;
            if (t == 0) shmctl((int)id, IPC_RMID, NULL);
            else if (t == 1) semctl((int)id, 0, IPC_RMID);
            else msgctl((int)id, IPC_RMID, NULL);
        }
        fclose(f);
    }
}

static void remove_owned_in(const char *dir, uid_t uid) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid != uid) continue;
        if (unlinkat(fd, e->d_name, 0) < 0) {
            int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) rm_tree_at(sub);
            unlinkat(fd, e->d_name, AT_REMOVEDIR);
        }
    }
    closedir(d);
}

/* Wipe what the job owned: its work dir's contents, shared-memory files and SysV IPC objects.
 * Done by a child that becomes the job's uid, since root here lacks CAP_DAC_OVERRIDE. */
static const char *wipe(job_t *job) {
    pid_t pid = fork();
    if (pid < 0) return "fork for wipe failed";
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(job->uid, job->uid, job->uid) < 0 ||
            setresuid(job->uid, job->uid, job->uid) < 0)
            _exit(3);
        int fd = open(job->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc = fd >= 0 ? rm_tree_at(fd) : -1;
        remove_owned_in("/dev/shm", job->uid);
        remove_owned_in("/tmp", job->uid);
        remove_ipc(job->uid);
        _exit(rc < 0 ? 4 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "work dir wipe failed";
    if (rmdir(job->workdir) < 0) return "work dir not empty after wipe";
    if (kill_uid(job->uid) < 0) return "processes survived the wipe";
    return NULL;
}

/* ------------------------------------------------------------------ running a job */

static void child_exec(job_t *job, int out_w, int err_w, int errpipe_w) {
    const char *step = "dup2";
    int fd0 = job->stdin_fd >= 0 ? job->stdin_fd : open("/dev/null", O_RDONLY);
    if (dup2(fd0, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) goto fail;
    /* only 0-2 and the CLOEXEC error pipe survive: the supervisor's own stdout stays ours */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != errpipe_w) close(fd);
    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) { /* the job, not the supervisor, is the OOM killer's first choice */
        if (write(adj, "1000", 4) < 0) {}
        close(adj);
    }
    struct rlimit rl;
#define LIMIT(res, v) do { step = "setrlimit " #res; rl.rlim_cur = rl.rlim_max = (v); if (setrlimit(res, &rl) < 0) goto fail; } while (0)
    if (job->cpu_ms) {
        rlim_t s = (rlim_t)(job->cpu_ms + 999) / 1000 + 1; /* backstop; the tick enforces ms */
        rl.rlim_cur = s;
        rl.rlim_max = s + 1;
        step = "setrlimit RLIMIT_CPU";
        if (setrlimit(RLIMIT_CPU, &rl) < 0) goto fail;
    }
    if (job->procs) LIMIT(RLIMIT_NPROC, (rlim_t)job->procs);
    if (job->fsize_kb) LIMIT(RLIMIT_FSIZE, (rlim_t)job->fsize_kb * 1024);
    if (job->nofile) LIMIT(RLIMIT_NOFILE, (rlim_t)job->nofile);
    if (job->stack_kb) LIMIT(RLIMIT_STACK, (rlim_t)job->stack_kb * 1024);
    LIMIT(RLIMIT_CORE, 0);
    LIMIT(RLIMIT_MSGQUEUE, 0);
    LIMIT(RLIMIT_MEMLOCK, 0);
#undef LIMIT
    step = "chdir";
    if (chdir(job->workdir[0] ? job->workdir : "/") < 0) goto fail;
    step = "switch uid";
    if (geteuid() == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(job->uid, job->uid, job->uid) < 0 ||
            setresuid(job->uid, job->uid, job->uid) < 0)
            goto fail;
    }
    umask(022);
    step = "exec";
    execve(job->argv[0], job->argv, job->envp);
fail:;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s %s: %s", step, job->argv[0], strerror(errno));
    if (write(errpipe_w, msg, (size_t)n) < 0) {}
    _exit(127);
}

static void drain(int fd, buf_t *b) {
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) { buf_add(b, chunk, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        return;
    }
}

static void run_job(job_t *job, result_t *res) {
    memset(res, 0, sizeof *res);
    res->killed = "none";
    res->stdout_buf.limit = job->out_bytes + 1; /* one past the cap tells OLE from a full fit */
    res->stderr_buf.limit = job->err_bytes;
    reaped_cpu_us = 0;
    reaped_maxrss = 0;
    main_status = -1;
    long oom_before = oom_kills();

    int outp[2], errp[2], errpipe[2];
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(errpipe, O_CLOEXEC) < 0) {
        snprintf(res->exec_error, sizeof res->exec_error, "pipe: %s", strerror(errno));
        return;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    int64_t start = now_us();
    main_pid = fork();
    if (main_pid == 0) {
        sigprocmask(SIG_UNBLOCK, &mask, NULL);
        close(outp[0]);
        close(errp[0]);
        close(errpipe[0]);
        child_exec(job, outp[1], errp[1], errpipe[1]);
    }
    close(outp[1]);
    close(errp[1]);
    close(errpipe[1]);
    if (main_pid < 0) {
        snprintf(res->exec_error, sizeof res->exec_error, "fork: %s", strerror(errno));
        close(outp[0]); close(errp[0]); close(errpipe[0]); close(sfd);
        return;
    }
    fcntl(outp[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);

    long peak_sum_kb = 0;
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
            long long ticks = 0;
            long rss = 0;
            scan_uid(job->uid, 0, &ticks, &rss);
            if (job->cpu_ms && reaped_cpu_us + ticks * 1000000 / hz > job->cpu_ms * 1000) {
                res->killed = "cpu";
                break;
            }
            /* several processes can together hold more than any one of them ever did */
            if (rss > peak_sum_kb) peak_sum_kb = rss;
            if (job->mem_kb && rss > job->mem_kb) {
                res->killed = "memory";
                break;
            }
        }
    }
    int64_t end = now_us();
    /* the main process may not have switched uid yet, so it and its group are killed by pid */
    if (main_status < 0) {
        kill(-main_pid, SIGKILL);
        kill(main_pid, SIGKILL);
    }
    if (geteuid() == 0) kill_uid(job->uid);
    reap(1); /* blocks until every child is gone: all were killed above */
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
    res->maxrss_kb = reaped_maxrss > peak_sum_kb ? reaped_maxrss : peak_sum_kb;
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

/* ------------------------------------------------------------------ requests */

static uid_t last_uid = (uid_t)-1;

static void free_job(job_t *job) {
    for (int i = 0; i < job->nargs; i++) free(job->argv[i]);
    for (int i = 0; i < job->nenv; i++) free(job->envp[i]);
    for (int i = 0; i < job->ncollect; i++) free(job->collect[i]);
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

static void handle_run(void) {
    job_t job;
    memset(&job, 0, sizeof job);
    job.stdin_fd = -1;
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
    if (job.error[0]) {
        put_str("status", "error");
        put_str("error", job.error);
    } else {
        result_t res;
        run_job(&job, &res);
        put_str("status", res.exec_error[0] ? "error" : "ok");
        if (res.exec_error[0]) put_str("error", res.exec_error);
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
    put_str("cleanup", bad ? bad : "ok");
    free_job(&job);
    flush_message();
}

static int selftest(int argc, char **argv) {
    /* supervisor --selftest EXPECTED -- ARGV...: the image's HEALTHCHECK; proves a program runs */
    if (argc < 5 || strcmp(argv[3], "--") != 0) die("usage: --selftest EXPECTED -- ARGV...");
    job_t job;
    memset(&job, 0, sizeof job);
    job.stdin_fd = -1;
    job.uid = geteuid() == 0 ? 65534 : geteuid();
    job.wall_ms = 5000;
    job.out_bytes = 4096;
    job.err_bytes = 4096;
    for (int i = 4; i < argc && job.nargs < MAX_ARGS; i++) job.argv[job.nargs++] = argv[i];
    static char path_env[] = "PATH=/usr/local/bin:/usr/bin:/bin";
    job.envp[0] = path_env;
    result_t res;
    run_job(&job, &res);
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
    out.limit = (size_t)-1;
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
            flush_message();
        } else if (strcmp(op, "run") == 0) {
            handle_run();
        } else {
            die("unknown op '%s'", op);
        }
        free(op);
    }
}
