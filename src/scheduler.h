/*
 * scheduler.h — admission and eviction decisions for roles (pure).
 *
 * Given what every role is doing, may role `want` start now, and which idle
 * roles must stop first? Limits: max roles loaded at once and a memory
 * budget per device (host, each GPU): the bytes each role needs there come
 * from the planner. A role with
 * requests in flight or queued is never chosen; among idle ready roles the
 * least recently used goes first; nothing is stopped unless stopping it
 * (plus roles already stopping) makes room.
 */
#ifndef VARIET_SCHEDULER_H
#define VARIET_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SCHED_R_STOPPED, SCHED_R_LOADING, SCHED_R_READY, SCHED_R_STOPPING } sched_rstate_t;

#define SCHED_MAX_DEV 17 /* host + 16 GPUs */

typedef struct {
    sched_rstate_t state;
    bool busy;        /* requests in flight or queued */
    double last_used; /* larger = more recent */
    uint64_t mem[SCHED_MAX_DEV]; /* bytes it needs on each device while loaded */
} sched_role_t;

typedef enum {
    SCHED_START, /* start it now */
    SCHED_WAIT,  /* not now: stop `victims` (if any) and ask again when something stops or idles */
    SCHED_NEVER, /* it cannot fit even alone */
} sched_verdict_t;

/* budget[d]: bytes available on device d for all roles (0 = no limit).
 * victims must hold n entries; *n_victims gets how many to stop (LRU first). */
sched_verdict_t sched_admit(const sched_role_t *roles, size_t n, size_t want, int max_loaded,
                            const uint64_t *budget, int n_dev, size_t *victims, size_t *n_victims);

#endif
