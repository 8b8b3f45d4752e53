/* What is particular to a pair run (run.c): a job and its partner wired to each other, and
 * the OOM kills the sandbox counts for both. */
#include "supervisor.h"

/* A pair's two pipes: the job's stdout to the partner's stdin, the partner's stdout to the
 * job's stdin; into ends[i][0] and ends[i][1] (stdin, stdout) of each. Both are the job's
 * (made as its uid), as a program's own pipes are when it is run by hand: it may reopen
 * /dev/stdin and /dev/stdout; the partner uses the descriptors it is given. -1 with errno. */
int pair_pipes(const run_t runs[PAIR], int ends[PAIR][4]) {
    int to_partner[2], to_job[2];
    setfsuid(runs[0].job->uid);
    int made = pipe2(to_partner, O_CLOEXEC) == 0;
    if (made && pipe2(to_job, O_CLOEXEC) < 0) {
        close(to_partner[0]);
        close(to_partner[1]);
        made = 0;
    }
    int saved = errno;
    setfsuid(geteuid());
    errno = saved;
    if (!made) return -1;
    ends[0][0] = to_job[0], ends[0][1] = to_partner[1];
    ends[1][0] = to_partner[0], ends[1][1] = to_job[1];
    return 0;
}

/* The sandbox's cgroup counts OOM kills for both jobs at once. Every job's processes are the
 * OOM killer's first choice (cell.c), so a main process that died of a SIGKILL the supervisor
 * did not send was its victim: when exactly one job's did, the kills are that job's alone;
 * otherwise (the victim was some other process) both jobs keep them. */
void pair_oom_kills(run_t runs[PAIR], long kills) {
    int victim[PAIR], victims = 0;
    for (int i = 0; i < PAIR; i++) {
        const run_t *r = &runs[i];
        victim[i] = kills > 0 && r->status >= 0 && WIFSIGNALED(r->status) &&
                    WTERMSIG(r->status) == SIGKILL && strcmp(r->res->killed, "none") == 0;
        victims += victim[i];
    }
    for (int i = 0; victims == 1 && i < PAIR; i++)
        if (!victim[i]) runs[i].res->oom_kills = 0;
}
