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

/* May r[i] be stopped to make room for r[want]? */
static bool evictable(const sched_role_t *r, size_t i, size_t want, double now)
{
    const sched_role_t *c = &r[i];
    return i != want && c->state == SCHED_R_READY && !c->busy && !c->pin && c->priority <= r[want].priority &&
           !(c->min_resident_s > 0 && now < c->ready_at + c->min_resident_s);
}

/* Is a a better victim than b: lower priority, then less recently used. */
static bool before(const sched_role_t *a, const sched_role_t *b)
{
    return a->priority != b->priority ? a->priority < b->priority : a->last_used < b->last_used;
}

double sched_next_change(const sched_role_t *r, size_t n, double now)
{
    double t = 0;
    for (size_t i = 0; i < n; i++) {
        double end = r[i].ready_at + r[i].min_resident_s;
        if (r[i].state == SCHED_R_READY && r[i].min_resident_s > 0 && end > now && (t == 0 || end < t))
            t = end;
    }
    return t;
}

sched_verdict_t sched_admit(const sched_role_t *r, size_t n, size_t want, int max_loaded,
                            const uint64_t *budget, int n_dev, double now, size_t *victims, size_t *n_victims)
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
    /* evict idle ready roles, lowest priority and least recently used first, until it fits */
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
            if (taken[i] || !evictable(r, i, want, now))
                continue;
            bool helps = count_short;
            for (int d = 0; d < n_dev && !helps; d++)
                helps = short_dev[d] && r[i].mem[d] > 0;
            if (helps && (best == n || before(&r[i], &r[best])))
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
