/* The kernel's ledger: what the sandbox's own cgroup was charged while a job ran.
 *
 * Why: a sandbox runs one job (or one pair) at a time, so its cgroup, which the kernel charges
 * for every process in it however it was spawned, reaped or parked, is the job's ledger. What
 * processes show (wait4's rusage, /proc) misses whatever the kernel holds for a job or a
 * process it reaps by itself: children of a parent that ignores SIGCHLD are reaped by the
 * kernel and their CPU reaches no ancestor's rusage; data parked in pipes, SysV message
 * queues, socket buffers or extended attributes is kernel memory no process maps.
 *
 * CPU: the cgroup's CPU time (cgroup v1 cpuacct.usage, v2 cpu.stat usage_usec) gained during
 * the job, less the supervisor's own (its schedstat runtime, which the kernel updates at the
 * same moments as the cgroup's: the two agree to the nanosecond) and the processes that
 * started the job (the exec path's intermediate child, the fork server's). What else runs in
 * the sandbox during a job does so for it: the job's processes, the kernel's work in them, and
 * its cell's init reaping its orphans. A fork server that has to start during a run starts
 * before the job's window opens.
 *
 * Memory: the cgroup's usage (v1 memory.usage_in_bytes, v2 memory.current, both including the
 * kernel's own memory: page tables, pipe and socket buffers, message queues, xattrs, slab)
 * less the page cache of regular files, which on a read-only root can only be the image's
 * files the job reads (its own files are on tmpfs, shmem, and stay counted). A job cannot
 * put data anywhere this leaves out. TCP and UDP buffers are not charged on cgroup v1, so a
 * job may create no socket but a Unix one (its seccomp filter, cell.c).
 *
 * Its peak: where the worker delegates the sandbox's memory cgroup (a host directory of
 * cgroup v1's memory hierarchy bound at PEAK_DIR, the parent of the sandbox's own cgroup), the
 * supervisor opens its own cgroup's memory.max_usage_in_bytes while it is still root and keeps
 * it: it resets it for each run, and the kernel then keeps the exact high-water mark of the
 * run, however briefly a job held its memory. Elsewhere (cgroup v2, the systemd driver) the
 * peak is what the looks saw, every 10 ms and at the job's end.
 *
 * The sandbox's memory limit is not lowered to a run's: memory a job leaves in the kernel when
 * its processes are gone (message queues, files in its cell's tmpfs) is freed only when its
 * cell ends, and until then the supervisor, the fork server and the cell's init would have to
 * allocate under that limit, where the OOM killer finds no job process left to take. The
 * kernel holds the sandbox to its own ceiling; a job is ended at the first look past its
 * limit, and a burst between two looks is in the high-water mark. */
#include "supervisor.h"

#define NO_FILE -2 /* not looked for yet */
#define PEAK_DIR "/run/runner/memory"

static int cpu_fd = NO_FILE, usage_fd = NO_FILE, stat_fd = NO_FILE;
static int cpu_v2, mem_v2;
static int peak_fd = -1;

static int open_first(const char *const *paths, int count, int *which) {
    for (int i = 0; i < count; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            *which = i;
            return fd;
        }
    }
    return -1;
}

/* The cgroup files, opened once and read with pread from then on. NULL, or what is missing. */
const char *ledger_open(void) {
    static const char *const cpu[] = {
        "/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage",
        "/sys/fs/cgroup/cpuacct,cpu/cpuacct.usage", "/sys/fs/cgroup/cpu.stat"};
    static const char *const usage[] = {"/sys/fs/cgroup/memory/memory.usage_in_bytes",
                                        "/sys/fs/cgroup/memory.current"};
    static const char *const stat[] = {"/sys/fs/cgroup/memory/memory.stat",
                                       "/sys/fs/cgroup/memory.stat"};
    if (cpu_fd == NO_FILE) {
        int which = 0;
        cpu_fd = open_first(cpu, 4, &which);
        cpu_v2 = which == 3;
        usage_fd = open_first(usage, 2, &which);
        mem_v2 = which == 1;
        stat_fd = open_first(stat, 2, &which);
    }
    if (cpu_fd < 0) return "the sandbox's cgroup CPU accounting cannot be read";
    if (usage_fd < 0 || stat_fd < 0) return "the sandbox's cgroup memory accounting cannot be read";
    return NULL;
}

static ssize_t read_at(int fd, char *buf, size_t size) {
    ssize_t n = pread(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

/* The value of "key N" at the start of a line of text, or -1. */
static long long stat_value(const char *text, const char *key) {
    size_t n = strlen(key);
    for (const char *line = text; *line;) {
        if (strncmp(line, key, n) == 0 && line[n] == ' ') return atoll(line + n + 1);
        const char *next = strchr(line, '\n');
        if (!next) break;
        line = next + 1;
    }
    return -1;
}

int64_t ledger_cpu_ns(void) {
    char text[1024];
    if (cpu_fd < 0 || read_at(cpu_fd, text, sizeof text) <= 0) return 0;
    return cpu_v2 ? stat_value(text, "usage_usec") * 1000 : atoll(text);
}

/* The sandbox's memory now: its usage, anonymous, shared and page-cache memory (memory.stat)
 * and, where it is delegated, its peak since the run began (-1 elsewhere). -1 when it cannot
 * be read. */
int memcg_read(memcg_t *m) {
    char text[8192], usage[64];
    if (usage_fd < 0 || stat_fd < 0 || read_at(usage_fd, usage, sizeof usage) <= 0 ||
        read_at(stat_fd, text, sizeof text) <= 0)
        return -1;
    /* v1 names anonymous memory "rss" and page cache "cache", v2 "anon" and "file"; page
     * cache includes shmem in both, which stays counted */
    long long anon = stat_value(text, mem_v2 ? "anon" : "rss");
    long long file = stat_value(text, mem_v2 ? "file" : "cache");
    long long shmem = stat_value(text, "shmem");
    if (anon < 0 || file < 0 || shmem < 0) return -1;
    m->usage_kb = (long)(atoll(usage) / 1024);
    m->anon_kb = (long)(anon / 1024);
    m->shmem_kb = (long)(shmem / 1024);
    m->file_kb = (long)(file / 1024);
    m->peak_kb = peak_fd >= 0 && read_at(peak_fd, usage, sizeof usage) > 0 ? (long)(atoll(usage) / 1024) : -1;
    return 0;
}

/* As root, at start: the delegated high-water mark (see the top), when the worker bound it. */
void peak_open(void) {
    char line[512], path[600];
    FILE *f = fopen("/proc/self/cgroup", "re");
    const char *id = NULL;
    while (f && fgets(line, sizeof line, f)) {
        char *controllers = strchr(line, ':'), *where = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!where || strncmp(controllers, ":memory:", 8) != 0) continue;
        where[strcspn(where, "\n")] = 0;
        id = strrchr(where, '/'); /* the sandbox's cgroup: a child of the delegated one */
        break;
    }
    if (f) fclose(f);
    if (!id || !id[1]) return;
    snprintf(path, sizeof path, "%s/%s/memory.max_usage_in_bytes", PEAK_DIR, id + 1);
    peak_fd = open(path, O_RDWR | O_CLOEXEC);
}

/* "exact" where the peak is the kernel's high-water mark, "sampled" where it is the looks'. */
const char *peak_kind(void) { return peak_fd >= 0 ? "exact" : "sampled"; }

/* A run begins: the high-water mark starts again from what the sandbox holds now. */
void peak_start(void) {
    if (peak_fd >= 0 && pwrite(peak_fd, "0", 1, 0) < 0) {}
}

/* This process's CPU time as the scheduler charged it (its schedstat runtime). */
int64_t self_cpu_ns(void) {
    static int fd = -1;
    char text[128];
    if (fd < 0) fd = open("/proc/self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read_at(fd, text, sizeof text) <= 0) return 0;
    return atoll(text);
}
