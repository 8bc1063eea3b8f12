/*
 * tune_plot.c — the tuner's plots from a history (see tune_plot.h): the
 * records become arrays of points for svgplot. Failed loads are kept in the
 * trials plot (as crosses on the floor) because where a search hit the
 * memory edge is part of its story; the frontier uses successful runs only.
 */
#include "tune_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svgplot.h"
#include "util.h"

static double num(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static bool ran(const json_t *rec)
{
    const char *st = str(rec, "status");
    return !strcmp(st, "ok") || !strcmp(st, "tight");
}

double tune_plot_trial_ctx(const json_t *rec)
{
    double c = num(json_object_get(rec, "load"), "n_ctx");
    if (c > 0)
        return c;
    json_t *a = json_object_get(rec, "args");
    for (size_t i = 0; i + 1 < json_array_size(a); i++) {
        const char *k = json_string_value(json_array_get(a, i));
        if (k && (!strcmp(k, "-c") || !strcmp(k, "--ctx-size"))) {
            double v;
            const char *s = json_string_value(json_array_get(a, i + 1));
            if (s && parse_f64(s, &v) && v > 0)
                return v;
        }
    }
    return 0;
}

static char *title_of(const json_t *history, const char *what)
{
    const char *role = str(history, "role");
    return *role ? xasprintf("%s: %s", role, what) : xstrdup(what);
}

char *tune_plot_trials(const json_t *history)
{
    json_t *tr = json_object_get(history, "trials");
    size_t n = json_array_size(tr);
    /* owned here, freed below */
    double *x = xcalloc(n + 1, sizeof *x), *gen = xcalloc(n + 1, sizeof *gen), *lp = xcalloc(n + 1, sizeof *lp),
           *fail = xcalloc(n + 1, sizeof *fail);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(tr, i);
        x[i] = (double)(i + 1);
        bool ok = ran(e);
        gen[i] = ok ? num(e, "gen_tps") : NAN;
        lp[i] = ok ? num(e, "long_prompt_tps") : NAN;
        fail[i] = ok ? NAN : 0;
    }
    svgplot_series_t s[3] = {
        {.name = "generation t/s", .x = x, .y = gen, .n = n, .color = "#1f77b4", .line = true},
        {.name = "long prompt t/s", .x = x, .y = lp, .n = n, .color = "#ff7f0e", .line = true,
         .marker = SVGPLOT_SQUARE, .axis = 1},
        {.name = "did not run", .x = x, .y = fail, .n = n, .color = "#d62728", .marker = SVGPLOT_CROSS},
    };
    char *title = title_of(history, "t/s per trial");
    svgplot_t p = {.title = title,
                   .xlabel = "trial (load order)",
                   .ylabel = "generation t/s",
                   .y2label = "long prompt t/s",
                   .xint = true,
                   .series = s,
                   .n_series = 3,
                   .empty = "no trials in this history"};
    char *svg = svgplot_render(&p);
    free(title);
    free(x);
    free(gen);
    free(lp);
    free(fail);
    return svg;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

char *tune_plot_frontier(const json_t *history)
{
    json_t *tr = json_object_get(history, "trials");
    size_t n = json_array_size(tr), nc = 0;
    double *ctx = xcalloc(n + 1, sizeof *ctx); /* distinct contexts, sorted; owned here */
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(tr, i);
        double c = tune_plot_trial_ctx(e);
        if (strcmp(str(e, "status"), "ok") || !(c > 0))
            continue;
        bool seen = false;
        for (size_t k = 0; k < nc && !seen; k++)
            seen = ctx[k] == c;
        if (!seen)
            ctx[nc++] = c;
    }
    qsort(ctx, nc, sizeof *ctx, cmp_d);
    double *gen = xcalloc(nc + 1, sizeof *gen), *lp = xcalloc(nc + 1, sizeof *lp);
    for (size_t k = 0; k < nc; k++) {
        gen[k] = lp[k] = NAN;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(tr, i);
            if (strcmp(str(e, "status"), "ok") || tune_plot_trial_ctx(e) != ctx[k])
                continue;
            double g = num(e, "gen_tps"), l = num(e, "long_prompt_tps");
            if (isfinite(g) && (isnan(gen[k]) || g > gen[k]))
                gen[k] = g;
            if (isfinite(l) && (isnan(lp[k]) || l > lp[k]))
                lp[k] = l;
        }
    }
    svgplot_series_t s[2] = {
        {.name = "best generation t/s", .x = ctx, .y = gen, .n = nc, .color = "#1f77b4", .line = true},
        {.name = "best long prompt t/s", .x = ctx, .y = lp, .n = nc, .color = "#ff7f0e", .line = true,
         .marker = SVGPLOT_SQUARE, .axis = 1},
    };
    char *title = title_of(history, "context, prefill and generation");
    svgplot_t p = {.title = title,
                   .xlabel = "context (n_ctx, tokens)",
                   .ylabel = "generation t/s",
                   .y2label = "long prompt t/s",
                   .xlog2 = true,
                   .series = s,
                   .n_series = 2,
                   .empty = "no successful trial with a known context"};
    char *svg = svgplot_render(&p);
    free(title);
    free(ctx);
    free(gen);
    free(lp);
    return svg;
}
