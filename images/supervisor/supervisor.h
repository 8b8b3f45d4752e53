/* Shared declarations of the supervisor's parts (see supervisor.c), which stand in layers: a
 * file calls functions of (or uses variables defined in) files of lower layers only, never of
 * its own layer or above, so the calls between files form no cycle, and each part can be read
 * knowing only those below it. tests/unit/test_supervisor_layers.py reads this list and the
 * sources, and fails on a call that goes up or sideways, or on a cycle between files. Where a
 * lower part needs something of a higher one, the caller hands it in (held_by_jobs_kb is given
 * the fork server's pid); process.c knows the fork server and idle cells only as children of
 * ours that are no job's.
 *
 *   7  supervisor.c  requests and main: reads a run, has it run, answers, cleans up after it
 *   6  run.c         running a job, or a pair of them, under their limits
 *   5  park.c        runtimes started ahead, one per job
 *   4  process.c     finding, killing and reaping a job's processes; wiping what it left
 *   3  server.c      handing a job to a language's fork server
 *   2  spawn.c       starting a job's process: its rlimits, identity, the exec path
 *   1  cell.c        the job's namespaces and seccomp filter
 *   1  memory.c      what a job's memory is
 *   0  wire.c        small utilities, the wire format
 *   0  ledger.c      what the sandbox's cgroup was charged
 *   0  files.c       a job's work dir and stdin file; what it leaves behind, found and removed
 *   0  pair.c        what is particular to a pair: its pipes, its OOM kills
 *
 * Below, each file's declarations under its name, lowest layer first. */
#ifndef SUPERVISOR_H
#define SUPERVISOR_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/fsuid.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VERSION "6"
#define BOX_ROOT "/box"
#define MAX_ARGS 64
#define MAX_ENV 64
#define MAX_COLLECT 8
#define MAX_SERVER_ARGS 8
#define MAX_PARK_FILES 4
#define MAX_LIMITS 8
#define MAX_NAME 200  /* a file's name: a relative path ... */
#define MAX_PARTS 8   /* ... of at most this many parts */
#define MAX_PART 100  /* ... each at most this long */
#define PAIR 2        /* a run is one job, or a job and its partner */
#define TICK_MS 10
#define PARK_CTL_FD 1023 /* a parked runtime's control socket, without a descriptor limit */
#define KILL_ROUNDS 200
#define OOM_SCORE_JOB "1000" /* the job is the OOM killer's first choice, and stays it */

typedef struct {
    pid_t pid; /* the cell's init: pid 1 of the job's pid namespace, our child */
    int pidfd; /* entered (setns) by whatever forks the job */
    int sock;  /* talks to the init: a job starts, a job ended */
} cell_t;

/* Growable byte buffer with an optional cap: bytes past the cap are counted, and the last
 * ring_size of them kept (buf_tail), when it has a ring. */
typedef struct {
    char *data;
    size_t len, cap, limit, total;
    char *ring;
    size_t ring_size, over; /* over: the bytes past the cap so far */
} buf_t;
/* The end of a job's stderr kept past its cap: a runtime says it ran out of memory last, after
 * whatever the program wrote there (worker/judging/runs.py); a JVM's words and stack fit. */
#define ERR_TAIL_BYTES (64 * 1024)

typedef struct {
    uid_t uid;
    long cpu_ms, wall_ms, mem_kb, procs, fsize_kb, nofile, stack_kb;
    size_t out_bytes, err_bytes, collect_max;
    char *argv[MAX_ARGS + 1];
    char *envp[MAX_ENV + 1];
    char *collect[MAX_COLLECT];
    char *server[MAX_SERVER_ARGS + 1]; /* a fork server's argv: run argv through it */
    /* a parked runtime's launcher options, put after argv[0] (park.c) */
    char *park[MAX_SERVER_ARGS + 1];
    /* files a parked runtime needs in its work dir before its job's arrive, each "NAME=PATH":
     * the image's file PATH is put there as NAME, and the job's own NAME replaces it (park.c) */
    char *park_file[MAX_PARK_FILES];
    int nargs, nenv, ncollect, nserver, npark, npark_file;
    uid_t park_uid; /* the next job's uid, for whom a runtime is parked after this run */
    int ctl_fd;     /* a parked runtime's end of its control socket, else -1 (park.c) */
    int isolate; /* 1: the job runs in a cell of its own (cell.c) */
    int partner; /* 1: the partner of a pair (the problem's program, e.g. an interactor) */
    cell_t cell;
    char workdir[64];
    int stdin_fd;
    /* the files it was given, held (O_PATH) while it runs, and their size then: a job that
     * removes or truncates them frees memory the sandbox held as it started (memory.c) */
    int *given;
    long *given_blocks;
    int ngiven;
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
    const char *via;         /* "exec", "server" or "parked" */
    char server_error[160];  /* why the fork server was not used, when it was asked for */
    char park_error[160];    /* why a parked runtime was not used, when the job could be */
    char cell_error[160];    /* why the job's cell could not be made: the sandbox is unfit */
} result_t;

typedef struct {
    int resource;
    rlim_t soft, hard;
} limit_t;

typedef struct {
    uint32_t effective, permitted, inheritable;
} capsets_t;

typedef struct {
    long usage_kb;                 /* all the cgroup is charged for, the kernel's memory included */
    long anon_kb, shmem_kb, file_kb; /* file: page cache, shmem included */
    long peak_kb;                  /* the most usage_kb was since the run began, or -1 (ledger.c) */
} memcg_t;

typedef struct {
    int count;          /* live processes */
    long long ticks;    /* their CPU time so far, in clock ticks */
    long resident_kb;   /* their memory without shmem, shared pages once (memory.c) */
    long anon_kb;       /* their anonymous resident pages, each process's in full */
} scan_t;

/* What of the sandbox's cgroup figures is a pair's partner's (memory.c). */
typedef struct {
    long shmem_kb, anon_kb;
} pair_share_t;

/* A job while it runs (run.c): its process, our ends of its pipes, its clock. What it used
 * (CPU, memory) goes straight into its result. */
typedef struct {
    job_t *job;
    result_t *res;
    pid_t pid;             /* its main process, our child; -1 when it did not start */
    int status;            /* that process's wait status once reaped, else -1 */
    int out, err, errpipe; /* our ends of its stdout (-1 in a pair), stderr, exec-error pipe */
    int64_t start, end;    /* end: 0 while it runs */
    long peak_kb;          /* its memory: the most any look saw */
    int64_t starter_ns;    /* CPU of the process that started it (not the job's) */
    int64_t used_us;       /* its CPU time as the last look saw it */
    int by_server;         /* its fork server is up and will be asked for it */
    int parked;            /* handed to the runtime parked for it (park.c) */
    pair_share_t share;    /* a partner's share of the cgroup, as its last look saw */
} run_t;

/* wire.c */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
int64_t now_us(void);
int write_all(int fd, const void *buf, size_t len);
void close_from(int lowest, int keep);
int open_beneath(const char *dir, const char *name, int flags, mode_t mode, int make);
void buf_add(buf_t *b, const char *src, size_t n);
size_t buf_tail(const buf_t *b, char *out);
void buf_free(buf_t *b);
int in_byte(void);
int read_header(char *name, size_t name_size, size_t *len);
int body_to_fd(size_t len, int fd);
char *body_to_str(size_t len);
void put(const char *name, const char *data, size_t len);
void put_str(const char *name, const char *s);
void put_num(const char *name, long long v);
void flush_message(void);

/* ledger.c */
const char *ledger_open(void);
int64_t ledger_cpu_ns(void);
int memcg_read(memcg_t *m);
int64_t self_cpu_ns(void);
void peak_open(void);
const char *peak_kind(void);
void peak_start(void);

/* files.c */
const char *workdir_make(job_t *job);
int stdin_file(uid_t uid, int *ro);
int stdin_reopen(int fd);
int rm_tree_at(int dirfd);
int remove_ipc(uid_t uid);
int owned_outside(uid_t uid, int remove);

/* pair.c */
int pair_pipes(const run_t runs[PAIR], int ends[PAIR][4]);
void pair_oom_kills(run_t runs[PAIR], long kills);

/* cell.c */
int cell_open(const job_t *job, cell_t *cell, char *why, size_t why_size);
void cell_stop(cell_t *cell, struct rusage *ru);
int cell_end(cell_t *cell);
void cell_discard(cell_t *cell);
void cell_prepare(int count);
void cell_reap_retired(void);
int idle_cell_reaped(pid_t pid);
long long cell_reaped_ticks(const cell_t *cell);
const char *cell_probe(void);
const char *cell_enter(int pidfd);
int job_filter_install(void);
const char *job_filter_hex(void);
int write_file(const char *path, const char *text);

/* memory.c */
long proc_resident_kb(pid_t pid, long *anon_kb);
void proc_rollup(pid_t pid, long *private_kb, long *pss_kb);
long job_memory_kb(long resident_kb, const memcg_t *base, long own_kb, long given_kb);
long pair_memory_kb(const job_t *job, long resident_kb, const memcg_t *base,
                    const pair_share_t *partner, const job_t *partner_job, long own_kb,
                    long given_kb);
long partner_shmem_kb(const job_t *partner);
long given_removed_kb(const job_t *job);
long held_by_jobs_kb(pid_t server);

/* spawn.c */
int job_limits(const job_t *job, limit_t out[MAX_LIMITS]);
pid_t spawn_exec(job_t *job, const int fds[4], const cell_t *cell, int64_t *starter_ns);
void drop_capabilities(void);
int capabilities(capsets_t caps[2], int write);

/* server.c */
extern int server_lost_job; /* the server failed with a job maybe half started: recycle */
int is_server(pid_t pid);
pid_t server_process(void);
void server_gone(void);
int server_ready(const job_t *job, result_t *res);
pid_t server_spawn(job_t *job, const int fds[4], int cell_fd, result_t *res, int64_t *starter_ns);

/* process.c */
int scan_uid(uid_t uid, int do_kill, scan_t *scan, int detail);
void watch(run_t *runs, int n);
void account(run_t *run, const struct rusage *ru);
void reap(run_t *until);
int kill_uid(uid_t uid);
long oom_kills(void);
const char *wipe(job_t *job);

/* park.c */
int park_holds(uid_t uid);
int park_stdin(uid_t uid);
int park_replace(uid_t uid, const char *name);
long park_before_kb(long now_kb);
int park_claim(job_t *job, run_t *run, int n);
pid_t park_go(run_t *run);
const char *park_drop(uid_t keep_workdir);
void park_next(const job_t *done);

/* run.c */
void drain(int fd, buf_t *b);
void run_jobs(job_t *jobs[PAIR], result_t res[PAIR], int n);

/* supervisor.c */
extern uid_t supervisor_uid; /* what the supervisor runs as (0 until it drops root) */

#endif
