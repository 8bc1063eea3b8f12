/*
 * test_scheduler.c — admission/eviction decisions: limits by count and memory,
 * LRU order, busy and stopping roles, roles that can never fit; priority,
 * pinned roles, minimum residency.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scheduler.h"

#define GB (1ull << 30)
/* state, busy, last_used, bytes per device...; the rest 0 */
#define R(st, b, lu, ...) {.state = (st), .busy = (b), .last_used = (lu), .mem = {__VA_ARGS__}}

static void t_free_room(void **s)
{
    (void)s;
    sched_role_t r[3] = {R(SCHED_R_READY, false, 1, 4 * GB), R(SCHED_R_STOPPED, false, 0, 4 * GB),
                         R(SCHED_R_STOPPED, false, 0, 4 * GB)};
    size_t v[3], nv;
    assert_int_equal(sched_admit(r, 3, 1, 0, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_START);
    assert_int_equal(sched_admit(r, 3, 1, 2, (const uint64_t[]){8 * GB}, 1, 0, v, &nv), SCHED_START);
    assert_int_equal(nv, 0);
}

static void t_lru_by_count(void **s)
{
    (void)s;
    sched_role_t r[4] = {R(SCHED_R_READY, false, 5, GB), R(SCHED_R_READY, false, 2, GB),
                         R(SCHED_R_READY, false, 9, GB), R(SCHED_R_STOPPED, false, 0, GB)};
    size_t v[4], nv;
    assert_int_equal(sched_admit(r, 4, 3, 3, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 1); /* least recently used */
    assert_int_equal(sched_admit(r, 4, 3, 1, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 3);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 0);
    assert_int_equal(v[2], 2);
}

static void t_busy_never_evicted(void **s)
{
    (void)s;
    sched_role_t r[3] = {R(SCHED_R_READY, true, 1, GB), R(SCHED_R_READY, false, 8, GB),
                         R(SCHED_R_STOPPED, false, 0, GB)};
    size_t v[3], nv;
    assert_int_equal(sched_admit(r, 3, 2, 2, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 1); /* more recent, but the LRU one is busy */
    r[1].busy = true;
    assert_int_equal(sched_admit(r, 3, 2, 2, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 0); /* nothing to stop: wait */
}

static void t_memory(void **s)
{
    (void)s;
    sched_role_t r[4] = {R(SCHED_R_READY, false, 1, 10 * GB), R(SCHED_R_READY, false, 2, 3 * GB),
                         R(SCHED_R_LOADING, false, 3, 2 * GB), R(SCHED_R_STOPPED, false, 0, 6 * GB)};
    size_t v[4], nv;
    /* 15 used + 6 > 20: stopping the 3 GB role is not enough, the LRU 10 GB one is */
    assert_int_equal(sched_admit(r, 4, 3, 0, (const uint64_t[]){20 * GB}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 0);
    /* alone bigger than the budget */
    r[3].mem[0] = 21 * GB;
    assert_int_equal(sched_admit(r, 4, 3, 0, (const uint64_t[]){20 * GB}, 1, 0, v, &nv), SCHED_NEVER);
    /* a loading role is never a victim */
    r[3].mem[0] = 19 * GB;
    r[0].state = SCHED_R_STOPPED;
    assert_int_equal(sched_admit(r, 4, 3, 0, (const uint64_t[]){20 * GB}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 0);
}

static void t_stopping_counts_until_gone(void **s)
{
    (void)s;
    sched_role_t r[2] = {R(SCHED_R_STOPPING, false, 1, GB), R(SCHED_R_STOPPED, false, 0, GB)};
    size_t v[2], nv;
    assert_int_equal(sched_admit(r, 2, 1, 1, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 0);
    r[0].state = SCHED_R_STOPPED;
    assert_int_equal(sched_admit(r, 2, 1, 1, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_START);
}

/* Two GPUs: a role that needs only GPU 1 does not evict one living on GPU 0. */
static void t_per_device(void **s)
{
    (void)s;
    sched_role_t r[3] = {R(SCHED_R_READY, false, 1, GB, 20 * GB, 0), R(SCHED_R_READY, false, 2, GB, 0, 20 * GB),
                         R(SCHED_R_STOPPED, false, 0, GB, 0, 10 * GB)};
    const uint64_t budget[3] = {0, 24 * GB, 24 * GB};
    size_t v[3], nv;
    assert_int_equal(sched_admit(r, 3, 2, 0, budget, 3, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 1); /* the GPU-1 role, though role 0 is older */
    r[2].mem[2] = 4 * GB;
    assert_int_equal(sched_admit(r, 3, 2, 0, budget, 3, 0, v, &nv), SCHED_START);
    r[2].mem[1] = 25 * GB;
    assert_int_equal(sched_admit(r, 3, 2, 0, budget, 3, 0, v, &nv), SCHED_NEVER);
}

/* Higher evicts lower, never the reverse; lower priorities go first. */
static void t_priority(void **s)
{
    (void)s;
    sched_role_t r[4] = {R(SCHED_R_READY, false, 1, GB), R(SCHED_R_READY, false, 5, GB),
                         R(SCHED_R_STOPPED, false, 0, GB), R(SCHED_R_STOPPED, false, 0, GB)};
    r[0].priority = 5; /* older, but important */
    r[2].priority = 1;
    size_t v[4], nv;
    /* want (priority 1) may stop role 1 (priority 0) but not role 0 (5) */
    assert_int_equal(sched_admit(r, 4, 2, 2, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 1);
    /* two must go for max_loaded 1, and one cannot: nothing is stopped */
    assert_int_equal(sched_admit(r, 4, 2, 1, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 0);
    /* a role of priority 5 stops both, the lower priority first though it is newer */
    r[3].priority = 5;
    assert_int_equal(sched_admit(r, 4, 3, 1, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 2);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 0);
    /* equal priority: LRU as before */
    r[1].priority = 5;
    assert_int_equal(sched_admit(r, 4, 3, 2, (const uint64_t[]){0}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 0);
}

static void t_pin(void **s)
{
    (void)s;
    sched_role_t r[3] = {R(SCHED_R_READY, false, 1, 10 * GB), R(SCHED_R_READY, false, 2, 4 * GB),
                         R(SCHED_R_STOPPED, false, 0, 6 * GB)};
    r[0].pin = true;
    size_t v[3], nv;
    /* 14 + 6 > 16: the pinned LRU role stays, the other goes, and that is enough */
    assert_int_equal(sched_admit(r, 3, 2, 0, (const uint64_t[]){16 * GB}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 1);
    /* with 12 GB only stopping the pinned one would do: wait, stop nothing */
    r[2].mem[0] = 9 * GB;
    assert_int_equal(sched_admit(r, 3, 2, 0, (const uint64_t[]){16 * GB}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 0);
    /* priority does not override a pin */
    r[2].priority = 100;
    assert_int_equal(sched_admit(r, 3, 2, 0, (const uint64_t[]){16 * GB}, 1, 0, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 0);
}

static void t_min_resident(void **s)
{
    (void)s;
    sched_role_t r[3] = {R(SCHED_R_READY, false, 1, GB), R(SCHED_R_READY, false, 2, GB),
                         R(SCHED_R_STOPPED, false, 0, GB)};
    r[0].ready_at = 100;
    r[0].min_resident_s = 30;
    r[1].ready_at = 110;
    r[1].min_resident_s = 10;
    size_t v[3], nv;
    /* at 115 both are young: nothing stops; the next change is at 120 */
    assert_int_equal(sched_admit(r, 3, 2, 2, (const uint64_t[]){0}, 1, 115, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 0);
    assert_true(sched_next_change(r, 3, 115) == 120);
    /* at 120 role 1 may go (role 0 is older but still young) */
    assert_int_equal(sched_admit(r, 3, 2, 2, (const uint64_t[]){0}, 1, 120, v, &nv), SCHED_WAIT);
    assert_int_equal(nv, 1);
    assert_int_equal(v[0], 1);
    assert_true(sched_next_change(r, 3, 120) == 130);
    /* at 130 LRU again */
    assert_int_equal(sched_admit(r, 3, 2, 2, (const uint64_t[]){0}, 1, 130, v, &nv), SCHED_WAIT);
    assert_int_equal(v[0], 0);
    assert_true(sched_next_change(r, 3, 130) == 0);
    /* a loading role's residency is not pending */
    r[0].state = SCHED_R_LOADING;
    assert_true(sched_next_change(r, 3, 115) == 120);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_free_room),
        cmocka_unit_test(t_lru_by_count),
        cmocka_unit_test(t_busy_never_evicted),
        cmocka_unit_test(t_memory),
        cmocka_unit_test(t_stopping_counts_until_gone),
        cmocka_unit_test(t_per_device),
        cmocka_unit_test(t_priority),
        cmocka_unit_test(t_pin),
        cmocka_unit_test(t_min_resident),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
