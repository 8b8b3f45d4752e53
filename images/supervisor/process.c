/* A job's processes: finding, killing and reaping them; cleaning up after the job. */
#include "supervisor.h"

/* ------------------------------------------------------------------ process bookkeeping */

/* /proc/PID/NAME into buf, NUL-terminated; the length read, or -1. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

#define MAX_SCAN 1024

/* Every live process of uid, by scanning /proc: kills them (do_kill), or measures them. The
 * count is returned; with scan, their CPU ticks and memory (memory.c) are filled in: the
 * largest process's resident pages, and with `detail` (a pair's partner, memory.c) what only
 * each other maps, read from their smaps_rollup. A job's own processes are never read that
 * way: its cost grows with the mappings a job makes, and the sandbox's cgroup counts their
 * pages anyway. */
int scan_uid(uid_t uid, int do_kill, scan_t *scan, int detail) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int count = 0;
    long long ticks = 0;
    long anon = 0;
    static pid_t pids[MAX_SCAN];
    static long resident[MAX_SCAN];
    int largest = -1;
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
        if (!scan) continue;
        char line[1024];
        char *p = read_proc(pid, "stat", line, sizeof line) > 0 ? strrchr(line, ')') : NULL;
        unsigned long long ut = 0, stt = 0;
        /* fields after the command: state ppid ... utime(14) stime(15) */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                        &ut, &stt) == 2)
            ticks += (long long)(ut + stt);
        if (count <= MAX_SCAN) {
            int i = count - 1;
            pids[i] = pid;
            long own_anon;
            resident[i] = proc_resident_kb(pid, &own_anon);
            anon += own_anon;
            if (largest < 0 || resident[i] > resident[largest]) largest = i;
        }
    }
    closedir(d);
    if (scan) {
        scan->count = count;
        scan->ticks = ticks;
        scan->anon_kb = anon;
        /* the largest process whole; with detail, the others by what only they map, and with
         * three processes or more at least their proportional shares (pages only smaller
         * ones share count once) */
        long kb = largest >= 0 && resident[largest] > 0 ? resident[largest] : 0, shares = 0;
        int n = detail ? (count < MAX_SCAN ? count : MAX_SCAN) : 0;
        int pss = n >= 3;
        for (int i = 0; i < n; i++) {
            long only, share;
            if (i == largest && !pss) continue;
            proc_rollup(pids[i], &only, &share);
            if (i != largest) kb += only;
            shares += share;
        }
        scan->resident_kb = pss && shares > kb ? shares : kb;
    }
    return count;
}

/* The jobs of the run under way (run.c), whose reaped processes are counted. */
static run_t *watched;
static int nwatched;

void watch(run_t *runs, int n) {
    watched = runs;
    nwatched = n;
}

/* A reaped process's CPU time and peak go to its job's result. */
void account(run_t *run, const struct rusage *ru) {
    result_t *res = run->res;
    res->cpu_us += (int64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec +
                   (int64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
    if (ru->ru_maxrss > res->maxrss_kb) res->maxrss_kb = ru->ru_maxrss;
}

/* Whose a reaped child was: a job's main process or its cell's init by pid, else (an orphan
 * reparented to us, as without cells) by its uid; the only job's, in a single run. */
static run_t *job_of(pid_t pid, uid_t uid) {
    for (int i = 0; i < nwatched; i++)
        if (pid == watched[i].pid || pid == watched[i].job->cell.pid) return &watched[i];
    for (int i = 0; i < nwatched; i++)
        if (uid == watched[i].job->uid) return &watched[i];
    return nwatched == 1 ? &watched[0] : NULL;
}

/* Reap every exited child (the jobs' main processes and orphans reparented to us), each
 * counted for its job; with `until`, first wait until that job's main process is reaped. The
 * fork server is a child too, but no job's: its end is noted, not counted. */
void reap(run_t *until) {
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        int wait = until && until->pid > 0 && until->status < 0;
        /* looked at before it is reaped: its uid says whose it is */
        if (waitid(P_ALL, 0, &si, WEXITED | WNOWAIT | (wait ? 0 : WNOHANG)) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (si.si_pid <= 0) return;
        int status;
        struct rusage ru;
        while (wait4(si.si_pid, &status, 0, &ru) < 0 && errno == EINTR) {}
        if (is_server(si.si_pid)) {
            server_gone();
            continue;
        }
        if (idle_cell_reaped(si.si_pid)) continue; /* no job's */
        run_t *run = job_of(si.si_pid, si.si_uid);
        if (!run) continue;
        account(run, &ru);
        if (si.si_pid == run->pid) run->status = status;
    }
}

/* Kill every process of uid and reap them; 0 when none is left. */
int kill_uid(uid_t uid) {
    for (int round = 0; round < KILL_ROUNDS; round++) {
        int alive = scan_uid(uid, 1, NULL, 0);
        reap(NULL);
        if (alive == 0) return 0;
        if (round > 2) usleep(1000);
    }
    return scan_uid(uid, 0, NULL, 0) == 0 ? 0 : -1;
}

/* Container-wide OOM kills so far (cgroup v1 memory.oom_control, or v2 memory.events). */
long oom_kills(void) {
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

/* After the job: its work dir gone, nothing of it left anywhere. In a cell, the cell's init
 * empties the work dir, and the job could reach nothing else: anything of its outside means
 * the cell leaked, and is only looked for (the second line). Without a cell (or before one
 * was made), a child that becomes the job's uid removes it all (root here lacks
 * CAP_DAC_OVERRIDE). NULL when clean. */
const char *wipe(job_t *job) {
    if (job->isolate && job->cell.pid > 0) {
        if (cell_end(&job->cell) < 0 || rmdir(job->workdir) < 0)
            return "work dir not empty after the job's cell ended";
        reap(NULL); /* whatever of the job's was our child, gone with its cell */
        if (owned_outside(job->uid, 0) != 0)
            return "the job left files or SysV IPC objects outside its cell";
        if (scan_uid(job->uid, 0, NULL, 0) != 0) {
            kill_uid(job->uid);
            return "processes of the job outlived its cell";
        }
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) return "fork for wipe failed";
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(job->uid, job->uid, job->uid) < 0 ||
            setresuid(job->uid, job->uid, job->uid) < 0)
            _exit(3);
        int fd = open(job->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || rm_tree_at(fd) < 0) _exit(4);
        _exit(owned_outside(job->uid, 1) < 0 ? 5 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 5) return "files or SysV IPC objects left that could not be removed";
    if (code != 0) return "work dir wipe failed";
    if (rmdir(job->workdir) < 0) return "work dir not empty after wipe";
    if (kill_uid(job->uid) < 0) return "processes survived the wipe";
    return NULL;
}
