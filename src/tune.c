/*
 * tune.c — coordinate-descent search with memoised evaluations (see
 * tune.h). The memo is a flat array: spaces are small (a few hundred
 * points at most), lookups are linear.
 */
#include "tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    tune_point_t p;
    tune_eval_t e;
} memo_t;

typedef struct {
    const tune_space_t *s;
    memo_t *m;
    size_t n, cap;
    tune_eval_fn f;
    void *ud;
    int budget, trials;
    bool stop, budget_hit;
} search_t;

static bool same(const tune_space_t *s, const tune_point_t *a, const tune_point_t *b)
{
    for (int d = 0; d < s->n_dims; d++)
        if (a->idx[d] != b->idx[d])
            return false;
    return true;
}

static memo_t *lookup(search_t *x, const tune_point_t *p)
{
    for (size_t i = 0; i < x->n; i++)
        if (same(x->s, &x->m[i].p, p))
            return &x->m[i];
    return NULL;
}

static memo_t *add(search_t *x, const tune_point_t *p, const tune_eval_t *e)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->m = xrealloc(x->m, x->cap * sizeof *x->m);
    }
    x->m[x->n].p = *p;
    x->m[x->n].e = *e;
    return &x->m[x->n++];
}

/* Evaluate (or recall) p; NULL when the search must stop. */
static const tune_eval_t *eval(search_t *x, const tune_point_t *p)
{
    memo_t *m = lookup(x, p);
    if (m)
        return &m->e;
    if (x->stop)
        return NULL;
    if (x->budget > 0 && x->trials >= x->budget) {
        x->budget_hit = true;
        x->stop = true;
        return NULL;
    }
    tune_eval_t e = {TUNE_FAILED, 0, 0};
    x->trials++;
    if (x->f(x->ud, p, &e) < 0) {
        x->stop = true;
        return NULL;
    }
    return &add(x, p, &e)->e;
}

double tune_tie_threshold(const tune_eval_t *a, const tune_eval_t *b)
{
    /* at least 1%, else the larger of the two spreads */
    double n = a->noise > b->noise ? a->noise : b->noise;
    return n > 0.01 ? n : 0.01;
}

static bool better(const tune_eval_t *cand, const tune_eval_t *cur)
{
    if (cand->status != TUNE_OK)
        return false;
    if (cur->status != TUNE_OK)
        return true;
    return cand->score > cur->score * (1.0 + tune_tie_threshold(cand, cur));
}

int tune_value_index(const tune_dim_t *d, const char *v)
{
    for (int i = 0; i < d->n_values; i++)
        if (!strcmp(d->values[i], v))
            return i;
    return -1;
}

int tune_search(const tune_space_t *s, const tune_point_t *start, int budget, const tune_known_t *known,
                int n_known, tune_eval_fn f, void *ud, tune_result_t *res)
{
    search_t x = {.s = s, .f = f, .ud = ud, .budget = budget};
    memset(res, 0, sizeof *res);
    for (int i = 0; i < n_known; i++)
        if (!lookup(&x, &known[i].p))
            add(&x, &known[i].p, &known[i].e);

    tune_point_t cur = *start;
    const tune_eval_t *ce = eval(&x, &cur);
    tune_eval_t cur_e = ce ? *ce : (tune_eval_t){TUNE_FAILED, 0, 0};
    /* score of each value the last time its dimension was scanned, relative
     * to the best then (NAN: not measured or failed) */
    double rel[TUNE_MAX_DIMS][TUNE_MAX_VALUES];
    for (int d = 0; d < TUNE_MAX_DIMS; d++)
        for (int v = 0; v < TUNE_MAX_VALUES; v++)
            rel[d][v] = NAN;
    bool moved = true;
    int pass = 0;
    while (moved && !x.stop) {
        moved = false;
        pass++;
        for (int d = 0; d < s->n_dims && !x.stop; d++) {
            tune_point_t best = cur;
            tune_eval_t best_e = cur_e;
            double sc[TUNE_MAX_VALUES];
            for (int v = 0; v < s->dims[d].n_values; v++)
                sc[v] = NAN;
            if (cur_e.status == TUNE_OK)
                sc[cur.idx[d]] = cur_e.score;
            for (int v = 0; v < s->dims[d].n_values && !x.stop; v++) {
                if (v == cur.idx[d])
                    continue;
                /* confirmation passes skip values that were clearly worse
                 * (more than 10% below the best) when last scanned */
                if (pass > 1 && !isnan(rel[d][v]) && rel[d][v] < 0.9)
                    continue;
                tune_point_t p = cur;
                p.idx[d] = v;
                const tune_eval_t *e = eval(&x, &p);
                if (e && e->status == TUNE_OK)
                    sc[v] = e->score;
                if (e && better(e, &best_e)) {
                    best = p;
                    best_e = *e;
                }
            }
            double top = 0;
            for (int v = 0; v < s->dims[d].n_values; v++)
                if (!isnan(sc[v]) && sc[v] > top)
                    top = sc[v];
            for (int v = 0; v < s->dims[d].n_values; v++)
                if (!isnan(sc[v]) && top > 0)
                    rel[d][v] = sc[v] / top;
            if (!same(s, &best, &cur)) {
                cur = best;
                cur_e = best_e;
                moved = true;
            }
        }
    }
    res->best = cur;
    res->best_eval = cur_e;
    res->trials = x.trials;
    res->visited = (int)x.n;
    res->interrupted = x.stop && !x.budget_hit;
    res->budget_hit = x.budget_hit;
    free(x.m);
    return cur_e.status == TUNE_OK ? 0 : -1;
}
