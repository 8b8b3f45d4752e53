/* A job's memory: the larger of what its processes show and what the kernel charged the
 * sandbox for it (ledger.c), each page counted once. A job that runs alone (a pair's are
 * below):
 *
 *   memory = max(shmem + max(resident, created), charged)
 *
 * shmem: what the sandbox's memory cgroup holds in shared memory beyond what it held when the
 *   job started: files on tmpfs (its work dir, its /tmp and /dev/shm), SysV segments whether
 *   attached or not, and shared anonymous mappings. The cgroup charges each page once, however
 *   many processes map it, and whether anything maps it at all.
 * resident: the largest process's anonymous and file-backed resident pages, without shmem
 *   (counted above): what `ru_maxrss` counts for one process. A job forked from a started
 *   interpreter counts the interpreter's pages it maps, as the same program started the plain
 *   way would.
 * created: anonymous pages the cgroup gained during the job, less the supervisor's own
 *   buffers for the job's output: the other processes' pages, a page shared between forked
 *   processes once.
 * charged: all the cgroup gained during the job but the page cache of the image's files
 *   (ledger.c): the job's anonymous and shared memory and the kernel's memory for it (page
 *   tables, kernel stacks, pipe and Unix socket buffers, SysV message queues, extended
 *   attributes...), less the supervisor's own buffers; plus what the job removed of the files
 *   it was given (they were in the sandbox's memory as it started: truncating them must not
 *   make room for other data). Whatever a process hides from /proc (kernel-held data, a
 *   process that made itself undumpable) is here. Where the kernel keeps the run's
 *   high-water mark (ledger.c), its rise counts too, less the page cache of regular files
 *   read since the run began: memory held between two looks is not missed.
 * For an honest program `charged` is the smaller: a process's resident pages include the
 * library and interpreter pages it maps, which the cgroup charged earlier (or to the fork
 * server), so the figure is the one `ru_maxrss` would give; `charged` decides only when the
 * kernel holds more for the job than its processes map.
 *
 * A pair's two jobs (run.c: a contestant's program and the problem's interactor, say) share
 * the sandbox's cgroup, whose figures then mix them. Each is counted instead as
 *
 *   job     = max((shmem - partner's shmem) + resident, charged - partner's)
 *   partner = partner's shmem + resident
 *
 * partner's shmem: the shared memory that can be told apart as the partner's: its cell's
 *   /tmp and /dev/shm (tmpfs mounts of its own, measured with statfs through its cell's root)
 *   and the files it is to hand back (`collect`), which is where an interactor keeps what it
 *   writes. Any other shared memory it made (SysV segments, shared mappings, other files in
 *   its work dir) is counted as the job's: the partner is the problem's own program, which
 *   holds none of that, and a contestant's job cannot pass its own shared memory off as the
 *   partner's, since each runs under its own uid in a cell of its own.
 * resident: the job's, the largest process's as above (what the cgroup's anonymous pages
 *   gained is both jobs': the job's other processes are in `charged`, less the partner's).
 *   The partner's, the problem's own program, which hides nothing and whose mappings are its
 *   author's: the largest process's plus what only each other maps, and with three processes
 *   or more at least the sum of their proportional resident pages (Pss without shmem), which
 *   counts a page several of its processes share once.
 * partner's (in `charged`): its shmem as above and the anonymous pages of its processes; the
 *   kernel's few pages for the partner's own processes count as the job's. A pair's
 *   `charged` is what the looks saw: the high-water mark is both jobs' at a moment when
 *   the partner's share is not known.
 * So a contestant's verdict does not depend on what an interactor holds in its heap, its /tmp
 * or its result file, and nothing the job holds counts for the partner (it cannot reach the
 * partner's mounts or work dir). */
#include "supervisor.h"

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

/* Anonymous and file-backed resident pages of one process (shmem is counted elsewhere); its
 * anonymous ones alone into *anon_kb. */
long proc_resident_kb(pid_t pid, long *anon_kb) {
    static const char *const names[] = {"RssAnon", "RssFile", NULL};
    long kb[2];
    *anon_kb = 0;
    if (proc_kb(pid, "status", names, kb) < 0) return -1;
    *anon_kb = kb[0];
    return kb[0] + kb[1];
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

/* What the sandbox holds that a run of jobs may change and must give back: all its cgroup
 * holds (ledger.c) but the page cache of regular files and the anonymous memory of the
 * sandbox's own processes: the supervisor's buffers, and `server`'s (the fork server's pid,
 * server.c, server_process; 0 when there is none). Its kernel memory is in it: a cell's
 * namespaces and whatever they held, dentries... -1 when it cannot be read. */
long held_by_jobs_kb(pid_t server) {
    memcg_t m;
    if (memcg_read(&m) < 0) return -1;
    long own_anon = 0, server_anon = 0;
    proc_resident_kb(getpid(), &own_anon);
    if (server > 0) proc_resident_kb(server, &server_anon);
    return m.usage_kb - (m.file_kb - m.shmem_kb) - own_anon - server_anon;
}

/* `charged` above: what the cgroup gained since base (now, or at its high-water mark when
 * `peak`), less `own_kb` (the supervisor's) and `other_kb` (a pair's partner's), plus
 * `given_kb` (what the job removed of its files). */
static long charged_kb(const memcg_t *now, const memcg_t *base, long own_kb, long other_kb,
                       long given_kb, int peak) {
    long regular_now = now->file_kb - now->shmem_kb, regular_base = base->file_kb - base->shmem_kb;
    long held = (now->usage_kb - regular_now) - (base->usage_kb - regular_base);
    if (peak && now->peak_kb >= 0) {
        long read = regular_now - regular_base;
        long peak = now->peak_kb - base->usage_kb - (read > 0 ? read : 0);
        if (peak > held) held = peak;
    }
    return held - own_kb - other_kb + given_kb;
}

long job_memory_kb(long resident_kb, const memcg_t *base, long own_kb, long given_kb) {
    memcg_t now;
    if (memcg_read(&now) < 0) return resident_kb;
    long shmem = now.shmem_kb - base->shmem_kb;
    long created = now.anon_kb - base->anon_kb - own_kb;
    long processes = resident_kb > created ? resident_kb : created;
    long shown = (shmem > 0 ? shmem : 0) + processes;
    long charged = charged_kb(&now, base, own_kb, 0, given_kb, 1);
    return charged > shown ? charged : shown;
}

/* A pair's job's memory, or its partner's (see above); base NULL: no cgroup figures here.
 * partner: the partner's shmem and anonymous memory (its `charged` share). */
long pair_memory_kb(const job_t *job, long resident_kb, const memcg_t *base,
                    const pair_share_t *partner, const job_t *partner_job, long own_kb,
                    long given_kb) {
    memcg_t now;
    if (job->partner) return partner->shmem_kb + resident_kb;
    if (!base || memcg_read(&now) < 0) return resident_kb;
    /* The partner's shmem as its last look saw it or as it is now, after `now` was read,
     * whichever is more: a file it writes (or removes) between its look and this one is in
     * `now` up to the larger of the two, and is never the job's. */
    long partner_shmem = partner->shmem_kb;
    long fresh = partner_job ? partner_shmem_kb(partner_job) : 0;
    if (fresh > partner_shmem) partner_shmem = fresh;
    long shmem = now.shmem_kb - base->shmem_kb - partner_shmem;
    long shown = (shmem > 0 ? shmem : 0) + resident_kb;
    /* the partner's share is known at each look, not at the high-water mark's moment */
    long charged =
        charged_kb(&now, base, own_kb, partner_shmem + partner->anon_kb, given_kb, 0);
    return charged > shown ? charged : shown;
}

/* What the job removed of the files it was given: the blocks each has lost since it was
 * written. A file it unlinked stays as it was (the supervisor holds it). */
long given_removed_kb(const job_t *job) {
    long kb = 0;
    for (int i = 0; i < job->ngiven; i++) {
        struct stat st;
        if (fstat(job->given[i], &st) == 0 && st.st_blocks < job->given_blocks[i])
            kb += (job->given_blocks[i] - (long)st.st_blocks) / 2;
    }
    return kb;
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
