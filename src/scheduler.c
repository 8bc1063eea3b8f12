/*
 * scheduler.c — see scheduler.h. Roles already stopping count as gone for the
 * "would it fit" question (their memory is on its way back) but not for
 * "start now": the caller asks again on their STOPPED event.
 */
#include "scheduler.h"

#include <stdlib.h>

typedef struct {
    int count;
    uint64_t mem[SCHED_MAX_DEV];
} load_t;

static void add(load_t *l, const sched_role_t *r, int n_dev, int sign)
{
    l->count += sign;
    for (int d = 0; d < n_dev; d++)
        l->mem[d] = sign > 0 ? l->mem[d] + r->mem[d] : l->mem[d] - r->mem[d];
}

/* Would `l` plus role `w` respect the limits? */
static bool fits(const load_t *l, const sched_role_t *w, int max_loaded, const uint64_t *budget, int n_dev)
{
    if (max_loaded > 0 && l->count + 1 > max_loaded)
        return false;
    for (int d = 0; d < n_dev; d++)
        if (budget[d] && l->mem[d] + w->mem[d] > budget[d])
            return false;
    return true;
}

sched_verdict_t sched_admit(const sched_role_t *r, size_t n, size_t want, int max_loaded,
                            const uint64_t *budget, int n_dev, size_t *victims, size_t *n_victims)
{
    *n_victims = 0;
    if (n_dev > SCHED_MAX_DEV)
        n_dev = SCHED_MAX_DEV;
    for (int d = 0; d < n_dev; d++)
        if (budget[d] && r[want].mem[d] > budget[d])
            return SCHED_NEVER;
    load_t live = {0}, all = {0};
    for (size_t i = 0; i < n; i++) {
        if (i == want || r[i].state == SCHED_R_STOPPED)
            continue;
        add(&all, &r[i], n_dev, 1);
        if (r[i].state != SCHED_R_STOPPING)
            add(&live, &r[i], n_dev, 1);
    }
    if (fits(&all, &r[want], max_loaded, budget, n_dev))
        return SCHED_START;
    /* evict idle ready roles, least recently used first, until it fits */
    bool *taken = calloc(n, sizeof *taken);
    if (!taken)
        abort();
    while (!fits(&live, &r[want], max_loaded, budget, n_dev)) {
        /* only a role that frees something that is short helps */
        bool count_short = max_loaded > 0 && live.count + 1 > max_loaded;
        bool short_dev[SCHED_MAX_DEV];
        for (int d = 0; d < n_dev; d++)
            short_dev[d] = budget[d] && live.mem[d] + r[want].mem[d] > budget[d];
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (i == want || taken[i] || r[i].state != SCHED_R_READY || r[i].busy)
                continue;
            bool helps = count_short;
            for (int d = 0; d < n_dev && !helps; d++)
                helps = short_dev[d] && r[i].mem[d] > 0;
            if (helps && (best == n || r[i].last_used < r[best].last_used))
                best = i;
        }
        if (best == n) {
            /* even stopping every idle role leaves no room: stop nothing */
            *n_victims = 0;
            free(taken);
            return SCHED_WAIT;
        }
        taken[best] = true;
        victims[(*n_victims)++] = best;
        add(&live, &r[best], n_dev, -1);
    }
    free(taken);
    return SCHED_WAIT;
}
