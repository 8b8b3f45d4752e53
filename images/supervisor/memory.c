/* A job's memory, as the kernel sees it: every page it causes, each counted once. A job that
 * runs alone (a pair's are below):
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
 * memory are not counted, as with `ru_maxrss`.
 *
 * A pair's two jobs (run.c: a contestant's program and the problem's interactor, say) share
 * the sandbox's cgroup, whose figures then mix them. Each is counted instead as
 *
 *   job     = (shmem - partner's shmem) + resident
 *   partner = partner's shmem + resident
 *
 * partner's shmem: the shared memory that can be told apart as the partner's: its cell's
 *   /tmp and /dev/shm (tmpfs mounts of its own, measured with statfs through its cell's root)
 *   and the files it is to hand back (`collect`), which is where an interactor keeps what it
 *   writes. Any other shared memory it made (SysV segments, shared mappings, other files in
 *   its work dir) is counted as the job's: the partner is the problem's own program, which
 *   holds none of that, and a contestant's job cannot pass its own shared memory off as the
 *   partner's, since each runs under its own uid in a cell of its own.
 * resident: per uid as above; what the cgroup's anonymous pages gained is both jobs', so the
 *   floor under it is taken per job instead: the sum of its processes' proportional resident
 *   pages (Pss without shmem), which counts a page several of its processes share once, whether
 *   or not the largest maps it. It is read only for a job of three processes or more: of two,
 *   the larger maps whatever they share. Pages shared with the fork server count in part there,
 *   whole in the largest process's resident pages.
 * So a contestant's verdict does not depend on what an interactor holds in its heap, its /tmp
 * or its result file, and nothing the job holds counts for the partner (it cannot reach the
 * partner's mounts or work dir). */
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

/* The "Name: N kB" lines of a /proc file, into kb[i] for each names[i] (NULL-terminated), in
 * one read; -1 when the file cannot be read. */
static int proc_kb(pid_t pid, const char *file, const char *const *names, long *kb) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    for (int i = 0; names[i]; i++) kb[i] = 0;
    long v;
    while (fgets(line, sizeof line, f)) {
        for (int i = 0; names[i]; i++) {
            size_t n = strlen(names[i]);
            if (strncmp(line, names[i], n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%ld", &v) == 1)
                kb[i] += v;
        }
    }
    fclose(f);
    return 0;
}

/* Anonymous and file-backed resident pages of one process (shmem is counted elsewhere). */
long proc_resident_kb(pid_t pid) {
    static const char *const names[] = {"RssAnon", "RssFile", NULL};
    long kb[2];
    return proc_kb(pid, "status", names, kb) < 0 ? -1 : kb[0] + kb[1];
}

/* From one read of smaps_rollup, both without shmem: the pages only this process maps, and
 * its proportional share of all it maps. Its private pages are of every kind; its private
 * shmem pages are at most its proportional shmem share, taken off. */
void proc_rollup(pid_t pid, long *private_kb, long *pss_kb) {
    static const char *const names[] = {"Private_Clean", "Private_Dirty", "Pss_Shmem",
                                        "Pss_Anon", "Pss_File", NULL};
    long kb[5];
    *private_kb = *pss_kb = 0;
    if (proc_kb(pid, "smaps_rollup", names, kb) < 0) return;
    long only = kb[0] + kb[1];
    *private_kb = only > kb[2] ? only - kb[2] : 0;
    *pss_kb = kb[3] + kb[4];
}

long job_memory_kb(long resident_kb, const memcg_t *base, long own_kb) {
    memcg_t now;
    if (memcg_read(&now) < 0) return resident_kb;
    long shmem = now.shmem_kb - base->shmem_kb;
    long created = now.anon_kb - base->anon_kb - own_kb;
    long processes = resident_kb > created ? resident_kb : created;
    return (shmem > 0 ? shmem : 0) + processes;
}

/* A pair's job's memory, or its partner's (see above); base NULL: no cgroup figures here. */
long pair_memory_kb(const job_t *job, long resident_kb, const memcg_t *base, long partner_shmem_kb) {
    memcg_t now;
    if (job->partner) return partner_shmem_kb + resident_kb;
    if (!base || memcg_read(&now) < 0) return resident_kb;
    long shmem = now.shmem_kb - base->shmem_kb - partner_shmem_kb;
    return (shmem > 0 ? shmem : 0) + resident_kb;
}

/* The shared memory that is a pair's partner's own (see above). Its collected files are
 * looked at as it (its work dir lets no other uid in). */
long partner_shmem_kb(const job_t *partner) {
    static const char *const mounts[] = {"tmp", "dev/shm"};
    long kb = 0;
    for (size_t i = 0; partner->cell.pid > 0 && i < sizeof mounts / sizeof *mounts; i++) {
        char path[64];
        struct statfs fs;
        snprintf(path, sizeof path, "/proc/%d/root/%s", (int)partner->cell.pid, mounts[i]);
        if (statfs(path, &fs) == 0) kb += (long)((fs.f_blocks - fs.f_bfree) * fs.f_bsize / 1024);
    }
    setfsuid(partner->uid);
    for (int i = 0; i < partner->ncollect; i++) {
        struct stat st;
        int fd = open_beneath(partner->workdir, partner->collect[i], O_PATH, 0, 0);
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) kb += (long)st.st_blocks / 2;
        if (fd >= 0) close(fd);
    }
    setfsuid(geteuid());
    return kb;
}
