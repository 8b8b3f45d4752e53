/* A job's cell: the namespaces it runs in, made fresh for every job and gone with it.
 *
 * Why: a job that runs under its own uid can still leave things behind that outlive it in a
 * shared container (SysV objects whose owner it changed, locked directories in /dev/shm,
 * files in /tmp) and that later jobs can read or that distort their memory. Cleaning up after
 * the fact needs a list of everything a job could have made; a cell makes the list empty by
 * construction. Each job gets:
 *   - its own IPC namespace: SysV objects and POSIX message queues die with it;
 *   - its own mount namespace, with private, size-limited tmpfs on /tmp and /dev/shm, and a
 *     /proc of its own PID namespace (read-only, the host's paths masked as Docker masks them
 *     in any container): a job's getpid() is in it, and nothing outside the cell is;
 *   - its own PID namespace, whose init (the cell's first process, ours) is killed when the
 *     job ends, which makes the kernel kill every process still in it;
 *   - its own network namespace, with a loopback interface and nothing else: no port, socket
 *     or connection of one job is seen by another (the job may create Unix sockets only:
 *     the buffers of others are not charged to the sandbox on cgroup v1, ledger.c);
 *   - a user namespace that holds the other four. It is created by the supervisor, so it
 *     belongs to the supervisor's uid, which is the sandbox's own (never root, never a job's:
 *     supervisor.c): every per-user budget of the host a job's processes count against
 *     (inotify instances and watches, pending signals...) is counted against that uid at the
 *     host's level, never root's or another sandbox's. The supervisor keeps the right to read
 *     the job's memory maps (/proc/PID/smaps_rollup) and to enter the cell; the job never gets
 *     a capability in it (it runs under its own uid, mapped to itself, and drops every
 *     capability before it runs anything submitted).
 *
 * The cell's init is cloned here with the four namespaces, mounts the tmpfs and reaps the
 * job's orphans (they are reparented to it, not to us). The job itself is forked by a process
 * that entered the cell with setns(pidfd) (cell_enter): our own child on the exec path, the
 * fork server's on the server path, so both paths give the supervisor the same job process
 * to watch, and the job gets pid 2 in its namespace, never 1 (pid 1 ignores signals it has
 * no handler for, which would change how a program that signals itself ends).
 *
 * The container needs no CAP_SYS_ADMIN for this; its seccomp profile allows clone with
 * namespace flags, setns and mount (worker/sandbox/seccomp.py), and the job's own filter
 * (below) takes them away again.
 *
 * Inside a cell /proc is read-only, so the OOM score a job is given (the OOM killer's first
 * choice) is the one it keeps. A /proc of the cell's own needs a container whose /proc Docker
 * did not mask (worker/sandbox/container.py): the kernel refuses a new proc mount while part of
 * an existing one is hidden. The cell masks the same paths in its own.
 *
 * Also here: the job's seccomp filter, installed by whatever forks the job. */
#include "supervisor.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mount.h>

#define CELL_FLAGS (CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET)
#define READY_MS 5000
#define TMPFS_INODES 16384

int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = write_all(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* ------------------------------------------------------------------ the cell's init */

/* Messages on the cell's socket, from the supervisor: "S<kb> <work dir>" (a job starts: mount
 * its /tmp and /dev/shm, answer "r" or why not), "K" (the job's main process ended: kill what
 * is left, reap it, answer with the rusage of all that was reaped), "W" (its output is
 * collected: empty the work dir, unmount /tmp and /dev/shm, answer "w" when the work dir is
 * empty, exit). */
static int cell_mounts(long kb) {
    char opts[96];
    snprintf(opts, sizeof opts, "size=%ldk,nr_inodes=%d,mode=1777", kb, TMPFS_INODES);
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) return -1;
    return mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

/* The cell's own /proc (see the top), read-only, with what Docker masks in a container masked:
 * files behind /dev/null, directories behind an empty read-only tmpfs. And the same for what a
 * job must not reach of the sandbox: the sandbox's cgroup (its figures mix the job's with the
 * pair's partner's and its files', the answer's size among them: ledger.c), pseudo-terminals
 * (their buffers are charged to no cgroup and their number is the host's; their echo runs in
 * the kernel's workers, outside the sandbox's CPU), POSIX message queues. NULL, or what
 * failed. */
static const char *cell_proc(void) {
    static const char *const files[] = {"/proc/kcore",      "/proc/keys",        "/proc/latency_stats",
                                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                                        "/dev/ptmx"};
    static const char *const dirs[] = {"/proc/acpi",  "/proc/asound",   "/proc/scsi",
                                       "/sys/firmware", "/run/runner", "/sys/fs/cgroup",
                                       "/dev/pts",    "/dev/mqueue"};
    const unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (mount("proc", "/proc", "proc", flags, NULL) < 0) return "mount /proc";
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (mount("/dev/null", files[i], NULL, MS_BIND, NULL) < 0 && errno != ENOENT) return files[i];
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        if (mount("tmpfs", dirs[i], "tmpfs", flags, "size=4k,nr_inodes=2,mode=555") < 0 &&
            errno != ENOENT)
            return dirs[i];
    return NULL;
}

/* The cell's loopback interface up, as in any network namespace a program runs in. */
static const char *loopback_up(void) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags |= IFF_UP;
    ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    if (fd >= 0) close(fd);
    return ok ? NULL : "loopback up";
}

static void reap_all(int block) {
    while (waitpid(-1, NULL, block ? 0 : WNOHANG) > 0 || (block && errno == EINTR)) {}
}

static void cell_init(int sock) __attribute__((noreturn));
static void cell_init(int sock) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* whoever enters the cell must pass ptrace_may_access on us: same uid (root), and a
     * dumpable target (the supervisor makes itself undumpable, which we inherited) */
    prctl(PR_SET_DUMPABLE, 1);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1); /* never the wire */
    }
    close_from(3, sock);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD); /* blocked since the supervisor's start */
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    char workdir[96] = "";
    /* our mounts stay ours; and /proc is the cell's, read-only, so that the job keeps the OOM
     * score it is given (the capability that would make the kernel hold the score,
     * CAP_SYS_RESOURCE, is not one every host can grant a container) */
    const char *step = "make mounts private";
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0) step = cell_proc();
    if (!step) step = loopback_up();
    if (step) {
        dprintf(sock, "%s: %s", step, strerror(errno));
        _exit(1);
    }
    if (write(sock, "c", 1) < 0) _exit(1); /* created */
    for (;;) {
        struct pollfd fds[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) continue;
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            reap_all(0); /* orphans of the job, reparented to us */
        }
        if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
        char msg[128];
        ssize_t n = recv(sock, msg, sizeof msg - 1, 0);
        if (n <= 0) _exit(0); /* the supervisor is gone */
        msg[n] = 0;
        if (msg[0] == 'S') {
            char *dir = strchr(msg, ' ');
            snprintf(workdir, sizeof workdir, "%s", dir ? dir + 1 : "");
            if (cell_mounts(strtol(msg + 1, NULL, 10)) < 0)
                dprintf(sock, "mount: %s", strerror(errno));
            else if (write(sock, "r", 1) < 0)
                _exit(1);
        } else if (msg[0] == 'K') {
            kill(-1, SIGKILL); /* every process of this namespace but us */
            reap_all(1);
            struct rusage ru;
            getrusage(RUSAGE_CHILDREN, &ru);
            if (send(sock, &ru, sizeof ru, 0) < 0) _exit(1);
        } else if (msg[0] == 'W') {
            /* caps in the job's namespace reach whatever its uid made, locked or not; the
             * job's /tmp and /dev/shm go now, the rest of the cell as we exit */
            int dir = workdir[0] ? open(workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
            int wiped = dir < 0 || rm_tree_at(dir) == 0;
            /* its SysV objects now: the kernel would free them with the IPC namespace, later,
             * while the next job runs */
            remove_ipc((uid_t)-1);
            umount2("/tmp", MNT_DETACH);
            umount2("/dev/shm", MNT_DETACH);
            if (send(sock, wiped ? "w" : "!", 1, 0) < 0) {}
            _exit(0);
        }
    }
}

static int write_map(pid_t pid, const char *name, unsigned id) {
    char path[64], map[48];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    snprintf(map, sizeof map, "%u %u 1\n", id, id);
    return write_file(path, map);
}

/* One message from the cell's init, within READY_MS: 0 when it is `want`, else -1 with why. */
static int cell_answer(cell_t *cell, char want, char *why, size_t why_size) {
    char answer[160];
    ssize_t n = -1;
    struct pollfd p = {cell->sock, POLLIN, 0};
    if (poll(&p, 1, READY_MS) > 0) n = recv(cell->sock, answer, sizeof answer - 1, 0);
    if (n == 1 && answer[0] == want) return 0;
    answer[n > 0 ? n : 0] = 0;
    snprintf(why, why_size, "%s", n > 0 ? answer : "the cell's init did not answer");
    return -1;
}

/* Kill the cell's init (and so everything in the cell) and reap it: `ru` (when given) is all
 * the init reaped; 0 when it had exited by itself with status 0. */
static int cell_reap(cell_t *cell, int kill_it, struct rusage *ru) {
    int status = -1;
    if (cell->pid > 0) {
        struct pollfd gone = {cell->pidfd, POLLIN, 0};
        if (kill_it || poll(&gone, 1, READY_MS) <= 0) kill(cell->pid, SIGKILL);
        while (wait4(cell->pid, &status, 0, ru) < 0 && errno == EINTR) {}
    }
    if (cell->pidfd >= 0) close(cell->pidfd);
    if (cell->sock >= 0) close(cell->sock);
    *cell = (cell_t){0, -1, -1};
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

void cell_discard(cell_t *cell) { cell_reap(cell, 1, NULL); }

/* Cells made ahead of their jobs (while the sandbox waits for a run: as many as the last run
 * had jobs), or none; and the last run's, whose inits are exiting (tearing their namespaces
 * down) while the answer goes out. */
#define NO_CELL {0, -1, -1}
static cell_t spares[PAIR] = {NO_CELL, NO_CELL}, retired[PAIR] = {NO_CELL, NO_CELL};

/* Make a cell: its init cloned with new user, IPC, mount and PID namespaces; it says "c"
 * once ready. */
static int cell_create(cell_t *cell, char *why, size_t why_size) {
    *cell = (cell_t){0, -1, -1};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(why, why_size, "socketpair: %s", strerror(errno));
        return -1;
    }
    int pidfd = -1;
    /* a raw clone, fork-like (no new stack): the child goes on here with a copy of us */
    pid_t pid = (pid_t)syscall(SYS_clone, CELL_FLAGS | CLONE_PIDFD | SIGCHLD, 0, &pidfd, 0, 0);
    if (pid == 0) {
        close(sv[0]);
        cell_init(sv[1]);
    }
    close(sv[1]);
    if (pid < 0) {
        snprintf(why, why_size, "clone: %s", strerror(errno));
        close(sv[0]);
        return -1;
    }
    /* its init makes itself ready while we go on: cell_open waits for its word */
    *cell = (cell_t){pid, pidfd, sv[0]};
    return 0;
}

/* Whether pid was the init of a cell no job is in: a retired one, or a spare (which then died
 * before its job: a new one is made when the job comes). */
int idle_cell_reaped(pid_t pid) {
    cell_t *idle = NULL;
    for (int i = 0; i < PAIR; i++) {
        if (pid > 0 && pid == spares[i].pid) idle = &spares[i];
        if (pid > 0 && pid == retired[i].pid) idle = &retired[i];
    }
    if (!idle) return 0;
    if (idle->pidfd >= 0) close(idle->pidfd);
    if (idle->sock >= 0) close(idle->sock);
    *idle = (cell_t){0, -1, -1};
    return 1;
}

/* Spare cells, `count` of them, for the next run. */
void cell_prepare(int count) {
    char why[160];
    for (int i = 0; i < PAIR; i++)
        if (spares[i].pid > 0) count--;
    for (int i = 0; i < PAIR && count > 0; i++) {
        if (spares[i].pid > 0) continue;
        if (cell_create(&spares[i], why, sizeof why) < 0) spares[i].pid = 0;
        count--;
    }
}

/* The last run's cells gone: their inits reaped, so that the kernel frees their namespaces. */
void cell_reap_retired(void) {
    for (int i = 0; i < PAIR; i++) cell_reap(&retired[i], 0, NULL);
}

int cell_open(const job_t *job, cell_t *cell, char *why, size_t why_size) {
    /* the job must not see the last run's cells on their way out */
    cell_reap_retired();
    cell_t *spare = spares[0].pid > 0 ? &spares[0] : spares[1].pid > 0 ? &spares[1] : NULL;
    if (spare) {
        *cell = *spare;
        *spare = (cell_t){0, -1, -1};
    } else if (cell_create(cell, why, why_size) < 0) {
        return -1;
    }
    if (cell_answer(cell, 'c', why, why_size) < 0) {
        cell_discard(cell);
        return -1;
    }
    /* the job's uid is itself inside; root stays unmapped, so nobody in the cell is root */
    const char *step = write_map(cell->pid, "uid_map", (unsigned)job->uid) < 0 ? "uid_map"
                       : write_map(cell->pid, "gid_map", (unsigned)job->uid) < 0 ? "gid_map"
                                                                                 : NULL;
    if (step) {
        snprintf(why, why_size, "%s: %s", step, strerror(errno));
    } else {
        char start[128];
        /* an eighth more than the job's memory: a job that fills its /tmp or /dev/shm is over
         * its limit in shared memory alone, which the last look after its end still sees; at
         * exactly the limit, whether it is MLE would depend on a tick catching its own pages
         * beside the files before it exits */
        long kb = job->mem_kb ? job->mem_kb + job->mem_kb / 8 : 64 * 1024;
        int n = snprintf(start, sizeof start, "S%ld %s", kb, job->workdir);
        if (send(cell->sock, start, (size_t)n, MSG_NOSIGNAL) == n &&
            cell_answer(cell, 'r', why, why_size) == 0)
            return 0;
    }
    cell_discard(cell);
    return -1;
}

/* The job's main process ended: everything else in the cell is killed and reaped; `ru` is
 * the rusage of what the cell's init reaped, which the job's CPU time must include. */
void cell_stop(cell_t *cell, struct rusage *ru) {
    memset(ru, 0, sizeof *ru);
    struct pollfd p = {cell->sock, POLLIN, 0};
    if (cell->pid <= 0 || send(cell->sock, "K", 1, MSG_NOSIGNAL) != 1 ||
        poll(&p, 1, READY_MS) <= 0 || recv(cell->sock, ru, sizeof *ru, 0) != sizeof *ru)
        cell_reap(cell, 1, ru); /* no answer: killing the init kills them all the same */
}

/* The job's output is collected: the cell's init empties its work dir, unmounts its /tmp and
 * /dev/shm and exits; the rest of the namespaces go as it does, while we answer (it is reaped
 * when its exit is in, or before the next run's first cell opens). 0 when the work dir is
 * empty. */
int cell_end(cell_t *cell) {
    if (cell->pid <= 0) return -1;
    char why[160];
    if (send(cell->sock, "W", 1, MSG_NOSIGNAL) != 1 ||
        cell_answer(cell, 'w', why, sizeof why) < 0) {
        cell_discard(cell);
        return -1;
    }
    cell_t *slot = retired[0].pid > 0 ? &retired[1] : &retired[0];
    cell_reap(slot, 0, NULL); /* none there: a run has at most PAIR cells */
    *slot = *cell;
    close(slot->sock);
    slot->sock = -1;
    *cell = (cell_t){0, -1, -1};
    return 0;
}

/* CPU ticks of the orphans the cell's init has reaped so far (cutime + cstime). */
long long cell_reaped_ticks(const cell_t *cell) {
    if (cell->pid <= 0) return 0;
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)cell->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, line, sizeof line - 1);
    close(fd);
    if (n <= 0) return 0;
    line[n] = 0;
    char *p = strrchr(line, ')');
    long long cut = 0, cst = 0;
    /* after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime cutime(16) cstime(17) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %lld %lld",
                     &cut, &cst) != 2)
        return 0;
    return cut + cst;
}

/* Whether cells can be made here: tried once, with a throwaway uid and a job's mounts; the
 * cell then waits for the first job. NULL when cells can be made. */
const char *cell_probe(void) {
    static int done;
    static char why[200];
    if (!done) {
        done = 1;
        job_t probe;
        memset(&probe, 0, sizeof probe);
        probe.uid = 65533;
        probe.mem_kb = 1024;
        cell_t cell;
        if (cell_open(&probe, &cell, why, sizeof why) == 0) {
            cell_discard(&cell);
            why[0] = 0;
            cell_prepare(1);
        }
    }
    return why[0] ? why : NULL;
}

/* ------------------------------------------------------------------ the job's seccomp filter */

#if defined(__x86_64__)
#define FILTER_ARCH AUDIT_ARCH_X86_64
#define X32_BIT 0x40000000
#elif defined(__aarch64__)
#define FILTER_ARCH AUDIT_ARCH_AARCH64
#else
#error "the job filter knows x86_64 and aarch64"
#endif

/* namespaces, and CLONE_PARENT: a child of the job's parent would be the supervisor's, out of
 * its cell's init's reach as it dies */
#define DENIED_CLONE_FLAGS                                                                  \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |          \
     CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME | CLONE_PARENT)

/* What a job may not call, though the container's profile allows it (the supervisor makes
 * cells with the first group) or Docker's default does (the rest: attack surface no judged
 * program needs). clone is allowed without namespace flags or CLONE_PARENT; clone3, whose
 * flags a filter cannot read, answers ENOSYS so that libc falls back to clone. socket and
 * socketpair are allowed for Unix sockets only (EACCES for any other family): the kernel
 * charges their buffers to the sandbox's cgroup, and cgroup v1 does not charge TCP's or UDP's
 * (ledger.c). */
static const int DENIED[] = {
    SYS_unshare, SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot,
    SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick,
    SYS_mount_setattr, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_keyctl, SYS_add_key,
    SYS_request_key, SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_name_to_handle_at,
    SYS_open_by_handle_at,
};

static struct sock_filter filter[16 + 2 * (sizeof DENIED / sizeof *DENIED) + 8];
static unsigned short filter_len;

#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(code, k, jt, jf) ((struct sock_filter)BPF_JUMP(code, k, jt, jf))
#define RET_ERRNO(e) STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))

static void build_filter(void) {
    if (filter_len) return;
    unsigned n = 0, lowest = ~0u;
    for (size_t i = 0; i < sizeof DENIED / sizeof *DENIED; i++)
        if ((unsigned)DENIED[i] < lowest) lowest = (unsigned)DENIED[i];
    filter[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    filter[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, FILTER_ARCH, 1, 0);
    filter[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS); /* another ABI: no jobs */
    filter[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef X32_BIT
    filter[n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_BIT, 0, 1);
    filter[n++] = RET_ERRNO(ENOSYS);
#endif
    filter[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 1, 0);
    filter[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socketpair, 0, 4);
    filter[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    filter[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1);
    filter[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[n++] = RET_ERRNO(EACCES);
    filter[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
    filter[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    filter[n++] = JUMP(BPF_JMP | BPF_JSET | BPF_K, DENIED_CLONE_FLAGS, 0, 2); /* else: allow */
    filter[n++] = RET_ERRNO(EPERM);
    /* the hot path: every syscall numbered below the lowest denied one goes straight through */
    filter[n++] = JUMP(BPF_JMP | BPF_JGE | BPF_K, lowest, 1, 0);
    filter[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
    filter[n++] = RET_ERRNO(ENOSYS);
    for (size_t i = 0; i < sizeof DENIED / sizeof *DENIED; i++) {
        filter[n++] = JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)DENIED[i], 0, 1);
        filter[n++] = RET_ERRNO(EPERM);
    }
    filter[n++] = STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter_len = (unsigned short)n;
}

int job_filter_install(void) {
    build_filter();
    struct sock_fprog prog = {filter_len, filter};
    /* a sandbox sets no_new_privs on the whole container; set here too, since the kernel lets
     * an unprivileged process install a filter only with it, so that the filter never depends
     * on how the container was started (a plain `docker run` of the image's healthcheck) */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* The filter as hex, for a fork server to install in the jobs it forks. */
const char *job_filter_hex(void) {
    static char hex[2 * sizeof filter + 1];
    if (!hex[0]) {
        build_filter();
        const unsigned char *bytes = (const unsigned char *)filter;
        for (size_t i = 0; i < filter_len * sizeof *filter; i++)
            snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
    }
    return hex;
}

/* In the process that forks the job (our child on the exec path): the job's OOM score, into
 * the cell, the filter. A later fork inherits all. */
const char *cell_enter(int pidfd) {
    /* a process that is not dumpable has its /proc files owned by root, who is not us: the
     * supervisor is not (it changed uid); its child may be, no job can reach it */
    if (prctl(PR_SET_DUMPABLE, 1) < 0) return "dumpable";
    if (write_file("/proc/self/oom_score_adj", OOM_SCORE_JOB) < 0) return "oom_score_adj";
    if (pidfd >= 0 && setns(pidfd, CELL_FLAGS) < 0) return "enter the cell";
    if (job_filter_install() < 0) return "seccomp filter";
    return NULL;
}
