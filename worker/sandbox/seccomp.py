"""The seccomp profile of every sandbox container.

Docker's default profile allows what an ordinary program needs and refuses, to a container
without CAP_SYS_ADMIN, everything that makes namespaces: ``clone`` with namespace flags,
``unshare``, ``setns``, ``mount``. The supervisor needs three of those to give each job a cell
(images/supervisor/cell.c): ``clone`` with namespace flags (the cell's init), ``setns`` (the
process that forks the job enters the cell) and ``mount`` (the cell's private /tmp and
/dev/shm, and /proc read-only). This profile is an allowlist of its own, by purpose, with
those added and some of what Docker's default allows left out because no judged program needs
it (io_uring, ptrace and process_vm_*, fanotify, handles to files by number, landlock, secret
memory, kernel AIO: :data:`KERNEL_AIO`).

The container's profile applies to every process in it, jobs included; each job therefore
also installs a filter of its own before it runs anything submitted (cell.c, ``DENIED``),
which takes namespaces, mounts and the rest away again. Sandboxes without cells
(``RUNNER_ISOLATION=uid``) get the same profile: they still give jobs the filter.
"""

from __future__ import annotations

import functools
import json

EPERM, ENOSYS = 1, 38
AF_VSOCK = 40

FILES = (
    "access", "chdir", "chmod", "chown", "close", "close_range", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir",
    "fchmod", "fchmodat", "fchown", "fchownat", "fcntl", "fdatasync", "flock", "fstat",
    "fstatfs", "fsync", "ftruncate", "futimesat", "getcwd", "getdents", "getdents64",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "ioctl", "lchown",
    "link", "linkat", "lseek", "lstat", "memfd_create", "mkdir", "mkdirat", "mknod", "mknodat",
    "newfstatat", "open", "openat", "openat2", "pread64", "preadv", "preadv2", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "rename",
    "renameat", "renameat2", "rmdir", "sendfile", "splice", "stat", "statfs", "statx",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "umask",
    "unlink", "unlinkat", "utime", "utimensat", "utimes", "vmsplice", "write", "writev",
    # extended attributes (tmpfs keeps them; nothing privileged without capabilities)
    "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr",
    "listxattr", "llistxattr", "lremovexattr", "lsetxattr", "removexattr", "setxattr",
)  # fmt: skip
MEMORY = (
    "brk", "madvise", "membarrier", "mincore", "mlock", "mlock2", "mlockall", "mmap",
    "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "remap_file_pages",
)  # fmt: skip
PROCESSES = (
    "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork",
    "futex", "futex_waitv", "get_robust_list", "get_thread_area", "getcpu", "getpgid",
    "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getrlimit", "getrusage",
    "getsid", "gettid", "ioprio_get", "ioprio_set", "kill", "modify_ldt", "pidfd_open",
    "pidfd_send_signal", "prctl", "prlimit64", "restart_syscall", "rseq",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
    "set_robust_list", "set_thread_area", "set_tid_address", "setpgid", "setpriority",
    "setrlimit", "setsid", "sysinfo", "tgkill", "times", "tkill", "uname", "vfork", "wait4",
    "waitid",
)  # fmt: skip
IDENTITY = ("getegid", "geteuid", "getgid", "getgroups", "getresgid", "getresuid", "getuid",
            "setgroups")  # fmt: skip
# Switching ids is allowed to any but 0 (root): the supervisor drops root at its start, and
# nothing in a sandbox may become root again, whatever capabilities it keeps. Each call and
# how many id arguments it has (-1, "unchanged", is not 0).
SWITCH_IDS = {
    "setuid": 1, "setgid": 1, "setfsuid": 1, "setfsgid": 1,
    "setreuid": 2, "setregid": 2, "setresuid": 3, "setresgid": 3,
}  # fmt: skip
SIGNALS_AND_TIME = (
    "adjtimex", "alarm", "clock_adjtime", "clock_getres", "clock_gettime", "clock_nanosleep",
    "getitimer", "gettimeofday", "nanosleep", "pause", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_tgsigqueueinfo", "setitimer", "sigaltstack", "signalfd", "signalfd4", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
    "timerfd_create", "timerfd_gettime", "timerfd_settime",
)  # fmt: skip
EVENTS_AND_IPC = (
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait",
    "eventfd", "eventfd2", "pipe", "pipe2", "poll", "ppoll", "pselect6", "select",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink",
    "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
    "shmat", "shmctl", "shmdt", "shmget",
)  # fmt: skip
# local sockets only: the sandbox has no network; socket() itself is below, without vsock
SOCKETS = (
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
    "listen", "recvfrom", "recvmmsg", "recvmsg", "sendmmsg", "sendmsg", "sendto",
    "setsockopt", "shutdown", "socketpair",
)  # fmt: skip
# what the supervisor needs beyond an ordinary program: clone with namespace flags (clone is
# allowed whole), entering a cell, mounting its tmpfs and making its /proc read-only
SUPERVISOR = ("clone", "setns", "mount")
# Kernel AIO reserves events from fs.aio-max-nr, one budget for the whole host: refused as on a
# kernel built without it (ENOSYS); libc's POSIX AIO uses threads and needs none of it.
KERNEL_AIO = ("io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_setup", "io_submit")
# personality(2): Linux, its 32-bit and 2.6-uname flavours, and reading the current one
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


def profile() -> dict[str, object]:
    """The profile, in the format Docker's ``--security-opt seccomp=`` takes."""
    allowed = sorted({*FILES, *MEMORY, *PROCESSES, *IDENTITY, *SIGNALS_AND_TIME,
                      *EVENTS_AND_IPC, *SOCKETS, *SUPERVISOR})  # fmt: skip
    rules: list[dict[str, object]] = [
        {"names": allowed, "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}],
        },
        # its flags are out of a filter's reach: ENOSYS makes libc fall back to clone
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        {"names": list(KERNEL_AIO), "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    rules += [
        {
            "names": [name],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": i, "value": 0, "op": "SCMP_CMP_NE"} for i in range(ids)],
        }
        for name, ids in SWITCH_IDS.items()
    ]
    rules += [
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }
        for value in PERSONALITIES
    ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []},
        ],
        "syscalls": rules,
    }


@functools.cache
def profile_json() -> str:
    return json.dumps(profile(), separators=(",", ":"))
