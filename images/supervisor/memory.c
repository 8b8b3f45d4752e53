/* A job's memory, as the kernel sees it: every page it causes, each counted once.
 *
 *   memory = shmem + max(resident, created)
 *
 * shmem: what the sandbox's memory cgroup holds in shared memory beyond what it held when the
 *   job started: files on tmpfs (its work dir, its /tmp and /dev/shm), SysV segments whether
 *   attached or not, and shared anonymous mappings. The cgroup charges each page once, however
 *   many processes map it, and whether anything maps it at all.
 * resident: the job's processes, without shmem (counted above): the largest process's
 *   anonymous and file-backed resident pages (what `ru_maxrss` counts for one process), plus
 *   the pages only each other process maps (its private pages): a page shared between forked
 *   processes counts once. A job forked from a started interpreter counts the interpreter's
 *   pages it maps, as the same program started the plain way would.
 * created: anonymous pages the cgroup gained during the job, less the supervisor's own
 *   buffers for the job's output. A floor under `resident`: pages shared among several
 *   processes none of which is the largest are in it.
 *
 * Page cache of files the job only reads (its binary, the image's libraries) and kernel
 * memory are not counted, as with `ru_maxrss`. */
#include "supervisor.h"

static const char *const STAT_FILES[] = {
    "/sys/fs/cgroup/memory/memory.stat", /* cgroup v1: the container's own group */
    "/sys/fs/cgroup/memory.stat",        /* cgroup v2 with a private cgroup namespace */
};

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

int memcg_read(memcg_t *m) {
    static int which = -1; /* the stat file found the first time */
    char text[8192];
    for (size_t i = 0; i < sizeof STAT_FILES / sizeof *STAT_FILES; i++) {
        if (which >= 0 && (size_t)which != i) continue;
        int fd = open(STAT_FILES[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t len = read(fd, text, sizeof text - 1);
        close(fd);
        text[len > 0 ? len : 0] = 0;
        /* v1 names anonymous memory "rss", v2 "anon" */
        long long anon = stat_value(text, "rss");
        if (anon < 0) anon = stat_value(text, "anon");
        long long shmem = stat_value(text, "shmem");
        if (anon < 0 || shmem < 0) continue;
        which = (int)i;
        m->anon_kb = (long)(anon / 1024);
        m->shmem_kb = (long)(shmem / 1024);
        return 0;
    }
    return -1;
}

/* Sum of "Name: N kB" lines of a /proc file for each name given (NULL-terminated). */
static long proc_kb(pid_t pid, const char *file, const char *const *names) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    long total = 0, v;
    while (fgets(line, sizeof line, f)) {
        for (const char *const *name = names; *name; name++) {
            size_t n = strlen(*name);
            if (strncmp(line, *name, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%ld", &v) == 1)
                total += v;
        }
    }
    fclose(f);
    return total;
}

/* Anonymous and file-backed resident pages of one process (shmem is counted elsewhere). */
long proc_resident_kb(pid_t pid) {
    static const char *const names[] = {"RssAnon", "RssFile", NULL};
    return proc_kb(pid, "status", names);
}

/* The pages only this process maps, without shmem. smaps_rollup gives private pages of every
 * kind; its private shmem pages are at most its proportional shmem share, taken off here. */
long proc_private_kb(pid_t pid) {
    static const char *const priv[] = {"Private_Clean", "Private_Dirty", NULL};
    static const char *const shm[] = {"Pss_Shmem", NULL};
    long p = proc_kb(pid, "smaps_rollup", priv);
    if (p < 0) return 0;
    long s = proc_kb(pid, "smaps_rollup", shm);
    return p > s && s >= 0 ? p - s : p > 0 && s < 0 ? p : 0;
}

long job_memory_kb(long resident_kb, const memcg_t *base, long own_kb) {
    memcg_t now;
    if (memcg_read(&now) < 0) return resident_kb;
    long shmem = now.shmem_kb - base->shmem_kb;
    long created = now.anon_kb - base->anon_kb - own_kb;
    long processes = resident_kb > created ? resident_kb : created;
    return (shmem > 0 ? shmem : 0) + processes;
}
