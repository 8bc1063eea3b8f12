/*
 * test_tune.c — the search on synthetic landscapes: it finds the optimum of
 * separable and mildly coupled objectives, never measures a point twice,
 * respects the trial budget, treats wins within noise as ties (the current
 * value stays), steps over failed and infeasible points, reuses known
 * (resumed) results, stops when interrupted; and uses far fewer trials
 * than the grid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tune.h"

typedef struct {
    const tune_space_t *s;
    double (*f)(const tune_point_t *p);
    int calls;
    tune_point_t seen[512];
    int stop_after;
    double noise;
} oracle_t;

static int oracle(void *ud, const tune_point_t *p, tune_eval_t *out)
{
    oracle_t *o = ud;
    for (int i = 0; i < o->calls; i++)
        if (!memcmp(&o->seen[i], p, sizeof *p))
            fail_msg("point measured twice");
    if (o->stop_after && o->calls >= o->stop_after)
        return -1;
    o->seen[o->calls++] = *p;
    double v = o->f(p);
    out->status = v < 0 ? TUNE_FAILED : TUNE_OK;
    out->score = v;
    out->noise = o->noise;
    return 0;
}

static void space4(tune_space_t *s)
{
    memset(s, 0, sizeof *s);
    s->n_dims = 4;
    int nv[4] = {6, 3, 2, 3};
    for (int d = 0; d < 4; d++) {
        s->dims[d].n_values = nv[d];
        s->dims[d].name = "x";
        for (int v = 0; v < nv[d]; v++)
            snprintf(s->dims[d].values[v], sizeof s->dims[d].values[v], "%d", v);
    }
}

/* separable: peaks at (4, 1, 0, 2) */
static double sep(const tune_point_t *p)
{
    static const double a[6] = {10, 20, 35, 50, 60, 40}, b[3] = {5, 30, 10}, c[2] = {8, 2}, d[3] = {1, 3, 9};
    return a[p->idx[0]] + b[p->idx[1]] + c[p->idx[2]] + d[p->idx[3]];
}

/* coupled, with failures: dim 2 = 1 fails when dim 1 > 0 (like fa off + quantized V) */
static double coupled(const tune_point_t *p)
{
    if (p->idx[2] == 1 && p->idx[1] > 0)
        return -1;
    double ub = 100 - (p->idx[0] - 3) * (p->idx[0] - 3) * 6;
    return ub * (1 + 0.1 * p->idx[1]) * (p->idx[3] == 1 ? 1.2 : 1.0);
}

static void best_of_grid(const tune_space_t *s, double (*f)(const tune_point_t *), double *best)
{
    *best = -1;
    tune_point_t p = {{0}};
    for (int a = 0; a < s->dims[0].n_values; a++)
        for (int b = 0; b < s->dims[1].n_values; b++)
            for (int c = 0; c < s->dims[2].n_values; c++)
                for (int d = 0; d < s->dims[3].n_values; d++) {
                    p.idx[0] = a, p.idx[1] = b, p.idx[2] = c, p.idx[3] = d;
                    double v = f(&p);
                    if (v > *best)
                        *best = v;
                }
}

static void t_finds_optimum(void **st)
{
    (void)st;
    tune_space_t s;
    space4(&s);
    double (*fs[2])(const tune_point_t *) = {sep, coupled};
    for (int k = 0; k < 2; k++) {
        oracle_t o = {.s = &s, .f = fs[k], .noise = 0.005};
        tune_point_t start = {{0}};
        tune_result_t r;
        assert_int_equal(tune_search(&s, &start, 0, NULL, 0, oracle, &o, &r), 0);
        double best;
        best_of_grid(&s, fs[k], &best);
        assert_true(r.best_eval.score >= best * 0.97);
        assert_true(r.trials <= 108 / 4); /* a quarter of the grid at most */
        assert_int_equal(r.trials, o.calls);
        assert_false(r.interrupted);
    }
}

static void t_budget_and_interrupt(void **st)
{
    (void)st;
    tune_space_t s;
    space4(&s);
    oracle_t o = {.s = &s, .f = sep};
    tune_point_t start = {{0}};
    tune_result_t r;
    tune_search(&s, &start, 5, NULL, 0, oracle, &o, &r);
    assert_int_equal(o.calls, 5);
    assert_true(r.budget_hit);
    assert_false(r.interrupted);
    oracle_t o2 = {.s = &s, .f = sep, .stop_after = 3};
    tune_search(&s, &start, 0, NULL, 0, oracle, &o2, &r);
    assert_true(r.interrupted);
    assert_int_equal(o2.calls, 3);
}

static double flat(const tune_point_t *p)
{
    /* every other value is 0.5% better: inside the noise */
    return 100 * (1 + 0.005 * p->idx[0]);
}

static void t_ties_keep_current(void **st)
{
    (void)st;
    tune_space_t s;
    space4(&s);
    oracle_t o = {.s = &s, .f = flat, .noise = 0.02};
    tune_point_t start = {{2, 0, 0, 0}};
    tune_result_t r;
    tune_search(&s, &start, 0, NULL, 0, oracle, &o, &r);
    assert_int_equal(r.best.idx[0], 2); /* 2.5% better at most, noise 2%: a tie... except idx 5 */
    o = (oracle_t){.s = &s, .f = flat, .noise = 0.05};
    tune_search(&s, &start, 0, NULL, 0, oracle, &o, &r);
    assert_int_equal(r.best.idx[0], 2);
}

static void t_known_results(void **st)
{
    (void)st;
    tune_space_t s;
    space4(&s);
    oracle_t o = {.s = &s, .f = sep};
    tune_point_t start = {{0}};
    tune_result_t full;
    tune_search(&s, &start, 0, NULL, 0, oracle, &o, &full);
    /* resume: the first 6 measured points are known; none is measured again */
    tune_known_t known[6];
    for (int i = 0; i < 6; i++) {
        known[i].p = o.seen[i];
        known[i].e = (tune_eval_t){TUNE_OK, sep(&o.seen[i]), 0};
    }
    oracle_t o2 = {.s = &s, .f = sep};
    tune_result_t r;
    tune_search(&s, &start, 0, known, 6, oracle, &o2, &r);
    for (int i = 0; i < o2.calls; i++)
        for (int k = 0; k < 6; k++)
            assert_memory_not_equal(&o2.seen[i], &known[k].p, sizeof known[k].p);
    assert_int_equal(o2.calls, full.trials - 6);
    assert_true(r.best_eval.score == full.best_eval.score);
}

static double start_fails(const tune_point_t *p) { return p->idx[0] == 0 ? -1 : 10 + p->idx[0]; }

static void t_failed_start(void **st)
{
    (void)st;
    tune_space_t s;
    space4(&s);
    oracle_t o = {.s = &s, .f = start_fails};
    tune_point_t start = {{0}};
    tune_result_t r;
    assert_int_equal(tune_search(&s, &start, 0, NULL, 0, oracle, &o, &r), 0);
    assert_int_equal(r.best.idx[0], 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_finds_optimum),     cmocka_unit_test(t_budget_and_interrupt),
        cmocka_unit_test(t_ties_keep_current), cmocka_unit_test(t_known_results),
        cmocka_unit_test(t_failed_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
