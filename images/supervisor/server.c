/* A language's fork server: an interpreter started once per sandbox that forks a fresh copy
 * of itself for each job (images/python/forkserver.py has the other side and the reasons).
 *
 * A job whose request names a server (`server` records: its argv) is handed to it instead of
 * being exec'ed: one SOCK_SEQPACKET datagram of tagged, NUL-terminated fields (with the job's
 * seccomp filter) plus the job's stdin, stdout, stderr and exec-error pipe and, when the job
 * has a cell, the cell's pidfd, as SCM_RIGHTS. The server's child
 * enters the cell as ours does on the exec path (cell.c). The server answers with the job's pid once the job has been
 * reparented to us, so from there on the job is watched, measured, killed and reaped exactly
 * like an exec'ed one. Whenever the server cannot take a job (it
 * failed to start, died, or refused), the job is exec'ed instead and the reason is reported
 * (`server_error`), so a broken server costs speed, never a verdict. */
#include "supervisor.h"

#define READY_MS 10000
#define ANSWER_MS 5000

static pid_t server_pid;
static int server_sock = -1;
int server_lost_job;
/* the server's argv and environment: a job that asks for another gets a new server */
static char server_key[8192];

int is_server(pid_t pid) { return pid > 0 && pid == server_pid; }

pid_t server_process(void) { return server_pid; }

void server_gone(void) {
    server_pid = 0;
    if (server_sock >= 0) close(server_sock);
    server_sock = -1;
}

static void server_stop(void) {
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        while (waitpid(server_pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    server_gone();
}

/* Per job, only HOME and TMPDIR (the work dir) differ; the server gets neutral ones. */
static int per_job(const char *entry) {
    return strncmp(entry, "HOME=", 5) == 0 || strncmp(entry, "TMPDIR=", 7) == 0;
}

static int key_of(const job_t *job, char *key, size_t size) {
    size_t len = 0;
    for (int i = 0; i < job->nserver + job->nenv; i++) {
        const char *s = i < job->nserver ? job->server[i] : job->envp[i - job->nserver];
        if (i >= job->nserver && per_job(s)) continue;
        int n = snprintf(key + len, size - len, "%s\x01", s);
        if (n < 0 || (size_t)n >= size - len) return -1;
        len += (size_t)n;
    }
    return 0;
}

static int wait_readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t deadline = now_us() + (int64_t)ms * 1000;
    for (;;) {
        int left = (int)((deadline - now_us()) / 1000);
        int n = poll(&p, 1, left > 0 ? left : 0);
        if (n > 0) return 0;
        if (n == 0 || errno != EINTR) return -1;
    }
}

static int server_start(const job_t *job, const char *key, char *why, size_t why_size) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(why, why_size, "socketpair: %s", strerror(errno));
        return -1;
    }
    char *envp[MAX_ENV + 3];
    int n = 0;
    for (int i = 0; i < job->nenv; i++)
        if (!per_job(job->envp[i])) envp[n++] = job->envp[i];
    envp[n++] = "HOME=/";
    envp[n++] = "TMPDIR=/tmp";
    envp[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        /* a job's view of its descriptors: stdin a file-like device, stdout and stderr pipes
         * (our stderr, never our stdout: that is the wire), and the socket on fd 3 */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_UNBLOCK, &mask, NULL);
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(2, 1) < 0) _exit(127);
        if (sv[1] == 3) fcntl(3, F_SETFD, 0);
        else if (dup2(sv[1], 3) < 0) _exit(127);
        close_from(4, -1);
        execve(job->server[0], job->server, envp);
        _exit(127);
    }
    close(sv[1]);
    if (pid < 0) {
        snprintf(why, why_size, "fork: %s", strerror(errno));
        close(sv[0]);
        return -1;
    }
    server_pid = pid;
    server_sock = sv[0];
    char hello[8];
    if (wait_readable(server_sock, READY_MS) < 0 || recv(server_sock, hello, sizeof hello, 0) != 5 ||
        memcmp(hello, "ready", 5) != 0) {
        snprintf(why, why_size, "%s did not start", job->server[0]);
        server_stop();
        return -1;
    }
    snprintf(server_key, sizeof server_key, "%s", key);
    return 0;
}

static void field(buf_t *b, char tag, const char *value) {
    buf_add(b, &tag, 1);
    buf_add(b, value, strlen(value) + 1);
}

/* Whether the job's fork server is up, started now if it has to be (before the job's window
 * opens: its start is not the job's, run.c). 0 when the job names none or it cannot be
 * started: it is exec'ed then (the reason in res->server_error). */
int server_ready(const job_t *job, result_t *res) {
    if (job->nserver == 0) return 0;
    char key[sizeof server_key];
    char *why = res->server_error;
    size_t why_size = sizeof res->server_error;
    if (key_of(job, key, sizeof key) < 0) {
        snprintf(why, why_size, "server argv and environment too long");
        return 0;
    }
    if (server_pid > 0 && strcmp(key, server_key) != 0) server_stop();
    return server_pid > 0 || server_start(job, key, why, why_size) == 0;
}

/* Hand a job to its fork server (server_ready said it is up). The job's pid when the server
 * took it, with the CPU time of the server's process that started it added to *starter_ns;
 * 0 when the caller must exec it instead (the reason in res->server_error); -1 when the
 * server failed after the job may have started. */
pid_t server_spawn(job_t *job, const int fds[4], int cell_fd, result_t *res, int64_t *starter_ns) {
    char *why = res->server_error;
    size_t why_size = sizeof res->server_error;
    if (server_pid <= 0) {
        snprintf(why, why_size, "server gone before the job");
        return 0;
    }

    buf_t msg = {0};
    msg.limit = 15 * 1024; /* the server reads at most 16 KiB */
    char num[64];
    snprintf(num, sizeof num, "%u", (unsigned)job->uid);
    field(&msg, 'u', num);
    field(&msg, 'd', job->workdir[0] ? job->workdir : "/");
    limit_t limits[MAX_LIMITS];
    int nlimits = job_limits(job, limits);
    for (int i = 0; i < nlimits; i++) {
        snprintf(num, sizeof num, "%d %llu %llu", limits[i].resource,
                 (unsigned long long)limits[i].soft, (unsigned long long)limits[i].hard);
        field(&msg, 'r', num);
    }
    for (int i = 0; i < job->nargs; i++) field(&msg, 'a', job->argv[i]);
    for (int i = 0; i < job->nenv; i++) field(&msg, 'e', job->envp[i]);
    field(&msg, 'f', job_filter_hex());
    /* the cell, when the job has one, after the four */
    int all[5] = {fds[0], fds[1], fds[2], fds[3], cell_fd};
    int nfds = cell_fd >= 0 ? 5 : 4;
    if (cell_fd >= 0) field(&msg, 'c', "4");
    if (msg.total > msg.limit) {
        buf_free(&msg);
        snprintf(why, why_size, "request too long for the server");
        return 0;
    }

    union {
        char buf[CMSG_SPACE(5 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {msg.data, msg.len};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.buf;
    mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(c), all, (size_t)nfds * sizeof(int));
    ssize_t sent = sendmsg(server_sock, &mh, MSG_NOSIGNAL);
    buf_free(&msg);
    if (sent < 0) { /* it died since the last job: nothing was started */
        snprintf(why, why_size, "server gone: %s", strerror(errno));
        server_stop();
        return 0;
    }

    char answer[1025];
    ssize_t n = -1;
    if (wait_readable(server_sock, ANSWER_MS) == 0) n = recv(server_sock, answer, sizeof answer - 1, 0);
    if (n <= 0) {
        /* the job may exist, even still as root before its uid switch, where no cleanup by
         * uid finds it: the answer tells the worker to recycle this sandbox */
        snprintf(res->exec_error, sizeof res->exec_error, "fork server did not answer");
        server_stop();
        server_lost_job = 1;
        return -1;
    }
    answer[n] = 0;
    long pid = 0;
    char *end = answer;
    /* "ok PID USEC": the job, and the CPU time of the process that started it */
    if (strncmp(answer, "ok ", 3) == 0 && (pid = strtol(answer + 3, &end, 10)) > 0) {
        *starter_ns += strtoll(end, NULL, 10) * 1000;
        return (pid_t)pid;
    }
    /* it refused before forking the job (a bad request, or fork failed): exec it instead */
    snprintf(why, why_size, "%.150s", strncmp(answer, "err ", 4) == 0 ? answer + 4 : answer);
    return 0;
}
