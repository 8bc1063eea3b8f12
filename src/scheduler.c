/*
 * scheduler.c — see scheduler.h. Roles already stopping count as gone for the
 * "would it fit" question (their memory is on its way back) but not for
 * "start now": the caller asks again on their STOPPED event.
 */
#include "scheduler.h"

#include <stdlib.h>

static bool fits(int count, uint64_t mem, int max_loaded, uint64_t budget)
{
    return (max_loaded <= 0 || count <= max_loaded) && (budget == 0 || mem <= budget);
}

sched_verdict_t sched_admit(const sched_role_t *r, size_t n, size_t want, int max_loaded,
                            uint64_t budget, size_t *victims, size_t *n_victims)
{
    *n_victims = 0;
    if (budget && r[want].mem > budget)
        return SCHED_NEVER;
    int live = 0, stopping = 0;
    uint64_t live_mem = 0, stopping_mem = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == want || r[i].state == SCHED_R_STOPPED)
            continue;
        if (r[i].state == SCHED_R_STOPPING) {
            stopping++;
            stopping_mem += r[i].mem;
        } else {
            live++;
            live_mem += r[i].mem;
        }
    }
    if (fits(live + stopping + 1, live_mem + stopping_mem + r[want].mem, max_loaded, budget))
        return SCHED_START;
    /* evict idle ready roles, least recently used first, until it fits */
    int count = live;
    uint64_t mem = live_mem;
    bool *taken = calloc(n, sizeof *taken);
    if (!taken)
        abort();
    while (!fits(count + 1, mem + r[want].mem, max_loaded, budget)) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (i != want && !taken[i] && r[i].state == SCHED_R_READY && !r[i].busy &&
                (best == n || r[i].last_used < r[best].last_used))
                best = i;
        if (best == n) {
            /* even stopping every idle role leaves no room: stop nothing */
            *n_victims = 0;
            free(taken);
            return SCHED_WAIT;
        }
        taken[best] = true;
        victims[(*n_victims)++] = best;
        count--;
        mem -= r[best].mem;
    }
    free(taken);
    return SCHED_WAIT;
}
