/* Parked runtimes: a language's runtime started ahead for the next job, and handed that job
 * alone.
 *
 * Why: a runtime whose own start costs tens of milliseconds (Node.js: about 80 ms here) and
 * that cannot be forked once started (it runs threads: a fork would copy one of them) can
 * still be started before its job arrives, while the sandbox waits. It is started exactly as
 * the job would be exec'ed (spawn.c, spawn_exec and child_exec): in the next job's cell, as the
 * next job's uid, with its rlimits, its work dir as cwd, its environment, its argv, no
 * capability, the job's seccomp filter from its first instruction; its stdin is the job's
 * stdin file (still empty), its stdout and stderr the job's pipes. The only differences: the
 * language's launcher options after argv[0] (`park` records, e.g. Node's `--require
 * /opt/runner/park.js`), and one more descriptor, a control socket on the highest descriptor
 * the job may have. The launcher runs inside the runtime before any of the job's code: it
 * says "r" on the socket once the runtime has started, waits for "g", closes the socket,
 * takes back what of it the program could see (images/javascript/park.js) and lets the
 * runtime go on to the job's entry point as it would have.
 *
 * A runtime may need a file of the job's before its launcher runs: java -jar reads the jar's
 * manifest in its C launcher, before the JVM and its agent start, and exits without it. Such
 * files (`park_file`, NAME=PATH) are put in the work dir from the image (PATH) for the
 * runtime to start with; the job's own file of that name replaces each as the run's files are
 * written, and a run that does not give them all is exec'ed. What the launcher read of the
 * placeholder must be what it would read of any job's file (images/java: the jar's manifest,
 * of which the launcher uses nothing that the compile step writes).
 *
 * The worker says which uid its next job in this sandbox will have (`park_uid`); after
 * answering a run, the supervisor parks a runtime for that uid with that run's argv,
 * environment and limits. The next run is handed to it only when it is for exactly that: the
 * same uid, argv, environment (but HOME and TMPDIR, which are the work dir), rlimits, memory
 * limit (its cell's tmpfs) and isolation, a single job, and the runtime said "r" within
 * READY_MS. Anything else and it is killed with its cell, and the job is exec'ed (why, in
 * `park_error`): a runtime started for other limits is never reused, and one runs exactly one
 * job. The job's window (run.c) opens after the claim: the runtime's start is not the job's.
 *
 * Memory: the runtime's pages are in the sandbox's cgroup before the job's window opens, as
 * a fork server's are; a job's figure is its largest process's resident pages (memory.c),
 * which for a runtime that started by itself are what they would be exec'ed. What the sandbox
 * held before the runtime was parked is the run's `before` (supervisor.c, memory_back): the
 * runtime is gone after its job, and must neither pass for memory a job gave back nor for
 * memory it kept. */
#include "supervisor.h"

/* how long a run waits for its runtime to finish starting: past this, something is wrong with
 * it, and the job is exec'ed (the worker's deadline is the job's wall limit and 5 s more) */
#define READY_MS 3000
#define KEY_SIZE 16384

/* The runtime parked now; pid 0: none. */
static struct {
    pid_t pid;
    uid_t uid;
    char workdir[64];
    cell_t cell;
    int stdin_rw;         /* its stdin file, to write the job's input into */
    int out, err, ctl;    /* our ends of its stdout, stderr and control socket */
    int errpipe;          /* why it did not start, if it did not */
    long before_kb;       /* what the sandbox held before it was parked */
    /* the files put in its work dir for it to start (park_file), and which of them the job's
     * own have replaced (a bit each) */
    char files[MAX_PARK_FILES][MAX_PART + 1];
    int nfiles, replaced;
    char key[KEY_SIZE];   /* what it was started for (key_of) */
} park = {.pid = 0, .cell = {0, -1, -1}, .stdin_rw = -1, .out = -1, .err = -1, .ctl = -1,
          .errpipe = -1};

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static int is_per_job(const char *entry) {
    return strncmp(entry, "HOME=", 5) == 0 || strncmp(entry, "TMPDIR=", 7) == 0;
}

/* A key being written (key_of): `full` once something did not fit. */
typedef struct {
    char *text;
    size_t len, size;
    int full;
} keybuf_t;

static void key_add(keybuf_t *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void key_add(keybuf_t *k, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = k->full ? 0 : vsnprintf(k->text + k->len, k->size - k->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= k->size - k->len) k->full = 1;
    else k->len += (size_t)n;
}

/* Everything a runtime is started with that a job decides, but its work dir: its uid, argv,
 * environment (HOME and TMPDIR are the work dir), launcher options, rlimits, cell size,
 * isolation. -1 when it does not fit. */
static int key_of(const job_t *job, uid_t uid, char *text, size_t size) {
    keybuf_t k = {text, 0, size, 0};
    limit_t limits[MAX_LIMITS];
    int nlimits = job_limits(job, limits);
    key_add(&k, "uid %u isolate %d mem %ld\n", (unsigned)uid, job->isolate, job->mem_kb);
    for (int i = 0; i < nlimits; i++)
        key_add(&k, "limit %d %llu %llu\n", limits[i].resource,
                (unsigned long long)limits[i].soft, (unsigned long long)limits[i].hard);
    for (int i = 0; i < job->nargs; i++) key_add(&k, "arg %s\x01", job->argv[i]);
    for (int i = 0; i < job->nenv; i++)
        if (!is_per_job(job->envp[i])) key_add(&k, "env %s\x01", job->envp[i]);
    for (int i = 0; i < job->npark; i++) key_add(&k, "park %s\x01", job->park[i]);
    for (int i = 0; i < job->npark_file; i++) key_add(&k, "file %s\x01", job->park_file[i]);
    return k.full ? -1 : 0;
}

/* Whether uid's work dir is the parked runtime's (made already: read_uid keeps it). */
int park_holds(uid_t uid) { return park.pid > 0 && park.uid == uid; }

/* The parked runtime's stdin file (a descriptor of its own) when it is uid's, else -1. */
int park_stdin(uid_t uid) { return park_holds(uid) ? dup(park.stdin_rw) : -1; }

long park_before_kb(long now_kb) { return park.pid > 0 ? park.before_kb : now_kb; }

/* Why what a thrown-away runtime left could not be removed (the sandbox is unfit), or NULL. */
static const char *left;

/* Remove (as uid) the file `name` put in the parked runtime's work dir: 0, or -1 with errno. */
static int unplace(uid_t uid, const char *name) {
    int dir = open(park.workdir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int gid_was = setfsgid(uid), uid_was = setfsuid(uid); /* a job's file is written as it */
    int gone = dir >= 0 ? unlinkat(dir, name, 0) : -1;
    int saved = errno;
    setfsuid((uid_t)uid_was);
    setfsgid((gid_t)gid_was);
    if (dir >= 0) close(dir);
    errno = saved;
    return gone;
}

/* The job's file `name` is about to be written where a file was put for uid's parked runtime
 * (the launcher read it before the runtime started: a JVM's jar manifest): that file goes, and
 * the job's takes its place. 1 if it was such a file and is gone, else 0. */
int park_replace(uid_t uid, const char *name) {
    if (!park_holds(uid)) return 0;
    for (int i = 0; i < park.nfiles; i++)
        if (!(park.replaced & (1 << i)) && strcmp(park.files[i], name) == 0) {
            if (unplace(uid, name) < 0) return 0;
            park.replaced |= 1 << i;
            return 1;
        }
    return 0;
}

/* Let go of all the parked runtime held: its cell (and with it every process in it), its
 * descriptors, and its work dir unless that is `keep_workdir`'s. */
static void park_release(uid_t keep_workdir) {
    cell_discard(&park.cell);
    /* a work dir that stays is the job's: nothing in it but what the job was given */
    for (int i = 0; park.uid && park.uid == keep_workdir && i < park.nfiles; i++)
        if (!(park.replaced & (1 << i)) && unplace(park.uid, park.files[i]) < 0 && !left)
            left = "a file put for a parked runtime could not be removed";
    park.nfiles = park.replaced = 0;
    close_fd(&park.stdin_rw);
    close_fd(&park.out);
    close_fd(&park.err);
    close_fd(&park.ctl);
    close_fd(&park.errpipe);
    if (park.uid && park.uid != keep_workdir) {
        job_t gone;
        memset(&gone, 0, sizeof gone);
        gone.uid = park.uid;
        gone.cell = (cell_t){0, -1, -1};
        snprintf(gone.workdir, sizeof gone.workdir, "%s", park.workdir);
        const char *why = wipe(&gone); /* as its uid, without a cell: nothing of it may stay */
        if (why && !left) left = why;
    }
    park.uid = 0;
    park.pid = 0;
}

/* Kill the parked runtime, if any, and let go of it (park_release). NULL, or why what it
 * left (it, or one thrown away since the last call) could not be removed. */
const char *park_drop(uid_t keep_workdir) {
    if (park.pid > 0) {
        kill(park.pid, SIGKILL);
        while (waitpid(park.pid, NULL, 0) < 0 && errno == EINTR) {}
        park_release(keep_workdir);
    }
    const char *why = left;
    left = NULL;
    return why;
}

/* Whether the parked runtime has started and waits: its "r" within READY_MS. Else why not,
 * in why. */
static int park_ready(char *why, size_t why_size) {
    struct pollfd p = {park.ctl, POLLIN, 0};
    char c = 0;
    int64_t deadline = now_us() + (int64_t)READY_MS * 1000;
    int n;
    while ((n = poll(&p, 1, (int)((deadline - now_us()) / 1000) + 1)) < 0 && errno == EINTR) {}
    if (n > 0 && recv(park.ctl, &c, 1, MSG_DONTWAIT) == 1 && c == 'r') return 1;
    char msg[128];
    ssize_t got = read(park.errpipe, msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = 0;
    snprintf(why, why_size, "the parked runtime did not start%s%.120s", got > 0 ? ": " : "", msg);
    return 0;
}

/* Hand the job to the runtime parked for it, if there is one and it was started for exactly
 * this job (see the top): its cell and pipes become the job's (run). 0 when the job is to be
 * exec'ed; why in the run's park_error when it asked to be parked and could not be. */
int park_claim(job_t *job, run_t *run, int n) {
    if (park.pid <= 0) return 0;
    char *why = run->res->park_error;
    size_t why_size = sizeof run->res->park_error;
    static char key[KEY_SIZE];
    if (n != 1 || job->npark == 0) snprintf(why, why_size, "the run is not for a parked runtime");
    else if (job->uid != park.uid) snprintf(why, why_size, "the run's uid is not the parked one's");
    else if (job->stdin_fd < 0) snprintf(why, why_size, "the run has no stdin");
    else if (key_of(job, job->uid, key, sizeof key) < 0 || strcmp(key, park.key) != 0)
        snprintf(why, why_size, "parked for another argv, environment or limits");
    else if (park.replaced != (1 << park.nfiles) - 1)
        snprintf(why, why_size, "the run did not give the files its runtime was parked with");
    else if (park_ready(why, why_size)) {
        job->cell = park.cell;
        job->ctl_fd = park.ctl;
        run->out = park.out, run->err = park.err;
        run->pid = park.pid;
        close_fd(&park.stdin_rw);
        close_fd(&park.errpipe);
        park.cell = (cell_t){0, -1, -1};
        park.out = park.err = park.ctl = -1;
        park.pid = 0;
        park.uid = 0;
        park.nfiles = park.replaced = 0;
        return 1;
    }
    if (job->npark == 0) why[0] = 0; /* not the job's concern: it asked for none */
    park_drop(job->uid);
    return 0;
}

/* The job's window is open: its runtime goes. Its pid, or -1 (it is gone: the job did not
 * start). */
pid_t park_go(run_t *run) {
    job_t *job = run->job;
    pid_t pid = run->pid;
    int sent = send(job->ctl_fd, "g", 1, MSG_NOSIGNAL) == 1;
    close_fd(&job->ctl_fd);
    if (sent) return pid;
    snprintf(run->res->exec_error, sizeof run->res->exec_error,
             "the parked runtime was gone at its job's start");
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return -1;
}

/* The next job's: `done`'s argv with the launcher options after argv[0], its environment
 * with the next job's HOME and TMPDIR, its limits, the next uid and its work dir. Borrows
 * done's strings; envp's per-job entries are in `home` and `tmpdir`. */
static void next_job(const job_t *done, job_t *next, char home[96], char tmpdir[96]) {
    memset(next, 0, sizeof *next);
    next->uid = done->park_uid;
    next->cpu_ms = done->cpu_ms, next->mem_kb = done->mem_kb, next->procs = done->procs;
    next->fsize_kb = done->fsize_kb, next->nofile = done->nofile, next->stack_kb = done->stack_kb;
    next->isolate = done->isolate;
    next->cell = (cell_t){0, -1, -1};
    next->stdin_fd = -1;
    next->ctl_fd = -1;
    snprintf(next->workdir, sizeof next->workdir, "%s/%u", BOX_ROOT, (unsigned)next->uid);
    next->argv[next->nargs++] = done->argv[0];
    for (int i = 0; i < done->npark && next->nargs < MAX_ARGS; i++)
        next->argv[next->nargs++] = done->park[i];
    for (int i = 1; i < done->nargs && next->nargs < MAX_ARGS; i++)
        next->argv[next->nargs++] = done->argv[i];
    for (int i = 0; i < done->nenv; i++)
        if (!is_per_job(done->envp[i])) next->envp[next->nenv++] = done->envp[i];
    snprintf(home, 96, "HOME=%s", next->workdir);
    snprintf(tmpdir, 96, "TMPDIR=%s", next->workdir);
    next->envp[next->nenv++] = home;
    next->envp[next->nenv++] = tmpdir;
}

/* done's park files put in the parked runtime's work dir, as uid: 0, or -1. Each counts as
 * put from the moment it may exist, so that a release removes it whatever failed. */
static int place_files(const job_t *done, uid_t uid) {
    for (int i = 0; i < done->npark_file; i++) {
        const char *spec = done->park_file[i], *eq = strchr(spec, '=');
        snprintf(park.files[i], sizeof park.files[i], "%.*s", (int)(eq - spec), spec);
        park.nfiles = i + 1;
        int from = open(eq + 1, O_RDONLY | O_CLOEXEC);
        setfsgid(uid);
        setfsuid(uid);
        int to = from < 0 ? -1
                          : open_beneath(park.workdir, park.files[i], O_WRONLY | O_CREAT | O_EXCL,
                                         0644, 0);
        setfsuid(geteuid());
        setfsgid(getegid());
        char buf[16384];
        ssize_t n = 0;
        while (to >= 0 && (n = read(from, buf, sizeof buf)) != 0)
            if ((n < 0 && errno != EINTR) || (n > 0 && write_all(to, buf, (size_t)n) < 0)) break;
        int failed = to < 0 || n != 0 || close(to) < 0;
        if (from >= 0) close(from);
        if (failed) return -1;
    }
    return 0;
}

/* After `done`'s run was answered (handle_run dropped any runtime it did not take): a runtime
 * parked for the next job (done->park_uid), as done's was started. Whatever fails leaves none
 * parked: the next job is exec'ed. */
void park_next(const job_t *done) {
    job_t next;
    char home[96], tmpdir[96], why[160];
    if (done->nargs + done->npark > MAX_ARGS) return;
    next_job(done, &next, home, tmpdir);
    if (key_of(done, next.uid, park.key, sizeof park.key) < 0) return;
    park.before_kb = held_by_jobs_kb(server_process());
    if (workdir_make(&next)) return;
    park.uid = next.uid;
    snprintf(park.workdir, sizeof park.workdir, "%s", next.workdir);
    if (place_files(done, next.uid) < 0) {
        park_release((uid_t)-1);
        return;
    }

    int stdin_ro = -1, out[2] = {-1, -1}, err[2] = {-1, -1}, errpipe[2] = {-1, -1}, ctl[2] = {-1, -1};
    park.stdin_rw = stdin_file(next.uid, &stdin_ro);
    setfsuid(next.uid); /* the job's own pipes, as on the exec path (run.c, open_pipes) */
    int failed = park.stdin_rw < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0;
    setfsuid(geteuid());
    failed = failed || pipe2(errpipe, O_CLOEXEC) < 0 ||
             socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0;
    failed = failed || (next.isolate && cell_open(&next, &next.cell, why, sizeof why) < 0);
    pid_t pid = -1;
    if (!failed) {
        int fds[4] = {stdin_ro, out[1], err[1], errpipe[1]};
        int64_t starter_ns = 0;
        next.ctl_fd = ctl[1];
        pid = spawn_exec(&next, fds, &next.cell, &starter_ns);
    }
    park.out = out[0], park.err = err[0], park.errpipe = errpipe[0], park.ctl = ctl[0];
    park.cell = next.cell;
    int theirs[5] = {stdin_ro, out[1], err[1], errpipe[1], ctl[1]};
    for (int i = 0; i < 5; i++) close_fd(&theirs[i]);
    park.pid = pid > 0 ? pid : 0;
    if (pid <= 0) park_release((uid_t)-1);
}
