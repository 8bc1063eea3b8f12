/*
 * scheduler.h — admission and eviction decisions for roles (pure).
 *
 * Given what every role is doing, may role `want` start now, and which idle
 * roles must stop first? Limits: max roles loaded at once and a memory
 * budget per device (host, each GPU): the bytes each role needs there come
 * from the planner. A role with
 * requests in flight or queued is never chosen, nor a pinned role, nor one
 * loaded less than its min_resident_s ago, nor one of higher priority than
 * the role that wants to start (higher evicts lower, never the reverse);
 * among the idle ready roles left, the lowest priority goes first, then the
 * least recently used; nothing is stopped unless stopping it (plus roles
 * already stopping) makes room.
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
    int priority;          /* higher may evict lower, never the reverse (0) */
    bool pin;              /* never evicted */
    double ready_at;       /* when it became ready (same clock as `now`) */
    double min_resident_s; /* not evicted until ready_at + this (0: any time) */
} sched_role_t;

typedef enum {
    SCHED_START, /* start it now */
    SCHED_WAIT,  /* not now: stop `victims` (if any) and ask again when something stops or idles */
    SCHED_NEVER, /* it cannot fit even alone */
} sched_verdict_t;

/* budget[d]: bytes available on device d for all roles (0 = no limit).
 * now: the clock of ready_at. victims must hold n entries; *n_victims gets
 * how many to stop (in the order chosen). SCHED_WAIT with no victims: ask
 * again when something stops or idles, or at sched_next_change(). */
sched_verdict_t sched_admit(const sched_role_t *roles, size_t n, size_t want, int max_loaded,
                            const uint64_t *budget, int n_dev, double now, size_t *victims, size_t *n_victims);

/* The earliest time after `now` at which a ready role's minimum residency
 * ends (a decision may change then), or 0 when none is pending. */
double sched_next_change(const sched_role_t *roles, size_t n, double now);

#endif
