/* A job's files in the sandbox: its work dir and stdin file, made before it runs (for a
 * runtime parked for it too, park.c), and what it may leave behind, found and removed after it
 * (process.c, wipe; a cell's init, cell.c): a directory tree however deep, its files in /tmp
 * and /dev/shm, its SysV IPC objects. Calls nothing of the other files (see supervisor.h). */
#include "supervisor.h"

/* ------------------------------------------------------------------ before the job */

/* The job's work dir, empty: NULL, or why not. */
const char *workdir_make(job_t *job) {
    /* mode before owner: once the dir is the job's, root without CAP_FOWNER can't chmod */
    if (mkdir(job->workdir, 0700) < 0 || chmod(job->workdir, job->partner ? 0700 : 0711) < 0 ||
        chown(job->workdir, job->uid, job->uid) < 0)
        return strerror(errno);
    return NULL;
}

/* A read-only descriptor of its own on the file `fd` is open on: another open file, so its
 * offset is the reader's alone. */
int stdin_reopen(int fd) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    return open(self, O_RDONLY | O_CLOEXEC);
}

/* A job's (uid's) stdin file, empty: the writable descriptor, the read-only one in *ro; -1
 * with errno. Nothing on disk for the job to find: it gets the descriptor. */
int stdin_file(uid_t uid, int *ro) {
    char path[96];
    snprintf(path, sizeof path, "%s/.stdin-%u", BOX_ROOT, (unsigned)uid);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
    if (fd < 0) return -1;
    unlink(path);
    *ro = stdin_reopen(fd);
    if (*ro < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------ after it */

/* Empty the directory dirfd (and close it), depth first with one directory open at a time,
 * so that however deep a job nests directories it takes two descriptors: into a directory
 * that is not empty, then back up by ".." to remove it. 0 when it is empty, -1 at the first
 * thing that cannot be removed (the caller recycles the sandbox). */
int rm_tree_at(int dirfd) {
    int fd = dirfd, depth = 0;
    for (;;) {
        DIR *d = fdopendir(fd);
        if (!d) {
            close(fd);
            return -1;
        }
        int down = -1, failed = 0;
        struct dirent *e;
        while (down < 0 && !failed && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            if (unlinkat(fd, e->d_name, 0) == 0 || unlinkat(fd, e->d_name, AT_REMOVEDIR) == 0)
                continue;
            /* a directory with something in it, maybe chmod'ed shut by the job: opened up as its
             * owner, and entered */
            fchmodat(fd, e->d_name, 0700, 0);
            down = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            failed = down < 0;
        }
        int ascend = !failed && down < 0 && depth > 0;
        int up = ascend ? openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        closedir(d);
        if (failed) return -1;
        if (down >= 0) {
            fd = down, depth++;
        } else if (depth == 0) {
            return 0;
        } else if (up < 0) {
            return -1;
        } else {
            fd = up, depth--; /* the parent again: the emptied directory goes now */
        }
    }
}

/* SysV objects the uid made or owns (any uid's: (uid_t)-1): how many (removed too, with
 * `remove`), or -1 when one could not be removed. A job can give an object to another owner
 * (IPC_SET), never to another creator: both columns count. */
static int owned_ipc(uid_t uid, int remove) {
    const char *tables[] = {"/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg"};
    int found = 0, failed = 0;
    for (int t = 0; t < 3; t++) {
        FILE *f = fopen(tables[t], "re");
        if (!f) continue;
        char line[512];
        /* the header names the columns, which differ between the tables */
        int uid_col = -1, cuid_col = -1, col = 0;
        if (fgets(line, sizeof line, f))
            for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"), col++) {
                if (strcmp(tok, "uid") == 0) uid_col = col;
                if (strcmp(tok, "cuid") == 0) cuid_col = col;
            }
        while (uid_col > 1 && cuid_col > 1 && fgets(line, sizeof line, f)) {
            long id = -1, owner = -1, creator = -1;
            col = 0;
            for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n"), col++) {
                if (col == 1) id = atol(tok);
                if (col == uid_col) owner = atol(tok);
                if (col == cuid_col) creator = atol(tok);
            }
            if ((uid != (uid_t)-1 && owner != (long)uid && creator != (long)uid) || id < 0) continue;
            found++;
            if (!remove) continue;
            int gone = t == 0   ? shmctl((int)id, IPC_RMID, NULL)
                       : t == 1 ? semctl((int)id, 0, IPC_RMID)
                                : msgctl((int)id, IPC_RMID, NULL);
            if (gone < 0) failed = 1;
        }
        fclose(f);
    }
    return failed ? -1 : found;
}

int remove_ipc(uid_t uid) { return owned_ipc(uid, 1); }

/* What the uid owns directly in dir: how many entries (removed too, with `remove`: locked
 * directories opened up first, as their owner), or -1 when something could not be removed. */
static int owned_in(const char *dir, uid_t uid, int remove) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int found = 0, failed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid != uid) continue;
        found++;
        if (!remove || unlinkat(fd, e->d_name, 0) == 0) continue;
        fchmodat(fd, e->d_name, 0700, 0);
        int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 || rm_tree_at(sub) < 0 || unlinkat(fd, e->d_name, AT_REMOVEDIR) < 0)
            failed = 1;
    }
    closedir(d);
    return failed ? -1 : found;
}

/* What the job left in the sandbox's /dev/shm, /tmp and SysV IPC: a count, or -1. */
int owned_outside(uid_t uid, int remove) {
    int shm = owned_in("/dev/shm", uid, remove), tmp = owned_in("/tmp", uid, remove);
    int ipc = owned_ipc(uid, remove);
    return shm < 0 || tmp < 0 || ipc < 0 ? -1 : shm + tmp + ipc;
}
