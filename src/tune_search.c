/*
 * tune_search.c — the tuner's phases (see tune.h): baseline, screen,
 * measure, confirm, prune. Pure given the measurement callback: every
 * decision here can be replayed on a simulated landscape in CI.
 *
 * Configurations are keyed by their full command line; every load of one
 * is kept (tune_meas_t), and its estimate is the median over its loads.
 * Decisions that matter (the final pick, each flag removal) are made from
 * interleaved loads A B A B: the paired ratios A1/B1, A2/B1, A2/B2 cancel a
 * drift that is slow against one load, which single comparisons do not.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "tune_int.h"
#include "util.h"

#define MAX_LOADS 12
#define N_SURVIVORS 3

typedef struct {
    char *key, *label;
    char **args;
    size_t n;
    tune_point_t p;
    bool has_p;
    tune_meas_t loads[MAX_LOADS];
    int seq[MAX_LOADS]; /* each load's trial number in this run (0: from a resumed history) */
    int n_loads;
    tune_status_t status; /* of the last load (or the planner's verdict) */
    bool planned;         /* the planner verdict is known */
    json_t *headroom;     /* its per-device headroom when launched (owned), or NULL */
} cfg_t;

typedef struct {
    const tune_setup_t *s;
    json_t *history;
    void (*save)(void *);
    void *sud;
    cfg_t **c;
    size_t n, cap;
    tune_meas_t base;   /* normalisation of scores */
    bool have_base;
    tune_objective_t obj; /* s->obj with the floors' reference figures once measured */
    const cfg_t *ref;     /* llama.cpp's own placement, NULL without one */
    double t0;
    int trials, skipped, budget_phase;
    bool stop, budget_hit, interrupted;
    char stop_reason[128];
    const char *phase;
    double phase_end_s;  /* phase deadline (elapsed seconds), 0 none */
    int phase_end_trials;
} run_t;

/* ---------- time and budget ---------- */

static double clock_s(const run_t *r)
{
    return r->s->clock ? r->s->clock(r->s->cud) : now_s();
}

static double elapsed(const run_t *r)
{
    return clock_s(r) - r->t0;
}

static void say(const run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const run_t *r, const char *fmt, ...)
{
    if (!r->s->progress)
        return;
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->s->progress(r->s->pud, line);
}

/* Set the current phase and its share of the budgets (fractions of the
 * whole, cumulative). */
static void phase(run_t *r, const char *name, double share)
{
    r->phase = name;
    r->phase_end_s = r->s->budget_s > 0 ? r->s->budget_s * share : 0;
    r->phase_end_trials = r->s->budget_trials > 0 ? (int)ceil(r->s->budget_trials * share) : 0;
}

/* May another load start in this phase? Sets the stop reason when the
 * whole budget is spent. */
static bool can_load(run_t *r)
{
    if (r->stop)
        return false;
    if (r->s->stop && *r->s->stop) {
        r->stop = r->interrupted = true;
        snprintf(r->stop_reason, sizeof r->stop_reason, "interrupted");
        return false;
    }
    if (r->s->budget_s > 0 && elapsed(r) >= r->s->budget_s) {
        r->stop = r->budget_hit = true;
        snprintf(r->stop_reason, sizeof r->stop_reason, "time budget of %.1f min reached during %s", r->s->budget_s / 60,
                 r->phase);
        return false;
    }
    if (r->s->budget_trials > 0 && r->trials >= r->s->budget_trials) {
        r->stop = r->budget_hit = true;
        snprintf(r->stop_reason, sizeof r->stop_reason, "trial budget of %d reached during %s", r->s->budget_trials,
                 r->phase);
        return false;
    }
    if (r->phase_end_s > 0 && elapsed(r) >= r->phase_end_s)
        return false;
    if (r->phase_end_trials > 0 && r->trials >= r->phase_end_trials)
        return false;
    return true;
}

/* ---------- configurations ---------- */

static cfg_t *cfg_find(run_t *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->c[i]->key, key))
            return r->c[i];
    return NULL;
}

/* The configuration of args (takes ownership of args). */
static cfg_t *cfg_of_args(run_t *r, char **args, size_t n, const char *label)
{
    char *key = tune_join_args(args, n);
    cfg_t *c = cfg_find(r, key);
    if (c) {
        free(key);
        args_free(&args);
        if (label && !c->label[0]) {
            free(c->label);
            c->label = xstrdup(label);
        }
        return c;
    }
    c = xcalloc(1, sizeof *c);
    c->key = key;
    c->args = args;
    c->n = n;
    c->label = xstrdup(label ? label : "");
    c->status = TUNE_FAILED;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->c = xrealloc(r->c, r->cap * sizeof *r->c);
    }
    r->c[r->n++] = c;
    return c;
}

static cfg_t *cfg_of_point(run_t *r, char *const *base, size_t n_base, const tune_point_t *p)
{
    size_t n;
    char **a = tune_point_args(r->s, base, n_base, p, &n);
    if (!a)
        return NULL;
    char *label = tune_point_label(&r->s->space, p);
    cfg_t *c = cfg_of_args(r, a, n, label);
    free(label);
    if (!c->has_p) {
        c->p = *p;
        c->has_p = true;
    }
    return c;
}

static const tune_meas_t *last_ok(const cfg_t *c)
{
    for (int i = c->n_loads; i-- > 0;)
        if (c->loads[i].status == TUNE_OK)
            return &c->loads[i];
    return NULL;
}

/* Median over the loads that ran of each figure. */
static bool estimate(const cfg_t *c, tune_meas_t *e)
{
    double g[MAX_LOADS], l[MAX_LOADS], cold[MAX_LOADS];
    int ng = 0, nl = 0, nc = 0;
    for (int i = 0; i < c->n_loads; i++) {
        const tune_meas_t *m = &c->loads[i];
        if (m->status != TUNE_OK)
            continue;
        if (!isnan(m->gen))
            g[ng++] = m->gen;
        if (!isnan(m->lprompt))
            l[nl++] = m->lprompt;
        if (!isnan(m->cold_s))
            cold[nc++] = m->cold_s;
    }
    if (!ng)
        return false;
    *e = *last_ok(c);
    e->gen = tune__median(g, ng);
    e->lprompt = nl ? tune__median(l, nl) : NAN;
    e->cold_s = nc ? tune__median(cold, nc) : NAN;
    return true;
}

/* The floor's factor: 1 at or above floor × ref less the band, else the
 * shortfall ratio to the TUNE_FLOOR_STEEPNESS. */
static double floor_factor(double floor, double ref, double v)
{
    if (floor <= 0 || !(ref > 0) || isnan(v))
        return 1;
    double x = v / (floor * ref * (1 - TUNE_FLOOR_BAND));
    return x >= 1 ? 1 : pow(x > 0 ? x : 0, TUNE_FLOOR_STEEPNESS);
}

static double weighted(const tune_objective_t *o, const tune_meas_t *b, const tune_meas_t *m)
{
    double s = 0;
    if (o->gen > 0 && b->gen > 0 && !isnan(m->gen))
        s += o->gen * m->gen / b->gen;
    if (o->prompt > 0 && b->lprompt > 0 && !isnan(m->lprompt) && !isnan(b->lprompt))
        s += o->prompt * m->lprompt / b->lprompt;
    if (o->cold > 0 && m->cold_s > 0 && b->cold_s > 0)
        s += o->cold * b->cold_s / m->cold_s;
    /* a configuration whose picture was not measured gets nothing for it */
    if (o->vision > 0 && b->encode_ms > 0 && m->encode_ms > 0)
        s += o->vision * b->encode_ms / m->encode_ms;
    /* likewise a chat's second turn */
    if (o->turn > 0 && b->turn_s > 0 && m->turn_s > 0)
        s += o->turn * b->turn_s / m->turn_s;
    return s;
}

double tune_score(const tune_objective_t *o, const tune_meas_t *b, const tune_meas_t *m)
{
    double f = floor_factor(o->gen_floor, o->ref_gen > 0 ? o->ref_gen : b->gen, m->gen) *
               floor_factor(o->prompt_floor, o->ref_lprompt > 0 ? o->ref_lprompt : b->lprompt, m->lprompt);
    return f * weighted(o, b, m);
}

static double cfg_score(const run_t *r, const cfg_t *c)
{
    tune_meas_t e;
    if (!r->have_base || !estimate(c, &e))
        return -INFINITY;
    return tune_score(&r->obj, &r->base, &e);
}

/* Noise of a load's figures: half the relative range (NAN with one run). */
static double gen_noise(const tune_meas_t *m)
{
    return m->n_short >= 2 && m->gen > 0 ? (m->gen_max - m->gen_min) / m->gen / 2 : NAN;
}

/* ---------- one load ---------- */

static const char *status_name(tune_status_t st)
{
    switch (st) {
    case TUNE_OK: return "ok";
    case TUNE_FAILED: return "failed";
    case TUNE_INFEASIBLE: return "infeasible";
    case TUNE_OOM: return "oom";
    case TUNE_TIGHT: return "tight";
    }
    return "?";
}

static json_t *jnum(double v)
{
    return isnan(v) || isinf(v) ? json_null() : json_real(round(v * 100) / 100);
}

/* A ratio for the history: three decimals, as the log prints them. */
static json_t *jratio(double v)
{
    return isnan(v) || isinf(v) ? json_null() : json_real(round(v * 1000) / 1000);
}

static json_t *record_new(const run_t *r, const cfg_t *c)
{
    json_t *rec = json_pack("{s:s,s:s,s:s}", "key", c->key, "label", c->label, "phase", r->phase);
    json_t *ja = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(ja, json_string(c->args[i]));
    json_object_set_new(rec, "args", ja);
    json_object_set_new(rec, "time", json_integer((json_int_t)time(NULL)));
    return rec;
}

static void record_meas(json_t *rec, const tune_meas_t *m)
{
    json_object_set_new(rec, "status", json_string(status_name(m->status)));
    if (m->error[0])
        json_object_set_new(rec, "error", json_string(m->error));
    if (m->status != TUNE_OK && m->status != TUNE_TIGHT) {
        if (m->free_mib >= 0)
            json_object_set_new(rec, "free_mib", json_integer(m->free_mib));
        return;
    }
    json_object_set_new(rec, "runs", json_integer(m->n_short));
    json_object_set_new(rec, "gen_tps", jnum(m->gen));
    json_object_set_new(rec, "gen_tps_min", jnum(m->gen_min));
    json_object_set_new(rec, "gen_tps_max", jnum(m->gen_max));
    json_t *gr = json_array();
    for (int i = 0; i < m->n_short && i < 16; i++)
        json_array_append_new(gr, jnum(m->gen_runs[i]));
    json_object_set_new(rec, "gen_runs", gr);
    json_object_set_new(rec, "prompt_tps", jnum(m->sprompt));
    json_object_set_new(rec, "long_runs", json_integer(m->n_long));
    json_object_set_new(rec, "long_prompt_tps", jnum(m->lprompt));
    json_object_set_new(rec, "long_prompt_tps_min", jnum(m->lp_min));
    json_object_set_new(rec, "long_prompt_tps_max", jnum(m->lp_max));
    json_object_set_new(rec, "ttft_ms", jnum(m->ttft_ms));
    json_object_set_new(rec, "prefill_s", jnum(m->prefill_s));
    json_object_set_new(rec, "cold_start_s", jnum(m->cold_s));
    if (m->turn_s > 0)
        json_object_set_new(rec, "turn", json_pack("{s:f,s:I}", "prefill_s", round(m->turn_s * 10000) / 10000,
                                                   "cached", (json_int_t)m->turn_cached));
    json_object_set_new(rec, "noise", jnum(gen_noise(m)));
    if (m->free_mib >= 0)
        json_object_set_new(rec, "free_mib", json_integer(m->free_mib));
    if (m->pp >= 0)
        json_object_set_new(rec, "pipeline_parallel", json_boolean(m->pp));
}

void tune__meas_from_record(const json_t *rec, tune_meas_t *m)
{
    memset(m, 0, sizeof *m);
    const char *st = json_string_value(json_object_get(rec, "status")) ?: "";
    m->status = !strcmp(st, "ok")           ? TUNE_OK
                : !strcmp(st, "infeasible") ? TUNE_INFEASIBLE
                : !strcmp(st, "oom")        ? TUNE_OOM
                : !strcmp(st, "tight")      ? TUNE_TIGHT
                                            : TUNE_FAILED;
#define NUM(k) (json_is_number(json_object_get(rec, k)) ? json_number_value(json_object_get(rec, k)) : NAN)
    m->gen = NUM("gen_tps");
    m->gen_min = NUM("gen_tps_min");
    m->gen_max = NUM("gen_tps_max");
    m->sprompt = NUM("prompt_tps");
    m->lprompt = NUM("long_prompt_tps");
    m->lp_min = NUM("long_prompt_tps_min");
    m->lp_max = NUM("long_prompt_tps_max");
    m->ttft_ms = NUM("ttft_ms");
    m->prefill_s = NUM("prefill_s");
    m->cold_s = NUM("cold_start_s");
    m->encode_ms = NUM("encode_ms"); /* tune_trial's vision request */
    json_t *turn = json_object_get(rec, "turn");
    m->turn_s = json_is_number(json_object_get(turn, "prefill_s")) ? json_number_value(json_object_get(turn, "prefill_s"))
                                                                   : NAN;
    m->turn_cached = turn ? (long)json_integer_value(json_object_get(turn, "cached")) : -1;
    if (isnan(m->cold_s)) /* histories before the split kept it under load */
        m->cold_s = json_is_number(json_object_get(json_object_get(rec, "load"), "cold_start_s"))
                        ? json_number_value(json_object_get(json_object_get(rec, "load"), "cold_start_s"))
                        : NAN;
#undef NUM
    m->n_short = (int)json_integer_value(json_object_get(rec, "runs"));
    m->n_long = (int)json_integer_value(json_object_get(rec, "long_runs"));
    if (!m->n_long && !isnan(m->lprompt))
        m->n_long = 1;
    json_t *gr = json_object_get(rec, "gen_runs"), *v;
    size_t i;
    json_array_foreach(gr, i, v) if (i < 16) m->gen_runs[i] = json_number_value(v);
    if (!json_array_size(gr) && m->n_short > 0 && !isnan(m->gen)) {
        m->gen_runs[0] = m->gen;
        m->n_short = m->n_short > 16 ? 16 : m->n_short;
        for (int k = 1; k < m->n_short; k++)
            m->gen_runs[k] = m->gen;
    }
    m->free_mib = json_is_integer(json_object_get(rec, "free_mib")) ? json_integer_value(json_object_get(rec, "free_mib"))
                                                                      : -1;
    json_t *pp = json_object_get(rec, "pipeline_parallel");
    m->pp = json_is_boolean(pp) ? json_is_true(pp) : -1;
    snprintf(m->error, sizeof m->error, "%s", json_string_value(json_object_get(rec, "error")) ?: "");
}

static void append(run_t *r, json_t *rec)
{
    json_array_append_new(json_object_get(r->history, "trials"), rec);
    if (r->save)
        r->save(r->sud);
}

/* The planner's verdict for c: false (recorded, not launched) when it
 * clearly cannot fit. */
static bool plan_gate(run_t *r, cfg_t *c)
{
    if (c->planned)
        return c->status != TUNE_INFEASIBLE;
    c->planned = true;
    json_t *rec = record_new(r, c);
    double h, band;
    tune_meas_t m = {.status = TUNE_INFEASIBLE, .free_mib = -1, .pp = -1};
    if (tune_headroom(r->s, c->args, c->n, &h, &band, rec, m.error, sizeof m.error))
        m.status = TUNE_FAILED; /* args the planner cannot read */
    else if (h < -band)
        snprintf(m.error, sizeof m.error, "planner: %.0f MiB short on a GPU (band %.0f MiB)", -h, band);
    else {
        /* launched: each of its loads records this prediction beside what it measured */
        c->headroom = json_incref(json_object_get(rec, "plan_headroom_mib"));
        json_decref(rec);
        return true;
    }
    c->status = TUNE_INFEASIBLE;
    record_meas(rec, &m);
    append(r, rec);
    say(r, "%s: %s → %s", r->phase, c->label, m.error);
    r->skipped++;
    return false;
}

static void fmt_meas(const tune_meas_t *m, char *out, size_t cap)
{
    if (m->status != TUNE_OK) {
        snprintf(out, cap, "%s%s%s", status_name(m->status), m->error[0] ? ": " : "", m->error);
        return;
    }
    char noise[32];
    double nz = gen_noise(m);
    if (isnan(nz))
        snprintf(noise, sizeof noise, "noise unknown");
    else
        snprintf(noise, sizeof noise, "±%.1f%%", nz * 100);
    char lp[128] = "";
    if (!isnan(m->lprompt))
        snprintf(lp, sizeof lp, ", long prompt %.0f t/s", m->lprompt);
    if (m->turn_s > 0) {
        size_t l = strlen(lp);
        char kept[32] = "";
        if (m->turn_cached >= 0)
            snprintf(kept, sizeof kept, " (%ld kept)", m->turn_cached);
        snprintf(lp + l, sizeof lp - l, ", second turn %.3f s%s", m->turn_s, kept);
    }
    char fr[48] = "";
    if (m->free_mib >= 0)
        snprintf(fr, sizeof fr, ", %lld MiB free", (long long)m->free_mib);
    snprintf(out, cap, "gen %.2f t/s (%s, %d run%s)%s, cold %.1f s%s", m->gen, noise, m->n_short,
             m->n_short == 1 ? "" : "s", lp, m->cold_s, fr);
}

/* Long prompt size for c: the scenario's, capped by the slot's context. */
static int long_tokens(const run_t *r, const cfg_t *c)
{
    uint64_t slot = tune__slot_ctx(r->s, c->args, c->n);
    int want = 3100, room = slot > 0 ? (int)slot - 128 - 64 : want;
    return room < want ? (room > 256 ? room : 0) : want;
}

/* One load of c. Returns the measurement (in c) or NULL when no load was
 * made (budget, interrupt, planner). */
static const tune_meas_t *load(run_t *r, cfg_t *c, int short_runs, int long_runs)
{
    if (!plan_gate(r, c) || !can_load(r) || c->n_loads == MAX_LOADS)
        return NULL;
    /* without a prompt weight the long scenario is shown, not searched on */
    if (r->obj.prompt <= 0 && r->obj.prompt_floor <= 0)
        long_runs = !strcmp(r->phase, "screen") ? 0 : 1;
    tune_req_t req = {short_runs, long_runs, 0, r->obj.turn > 0};
    req.long_tokens = long_tokens(r, c);
    if (!req.long_tokens)
        req.long_runs = 0;
    json_t *rec = record_new(r, c);
    if (c->headroom) /* the planner's, from plan_gate */
        json_object_set(rec, "plan_headroom_mib", c->headroom);
    tune_meas_t *m = &c->loads[c->n_loads];
    memset(m, 0, sizeof *m);
    m->status = TUNE_FAILED;
    m->gen = m->lprompt = m->sprompt = m->cold_s = m->turn_s = NAN;
    m->turn_cached = -1;
    m->free_mib = -1;
    m->pp = -1;
    r->trials++;
    if (r->s->measure(r->s->ud, c->args, c->n, &req, m, rec) < 0) {
        json_decref(rec);
        r->stop = r->interrupted = true;
        snprintf(r->stop_reason, sizeof r->stop_reason, "interrupted");
        return NULL;
    }
    if (m->status == TUNE_OK && r->s->n_gpu && m->free_mib >= 0 && m->free_mib < r->s->min_free_mib) {
        m->status = TUNE_TIGHT;
        snprintf(m->error, sizeof m->error, "%lld MiB free after the runs, under --min-free %lld",
                 (long long)m->free_mib, (long long)r->s->min_free_mib);
    }
    if (req.long_tokens && req.long_tokens < 3100)
        json_object_set_new(rec, "long_prompt_tokens", json_integer(req.long_tokens));
    c->status = m->status;
    c->seq[c->n_loads++] = r->trials;
    record_meas(rec, m);
    append(r, rec);
    char res[400];
    fmt_meas(m, res, sizeof res);
    say(r, "trial %d (%s): %s → %s", r->trials, r->phase, c->label, res);
    return m;
}

/* Reuse what a resumed history holds for c (loads of this phase or finer). */
static bool has_load(const cfg_t *c, int short_runs)
{
    for (int i = 0; i < c->n_loads; i++)
        if (c->loads[i].status != TUNE_OK || c->loads[i].n_short >= short_runs)
            return true;
    return false;
}

static bool ok(const cfg_t *c)
{
    return c && last_ok(c) != NULL && c->status == TUNE_OK;
}

/* ---------- phases ---------- */

static void set_base(run_t *r, const tune_meas_t *m)
{
    if (r->have_base || !m || m->status != TUNE_OK)
        return;
    r->base = *m;
    if (isnan(r->base.lprompt) || r->base.lprompt <= 0)
        r->base.lprompt = NAN;
    r->have_base = true;
}

/* Screen runs: one short run per value, and two long ones when prompts
 * are weighted (a single ~0.4 s prefill on a fresh load is the noisiest
 * figure the tuner reads: ±8% between loads on the H200). */
static int screen_long_runs(const run_t *r)
{
    return r->obj.prompt > 0 || r->obj.prompt_floor > 0 ? 2 : 1;
}

/* Coordinate descent varies one dimension at a time, and a screen is one
 * load per value, read through a drift of a few percent between loads; so
 * two changes that pay together (on the H200 at 21,500 MiB: -ub 4096 and
 * f16 KV, each within noise of the current value alone) can both be
 * passed over. After the descent, each dimension's two best other values
 * (if within NEAR of its best) are combined two at a time across
 * dimensions, the best-scored pairs first, up to MAX_PAIRS loads; the
 * measure phase then ranks them with everything else. */
#define NEAR 0.90
#define MAX_PAIRS 4
#define RESCREEN 0.97

typedef struct {
    int d1, v1, d2, v2;
    double w;
} pair_t;

static int pair_cmp(const void *a, const void *b)
{
    double x = ((const pair_t *)a)->w, y = ((const pair_t *)b)->w;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The two best values of dimension d other than the current one (rel >=
 * NEAR); returns how many (0-2) into v. */
static int runners_up(const tune_space_t *sp, int d, int cur, double rel[TUNE_MAX_DIMS][TUNE_MAX_VALUES], int v[2])
{
    int n = 0;
    for (int k = 0; k < sp->dims[d].n_values; k++) {
        if (k == cur || isnan(rel[d][k]) || rel[d][k] < NEAR)
            continue;
        if (n < 2)
            v[n++] = k;
        else if (rel[d][k] > rel[d][v[1]])
            v[1] = k;
        if (n == 2 && rel[d][v[1]] > rel[d][v[0]]) {
            int t = v[0];
            v[0] = v[1];
            v[1] = t;
        }
    }
    return n;
}

static void pairs(run_t *r, char *const *base, size_t n_base, const tune_point_t *cur,
                  double rel[TUNE_MAX_DIMS][TUNE_MAX_VALUES])
{
    const tune_space_t *sp = &r->s->space;
    pair_t ps[TUNE_MAX_DIMS * TUNE_MAX_DIMS * 4];
    int np = 0, ru[TUNE_MAX_DIMS][2], nru[TUNE_MAX_DIMS];
    /* context is capacity, not speed: a larger one costs memory and is
     * kept only for its own score, so it is not combined */
    for (int d = 0; d < sp->n_dims; d++)
        nru[d] = sp->dims[d].kind == TUNE_DIM_CTX ? 0 : runners_up(sp, d, cur->idx[d], rel, ru[d]);
    for (int d1 = 0; d1 < sp->n_dims; d1++)
        for (int d2 = d1 + 1; d2 < sp->n_dims; d2++)
            for (int i = 0; i < nru[d1]; i++)
                for (int j = 0; j < nru[d2]; j++)
                    ps[np++] = (pair_t){d1, ru[d1][i], d2, ru[d2][j], rel[d1][ru[d1][i]] * rel[d2][ru[d2][j]]};
    qsort(ps, (size_t)np, sizeof ps[0], pair_cmp);
    for (int i = 0, done = 0; i < np && done < MAX_PAIRS && can_load(r); i++) {
        tune_point_t p = *cur;
        p.idx[ps[i].d1] = ps[i].v1;
        p.idx[ps[i].d2] = ps[i].v2;
        cfg_t *c = cfg_of_point(r, base, n_base, &p);
        if (!c || has_load(c, 1))
            continue;
        say(r, "pairs: %s=%s with %s=%s (screened alone at %.0f%% and %.0f%% of their dimensions' best)",
            sp->dims[ps[i].d1].name, sp->dims[ps[i].d1].values[ps[i].v1], sp->dims[ps[i].d2].name,
            sp->dims[ps[i].d2].values[ps[i].v2], 100 * rel[ps[i].d1][ps[i].v1], 100 * rel[ps[i].d2][ps[i].v2]);
        load(r, c, 1, screen_long_runs(r));
        done++;
    }
}

/* Coordinate descent over the space's dimensions, one run per value
 * (rel: each value's score against its dimension's best, for pairs());
 * returns the best screened point's configuration. */
static cfg_t *screen(run_t *r, char *const *base, size_t n_base, double rel[TUNE_MAX_DIMS][TUNE_MAX_VALUES],
                     tune_point_t *out)
{
    const tune_space_t *sp = &r->s->space;
    tune_point_t cur = {{0}};
    cfg_t *cc = cfg_of_point(r, base, n_base, &cur);
    if (cc && !has_load(cc, 1))
        load(r, cc, 1, screen_long_runs(r));
    set_base(r, cc ? last_ok(cc) : NULL);
    double thr = 0.02;
    if (r->have_base && !isnan(gen_noise(&r->base)) && gen_noise(&r->base) > thr)
        thr = gen_noise(&r->base);
    for (int d = 0; d < TUNE_MAX_DIMS; d++)
        for (int v = 0; v < TUNE_MAX_VALUES; v++)
            rel[d][v] = NAN;
    /* a start that does not run: the placement dimension first */
    int order[TUNE_MAX_DIMS], no = 0;
    for (int d = 0; d < sp->n_dims; d++)
        if (!ok(cc) && sp->dims[d].kind == TUNE_DIM_NCMOE)
            order[no++] = d;
    for (int d = 0; d < sp->n_dims; d++)
        if (ok(cc) || sp->dims[d].kind != TUNE_DIM_NCMOE)
            order[no++] = d;
    for (int pass = 0; pass < 3 && can_load(r); pass++) {
        bool moved = false;
        for (int oi = 0; oi < no && can_load(r); oi++) {
            int d = order[oi];
            tune_point_t best = cur;
            double best_sc = ok(cc) ? cfg_score(r, cc) : -INFINITY;
            double sc[TUNE_MAX_VALUES];
            for (int v = 0; v < TUNE_MAX_VALUES; v++)
                sc[v] = NAN;
            sc[cur.idx[d]] = best_sc;
            for (int v = 0; v < sp->dims[d].n_values && can_load(r); v++) {
                /* a later pass: only values within noise of the dimension's best
                 * (interactions are the pairs step's) */
                if (v == cur.idx[d] || (pass > 0 && !isnan(rel[d][v]) && rel[d][v] < RESCREEN))
                    continue;
                tune_point_t p = cur;
                p.idx[d] = v;
                cfg_t *c = cfg_of_point(r, base, n_base, &p);
                if (!c)
                    continue;
                if (!has_load(c, 1))
                    load(r, c, 1, screen_long_runs(r));
                set_base(r, last_ok(c));
                if (!ok(c))
                    continue;
                sc[v] = cfg_score(r, c);
                if (best_sc == -INFINITY || sc[v] > best_sc * (1 + thr)) {
                    best = p;
                    best_sc = sc[v];
                }
            }
            double top = -INFINITY;
            for (int v = 0; v < sp->dims[d].n_values; v++)
                if (!isnan(sc[v]) && sc[v] > top)
                    top = sc[v];
            for (int v = 0; v < sp->dims[d].n_values; v++)
                if (!isnan(sc[v]) && top > 0)
                    rel[d][v] = sc[v] / top;
            if (memcmp(&best, &cur, sizeof cur)) {
                cur = best;
                cc = cfg_of_point(r, base, n_base, &cur);
                moved = true;
            }
        }
        if (!moved)
            break;
    }
    *out = cur;
    return cc;
}

/* a strictly simpler than b: fewer options, then fewer dimensions moved
 * from the role's own values. Equally simple is not simpler: a tie between
 * two equally simple configurations keeps the better-ranked one (in the
 * H200 run at 21,500 MiB a `<=` here handed a tie to the runner-up, q8_0
 * KV, which generated 7% slower than the leader in every pair). */
static bool simpler(const cfg_t *a, const cfg_t *b)
{
    if (a->n != b->n)
        return a->n < b->n;
    int da = 0, db = 0;
    for (int d = 0; d < TUNE_MAX_DIMS; d++) {
        da += a->has_p && a->p.idx[d] != 0;
        db += b->has_p && b->p.idx[d] != 0;
    }
    return da < db;
}

/* The metrics a decision reads, each with its own paired ratios. */
enum { M_GEN, M_LONG, M_COLD, N_METRICS };

static double metric(const tune_meas_t *m, int k)
{
    switch (k) {
    case M_GEN: return m->gen;
    case M_LONG: return m->lprompt;
    default: return m->cold_s > 0 ? 1 / m->cold_s : NAN; /* higher is better, as for the others */
    }
}

/* A load's own noise in metric k (half its relative range), NAN unknown. */
static double metric_noise(const tune_meas_t *m, int k)
{
    if (k == M_GEN)
        return gen_noise(m);
    if (k == M_LONG && m->n_long >= 2 && m->lprompt > 0)
        return (m->lp_max - m->lp_min) / m->lprompt / 2;
    return NAN;
}

static double metric_weight(const tune_objective_t *o, int k)
{
    return k == M_GEN ? o->gen : k == M_LONG ? o->prompt : o->cold;
}

/* Loads at most this many trials apart are paired: in A B A B the pairs
 * are A1 B1, B1 A2 and A2 B2; a load of a third configuration may sit
 * between two (the measure phase's S1 S2 S3, then the confirmation). */
#define PAIR_GAP 2
#define MAX_CMP 12

/* The loads of c made in this run after trial `since`, copied into m (at
 * most MAX_CMP), their trial numbers into seq; their count. */
static int window(const cfg_t *c, int since, tune_meas_t *m, int *seq)
{
    int n = 0;
    for (int i = 0; i < c->n_loads && n < MAX_CMP; i++)
        if (c->seq[i] > since) {
            m[n] = c->loads[i];
            seq[n++] = c->seq[i];
        }
    return n;
}

/* The pairs (A_k, B_j) of loads that both ran, at most PAIR_GAP trials
 * apart, into p; their count. */
static int near_pairs(const tune_meas_t *A, const int *sa, int na, const tune_meas_t *B, const int *sb, int nb,
                      int p[][2])
{
    int np = 0;
    for (int k = 0; k < na; k++)
        for (int j = 0; j < nb; j++)
            if (abs(sa[k] - sb[j]) <= PAIR_GAP && A[k].status == TUNE_OK && B[j].status == TUNE_OK &&
                np < MAX_CMP) {
                p[np][0] = k;
                p[np++][1] = j;
            }
    return np;
}

/* How many pairs a load of the other configuration would make if it were
 * trial `next`: the loads of this window (M, trial numbers sn) that ran
 * within PAIR_GAP of it. */
static int pairs_gained(const tune_meas_t *M, const int *sn, int n, int next)
{
    int g = 0;
    for (int i = 0; i < n; i++)
        g += sn[i] >= next - PAIR_GAP && M[i].status == TUNE_OK;
    return g;
}

/* thr, raised to the largest own noise in metric k of any load of A and B. */
static double noisiest(const tune_meas_t *A, int na, const tune_meas_t *B, int nb, int k, double thr)
{
    double nz;
    for (int i = 0; i < na; i++)
        if (!isnan(nz = metric_noise(&A[i], k)) && nz > thr)
            thr = nz;
    for (int i = 0; i < nb; i++)
        if (!isnan(nz = metric_noise(&B[i], k)) && nz > thr)
            thr = nz;
    return thr;
}

/* When the weighted score calls a tie, a metric can still decide: one
 * whose paired ratios all lie beyond its own noise on the same side, with
 * no other weighted metric consistently on the other. (A noisy prefill in
 * the sum hid a 6–11% generation difference seen in every pair.) */
static int metric_verdict(const run_t *r, const tune_meas_t *A, int na, const tune_meas_t *B, int nb,
                          int p[][2], int np)
{
    int up = 0, down = 0;
    for (int k = 0; k < N_METRICS; k++) {
        if (metric_weight(&r->s->obj, k) <= 0)
            continue;
        double thr = noisiest(A, na, B, nb, k, 0.01);
        int n = 0, above = 0, below = 0;
        for (int i = 0; i < np; i++) {
            double a = metric(&A[p[i][0]], k), b = metric(&B[p[i][1]], k);
            if (isnan(a) || isnan(b) || b <= 0)
                continue;
            n++;
            above += a / b > 1 + thr;
            below += a / b < 1 - thr;
        }
        if (n >= 2 && above == n)
            up++;
        else if (n >= 2 && below == n)
            down++;
    }
    return up && !down ? 1 : down && !up ? -1 : 0;
}

/* Interleaved A B A B: +1 when a is better, -1 when b is, 0 a tie, 2 when
 * the budget ended the comparison; *ratio the median paired ratio of
 * scores. The loads of a and b made after trial `since` count: a
 * comparison goes on from the measure phase's loads or from the last
 * decision's, and adds loads, each of whichever configuration makes a new
 * pair, until there are `want` pairs (3 is A B A B; 1 is A B). */
static int compare(run_t *r, cfg_t *a, cfg_t *b, int want, int runs, int since, double *ratio)
{
    tune_meas_t A[MAX_CMP], B[MAX_CMP];
    int sa[MAX_CMP], sb[MAX_CMP], p[MAX_CMP][2];
    int na, nb, np, added = 0;
    bool ended = false, failed = false;
    for (;;) {
        na = window(a, since, A, sa);
        nb = window(b, since, B, sb);
        np = near_pairs(A, sa, na, B, sb, nb, p);
        if (np >= want || failed || added > want)
            break;
        /* the load that makes more pairs; else the one loaded longer ago (A B A B, not A B B A) */
        int ga = pairs_gained(B, sb, nb, r->trials + 1), gb = pairs_gained(A, sa, na, r->trials + 1);
        int la = na ? sa[na - 1] : 0, lb = nb ? sb[nb - 1] : 0;
        cfg_t *next = ga > gb || (ga == gb && la <= lb) ? a : b;
        const tune_meas_t *m = load(r, next, runs, runs);
        if (!m) { /* the budget, or the planner ruled next out */
            ended = next->status != TUNE_INFEASIBLE;
            break;
        }
        added++;
        failed = m->status != TUNE_OK;
    }
    *ratio = NAN;
    double q[MAX_CMP];
    int nq = 0;
    for (int i = 0; i < np; i++) {
        /* against llama.cpp's own placement the floors are paired too: its
         * load beside this one is the reference, drift and all */
        tune_objective_t o = r->obj;
        const tune_meas_t *rm = b == r->ref ? &B[p[i][1]] : a == r->ref ? &A[p[i][0]] : NULL;
        if (rm) {
            o.ref_gen = rm->gen > 0 ? rm->gen : o.ref_gen;
            o.ref_lprompt = rm->lprompt > 0 ? rm->lprompt : o.ref_lprompt;
        }
        double sbq = tune_score(&o, &r->base, &B[p[i][1]]);
        if (sbq > 0)
            q[nq++] = tune_score(&o, &r->base, &A[p[i][0]]) / sbq;
    }
    if (ended && np < want) /* the budget ended it: no decision */
        return 2;
    bool a_ok = a->status == TUNE_OK, b_ok = b->status == TUNE_OK;
    if (!nq || !a_ok || !b_ok)
        return a_ok && !b_ok ? 1 : b_ok && !a_ok ? -1 : 0;
    double lo = q[0], hi = q[0];
    for (int k = 1; k < nq; k++) {
        lo = q[k] < lo ? q[k] : lo;
        hi = q[k] > hi ? q[k] : hi;
    }
    *ratio = tune__median(q, nq);
    /* threshold: 1%, or the spread of the paired ratios, or the loads' own generation noise */
    double thr = noisiest(A, na, B, nb, M_GEN, (hi - lo) / 2 > 0.01 ? (hi - lo) / 2 : 0.01);
    if (thr > 0.05)
        thr = 0.05;
    if (*ratio > 1 + thr)
        return 1;
    if (*ratio < 1 - thr)
        return -1;
    return metric_verdict(r, A, na, B, nb, p, np);
}

/* The median paired ratio a/b of metric k over the loads after trial
 * `since` (NAN without a pair). */
static double paired_metric(const cfg_t *a, const cfg_t *b, int since, int k)
{
    tune_meas_t A[MAX_CMP], B[MAX_CMP];
    int sa[MAX_CMP], sb[MAX_CMP], p[MAX_CMP][2];
    int na = window(a, since, A, sa), nb = window(b, since, B, sb), np = near_pairs(A, sa, na, B, sb, nb, p), nq = 0;
    double q[MAX_CMP];
    for (int i = 0; i < np; i++) {
        double x = metric(&A[p[i][0]], k), y = metric(&B[p[i][1]], k);
        if (!isnan(x) && !isnan(y) && y > 0)
            q[nq++] = x / y;
    }
    return nq ? tune__median(q, nq) : NAN;
}

typedef struct {
    size_t at, len;
} item_t;

static bool essential(const char *tok)
{
    static const char *const keep[] = {"-c", "--ctx-size", "-np", "--parallel", "-ngl", "--gpu-layers",
                                       "--n-gpu-layers", "-fit", "--fit", "--mmproj", "-mm", "-ub", "--ubatch-size",
                                       "-b", "--batch-size", "-ctk", "--cache-type-k", "-ctv", "--cache-type-v",
                                       "-fa", "--flash-attn", "-t", "--threads", "-tb", "--threads-batch", "-ts",
                                       "--tensor-split", "-ncmoe", "--n-cpu-moe", "--cpu-moe", "-cmoe",
                                       "--no-mmproj-offload", "--chat-template", "--jinja", "-a", "--alias",
                                       "-md", "--model-draft", "--spec-draft-model", "--spec-type", "-ot",
                                       "--override-tensor", "-lm", "--load-mode", "--no-mmap", "-fitt", "--fit-target", NULL};
    for (int i = 0; keep[i]; i++)
        if (!strcmp(tok, keep[i]) || (!strncmp(tok, keep[i], strlen(keep[i])) && tok[strlen(keep[i])] == '='))
            return true;
    return false;
}

/* Option items that could be dropped: an option token plus its value when
 * the next token is not an option. */
static size_t removable(char *const *a, size_t n, item_t *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max;) {
        if (a[i][0] != '-') {
            i++;
            continue;
        }
        size_t len = 1;
        if (i + 1 < n && (a[i + 1][0] != '-' || (a[i + 1][1] >= '0' && a[i + 1][1] <= '9')) && !strchr(a[i], '='))
            len = 2;
        if (!essential(a[i]))
            out[k++] = (item_t){i, len};
        i += len;
    }
    return k;
}

static char **without(char *const *a, size_t n, const item_t *items, size_t ni, const bool *drop, size_t *n_out)
{
    char **v = xcalloc(n + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool skip = false;
        for (size_t j = 0; j < ni; j++)
            if (drop[j] && i >= items[j].at && i < items[j].at + items[j].len)
                skip = true;
        if (!skip)
            v[k++] = xstrdup(a[i]);
    }
    *n_out = k;
    return v;
}

static void note(run_t *r, const char *key, json_t *v)
{
    json_t *notes = json_object_get(r->history, "decisions");
    if (!notes) {
        notes = json_array();
        json_object_set_new(r->history, "decisions", notes);
    }
    json_object_set_new(v, "what", json_string(key));
    json_array_append_new(notes, v);
}

/* ---------- the whole run ---------- */

static void run_free(run_t *r);

/* The floors' reference: llama.cpp's own placement as first measured,
 * recorded in the history for the report. */
static void reference_figures(run_t *r, const cfg_t *ref)
{
    tune_meas_t e;
    if (!ref || !ok(ref) || !estimate(ref, &e))
        return;
    r->obj.ref_gen = isnan(e.gen) ? 0 : e.gen;
    r->obj.ref_lprompt = isnan(e.lprompt) ? 0 : e.lprompt;
    json_object_set_new(r->history, "reference",
                        json_pack("{s:s,s:o,s:o}", "args", ref->key, "gen", jnum(r->obj.ref_gen), "long_prompt",
                                  jnum(r->obj.ref_lprompt)));
}

/* The search starts from llama.cpp's own placement, not the role's args,
 * when those did not run or measured clearly below it (by the screen's 2%)
 * and the space is the default one: at 12,800 MiB on the H200 the seed's
 * -t 6, q4_0 KV and -ub 256 were the start, and the 14 loads of a 6-minute
 * budget went to undoing them while fit's own placement generated faster
 * than anything the search reached. Fills *rs and points r->s at it. */
static bool start_from_reference(run_t *r, const cfg_t *before, const cfg_t *ref, tune_setup_t *rs,
                                 tune_result_t *res)
{
    if (!ok(ref) || (ok(before) && !(cfg_score(r, ref) > cfg_score(r, before) * 1.02)))
        return false;
    if (!tune_space_from_reference(r->s, rs))
        return false;
    r->s = rs;
    res->from_reference = true;
    res->space = rs->space;
    const char *why = ok(before) ? "it measured better than the role's args" : "the role's args did not run";
    say(r, "the search starts from llama.cpp's own placement (%s)", why);
    /* the history's "start", not a decision: the log's decisions table is
     * comparisons between two configurations */
    json_object_set_new(r->history, "start", json_pack("{s:s,s:s}", "from", ref->key, "why", why));
    return true;
}

void tune_result_free(tune_result_t *res)
{
    args_free(&res->args);
}

static void load_history(run_t *r)
{
    json_t *tr = json_object_get(r->history, "trials"), *e;
    size_t i;
    json_array_foreach(tr, i, e)
    {
        const char *key = json_string_value(json_object_get(e, "key"));
        json_t *ja = json_object_get(e, "args");
        if (!key || !json_is_array(ja))
            continue;
        size_t n = json_array_size(ja);
        char **a = xcalloc(n + 1, sizeof *a);
        for (size_t k = 0; k < n; k++)
            a[k] = xstrdup(json_string_value(json_array_get(ja, k)) ?: "");
        cfg_t *c = cfg_of_args(r, a, n, json_string_value(json_object_get(e, "label")));
        tune_meas_t m;
        tune__meas_from_record(e, &m);
        if (m.status == TUNE_INFEASIBLE) {
            c->planned = true;
            c->status = TUNE_INFEASIBLE;
            continue;
        }
        if (c->n_loads < MAX_LOADS) {
            c->loads[c->n_loads++] = m;
            c->status = m.status;
        }
    }
}

static void run_start(run_t *r, const tune_setup_t *s, json_t *history, void (*save)(void *), void *sud,
                      tune_result_t *res)
{
    *r = (run_t){.s = s, .history = history, .save = save, .sud = sud, .obj = s->obj};
    memset(res, 0, sizeof *res);
    res->vs_ref_gen = res->vs_ref_lprompt = NAN;
    r->t0 = clock_s(r);
    if (!json_is_array(json_object_get(history, "trials")))
        json_object_set_new(history, "trials", json_array());
    load_history(r);
}

static void run_result(const run_t *r, tune_result_t *res)
{
    res->trials = r->trials;
    res->skipped = r->skipped;
    res->budget_hit = r->budget_hit;
    res->interrupted = r->interrupted;
    snprintf(res->stop_reason, sizeof res->stop_reason, "%s", r->stop_reason);
    res->elapsed_s = elapsed(r);
}

/* The prune phase: the winner's extra flags (the role's, not what the
 * search varies) removed all at once and, when that loses, one by one,
 * each removal decided interleaved; the decisions go into the history's
 * "pruned". Returns the pruned winner. */
static cfg_t *prune(run_t *r, cfg_t *win, int runs, int cruns, int since)
{
    char **wargs = win ? tune__copy_args(win->args, win->n) : NULL;
    size_t nw = win ? win->n : 0;
    item_t items[32];
    size_t ni = win ? removable(wargs, nw, items, 32) : 0;
    json_t *pruned = json_array();
    if (ni && can_load(r)) {
        bool drop[32];
        for (size_t i = 0; i < ni; i++)
            drop[i] = true;
        size_t nn;
        char **all = without(wargs, nw, items, ni, drop, &nn);
        char label[200];
        snprintf(label, sizeof label, "without all %zu extra flags", ni);
        cfg_t *x = cfg_of_args(r, all, nn, label);
        double ratio;
        int v = compare(r, win, x, 3, cruns, since, &ratio);
        if (v == 2) {
            for (size_t i = 0; i < ni; i++)
                json_array_append_new(pruned, json_pack("{s:s,s:s}", "flag", wargs[items[i].at], "decision",
                                                        "kept (the budget ended the test)"));
            say(r, "prune: the budget ended the test; the extra flags stay");
        } else if (v <= 0 && ok(x)) {
            for (size_t i = 0; i < ni; i++)
                json_array_append_new(pruned, json_pack("{s:s,s:o,s:s}", "flag", wargs[items[i].at], "ratio",
                                                        jratio(ratio), "decision", "removed"));
            say(r, "prune: without every extra flag the paired ratio is %.3f → removed all %zu", ratio, ni);
            win = x;
        } else if (ni > 1) {
            say(r, "prune: the extra flags matter together (ratio %.3f); one by one", ratio);
            bool keep_all[32] = {0};
            for (size_t j = 0; j < ni && can_load(r); j++) {
                bool others_nothing = true; /* every flag before j removable alone */
                for (size_t k = 0; k < j; k++)
                    others_nothing &= !keep_all[k];
                if (j == ni - 1 && others_nothing) {
                    /* removing all mattered and none of the others did: this
                     * one is what mattered, no load needed to say so */
                    keep_all[j] = true;
                    json_array_append_new(pruned, json_pack("{s:s,s:o,s:s}", "flag", wargs[items[j].at], "ratio",
                                                            jratio(ratio), "decision",
                                                            "kept (removing all mattered, the others alone did not)"));
                    say(r, "prune: %s kept: removing every flag mattered, the others alone did not",
                        wargs[items[j].at]);
                    break;
                }
                bool one[32] = {0};
                one[j] = true;
                char **a1 = without(wargs, nw, items, ni, one, &nn);
                snprintf(label, sizeof label, "without %s%s%s", wargs[items[j].at], items[j].len > 1 ? " " : "",
                         items[j].len > 1 ? wargs[items[j].at + 1] : "");
                cfg_t *y = cfg_of_args(r, a1, nn, label);
                double q;
                int w = compare(r, win, y, 3, cruns, since, &q);
                keep_all[j] = w == 2 || !(w <= 0 && ok(y));
                json_array_append_new(pruned, json_pack("{s:s,s:o,s:s}", "flag", wargs[items[j].at], "ratio",
                                                        jratio(q), "decision",
                                                        w == 2         ? "kept (the budget ended the test)"
                                                        : keep_all[j] ? "kept"
                                                                      : "removed"));
            }
            bool drop2[32];
            bool any = false;
            for (size_t j = 0; j < ni; j++)
                any |= (drop2[j] = !keep_all[j]);
            if (any) {
                char **a2 = without(wargs, nw, items, ni, drop2, &nn);
                win = cfg_of_args(r, a2, nn, "pruned");
                if (!ok(win) && can_load(r))
                    load(r, win, runs, runs);
                if (!ok(win)) /* not measured: keep the measured winner */
                    win = cfg_of_args(r, tune__copy_args(wargs, nw), nw, NULL);
            }
        } else {
            json_array_append_new(pruned, json_pack("{s:s,s:o,s:s}", "flag", wargs[items[0].at], "ratio", jratio(ratio),
                                                    "decision", "kept"));
            say(r, "prune: %s matters (paired ratio %.3f) → kept", wargs[items[0].at], ratio);
        }
    } else if (ni) {
        for (size_t i = 0; i < ni; i++)
            json_array_append_new(pruned, json_pack("{s:s,s:s}", "flag", wargs[items[i].at], "decision",
                                                    "kept (no budget left to test)"));
    }
    json_object_set_new(r->history, "pruned", pruned);
    args_free(&wargs);
    return win;
}

/* The reference phase: the winner against llama.cpp's own placement, one
 * adjacent pair of fresh loads and a second before llama.cpp's own
 * replaces it; the paired ratios into res. Returns the pick. */
static cfg_t *against_reference(run_t *r, cfg_t *win, cfg_t *ref, int cruns, tune_result_t *res)
{
    if (!ref || !ok(ref) || !win || !ok(win) || win == ref)
        return win;
    double ratio = NAN;
    int from = r->trials - 1, v = can_load(r) ? compare(r, win, ref, 1, cruns, from, &ratio) : 2;
    if (v == -1 && can_load(r))
        v = compare(r, win, ref, 2, cruns, from, &ratio);
    cfg_t *pick = v == -1 ? ref : win;
    const char *wl = win->label[0] ? win->label : "the winner";
    double qg = v == 2 ? NAN : paired_metric(win, ref, from, M_GEN),
           ql = v == 2 ? NAN : paired_metric(win, ref, from, M_LONG);
    if (v == 2)
        say(r, "reference: %s vs llama.cpp's own placement: not compared (budget); the winner stays", wl);
    else
        say(r, "reference: %s vs llama.cpp's own placement: %s (paired: gen ×%.3f, long prompt ×%.3f)", wl,
            v < 0 ? "llama.cpp's own is better → it is written" : v > 0 ? "the winner is better"
                                                                 : "a tie → the winner stays",
            qg, ql);
    note(r, "reference",
         json_pack("{s:s,s:s,s:o,s:s,s:o,s:o}", "a", wl, "b", ref->label, "ratio", jratio(ratio), "pick",
                   v == 2        ? "the winner (not compared: the budget was spent)"
                   : pick == ref ? ref->label
                                 : "the winner",
                   "gen_ratio", jratio(qg), "long_prompt_ratio", jratio(ql)));
    if (v != 2) {
        res->vs_ref_gen = qg;
        res->vs_ref_lprompt = ql;
        res->ref_won = pick == ref;
    }
    return pick;
}

int tune_run(const tune_setup_t *s, json_t *history, void (*save)(void *), void *sud, tune_result_t *res)
{
    run_t r;
    size_t resumed = json_array_size(json_object_get(history, "trials"));
    run_start(&r, s, history, save, sud, res);
    if (resumed)
        say(&r, "resuming with %zu recorded trials", resumed);
    int runs = s->runs > 0 ? s->runs : 3;
    int cruns = runs > 2 ? runs - 1 : runs; /* per load of an interleaved comparison (it has several) */

    /* the role as it is: the "before" figures and the scale of scores */
    phase(&r, "baseline", s->ref_args ? 0.12 : 0.08);
    char **b0 = tune__copy_args(s->args, s->n_args);
    size_t nb0 = s->n_args;
    if (s->ctx_min) {
        char cs[32];
        snprintf(cs, sizeof cs, "%llu", (unsigned long long)s->ctx_min);
        if (!args_get(b0, nb0, ARG_CTX_SIZE) || atoll(args_get(b0, nb0, ARG_CTX_SIZE)) < (long long)s->ctx_min)
            b0 = tune__set(b0, &nb0, ARG_CTX_SIZE, cs);
    }
    char **base = tune__copy_args(b0, nb0); /* what the points apply to */
    size_t n_base = nb0;
    cfg_t *before = cfg_of_args(&r, b0, nb0, "the role's args");
    if (!has_load(before, runs))
        load(&r, before, runs, runs);
    cfg_t *ref = s->ref_args ? cfg_of_args(&r, tune__copy_args(s->ref_args, s->n_ref_args), s->n_ref_args,
                                           "llama.cpp's own placement")
                             : NULL;
    if (ref && !has_load(ref, runs))
        load(&r, ref, runs, runs);
    set_base(&r, last_ok(before));
    set_base(&r, ref ? last_ok(ref) : NULL); /* the role's args did not run */
    r.ref = ref;
    reference_figures(&r, ref);
    tune_setup_t rs; /* the setup searched from llama.cpp's own placement (r.s points at it) */
    if (start_from_reference(&r, before, ref, &rs, res)) {
        args_free(&base);
        base = tune__copy_args(rs.args, rs.n_args);
        n_base = rs.n_args;
    }

    phase(&r, "screen", 0.45);
    double rel[TUNE_MAX_DIMS][TUNE_MAX_VALUES];
    tune_point_t cur_p;
    cfg_t *cur = screen(&r, base, n_base, rel, &cur_p);
    phase(&r, "pairs", 0.52);
    pairs(&r, base, n_base, &cur_p, rel);

    /* the best few screened, measured properly */
    phase(&r, "measure", 0.6);
    int since = r.trials; /* the interleaved decisions below go on from the loads made from here */
    cfg_t *top[N_SURVIVORS + 1];
    int nt = 0;
    for (int k = 0; k < N_SURVIVORS; k++) {
        cfg_t *best = NULL;
        for (size_t i = 0; i < r.n; i++) {
            cfg_t *c = r.c[i];
            bool taken = false;
            for (int j = 0; j < nt; j++)
                taken |= top[j] == c;
            if (taken || !ok(c) || !c->has_p)
                continue;
            if (!best || cfg_score(&r, c) > cfg_score(&r, best))
                best = c;
        }
        if (best)
            top[nt++] = best;
    }
    if (ok(cur)) {
        bool in = false;
        for (int j = 0; j < nt; j++)
            in |= top[j] == cur;
        if (!in)
            top[nt++] = cur;
    }
    for (int j = 0; j < nt && can_load(&r); j++)
        if (!has_load(top[j], runs))
            load(&r, top[j], runs, runs);
    /* rank by the estimate over all loads */
    for (int i = 1; i < nt; i++)
        for (int k = i; k > 0 && cfg_score(&r, top[k]) > cfg_score(&r, top[k - 1]); k--) {
            cfg_t *t = top[k];
            top[k] = top[k - 1];
            top[k - 1] = t;
        }
    while (nt > 0 && !ok(top[nt - 1]))
        nt--;
    cfg_t *win = nt ? top[0] : ok(before) ? before : ref && ok(ref) ? ref : NULL;

    /* the top two, interleaved */
    phase(&r, "confirm", 0.78);
    if (nt >= 2 && can_load(&r)) {
        double ratio;
        int want = s->budget_trials > 0 && s->budget_trials - r.trials < 2 ? 1 : 3;
        int v = compare(&r, top[0], top[1], want, cruns, since, &ratio);
        cfg_t *pick = v == 2 || v > 0 ? top[0] : v < 0 ? top[1] : simpler(top[1], top[0]) ? top[1] : top[0];
        say(&r, "confirm: %s vs %s: paired ratio %.3f → %s", top[0]->label, top[1]->label, ratio,
            v == 2  ? "not finished (budget): the better estimate stays"
            : v     ? (pick == top[0] ? "first is better" : "second is better")
                    : pick == top[1] ? "tie, the simpler wins" : "tie, the better-ranked stays");
        note(&r, "confirm",
             json_pack("{s:s,s:s,s:o,s:s}", "a", top[0]->label, "b", top[1]->label, "ratio", jratio(ratio), "pick",
                       pick->label));
        win = pick;
    }

    /* flags the role carried that change nothing */
    phase(&r, "prune", ref ? 0.93 : 1.0);
    win = prune(&r, win, runs, cruns, since);

    /* the winner against llama.cpp's own placement, interleaved from here */
    phase(&r, "reference", 1.0);
    win = against_reference(&r, win, ref, cruns, res);

    run_result(&r, res);
    int rc = -1;
    if (win && ok(win)) {
        res->ok = true;
        res->args = tune__copy_args(win->args, win->n);
        res->n_args = win->n;
        /* measured_tps: the median of every run of the winner's last two
         * proper loads (the interleaved confirmation, pruning or reference
         * ones) */
        double g[64], lp[MAX_LOADS];
        int ng = 0, nl = 0, used = 0;
        for (int pass = 0; pass < 2 && !ng; pass++)
            for (int i = win->n_loads; i-- > 0 && used < 2;) {
                const tune_meas_t *m = &win->loads[i];
                if (m->status != TUNE_OK || (pass == 0 && m->n_short < cruns))
                    continue;
                used++;
                for (int k = 0; k < m->n_short && ng < 64; k++)
                    g[ng++] = m->gen_runs[k];
                if (!isnan(m->lprompt))
                    lp[nl++] = m->lprompt;
            }
        res->measured_tps = ng ? round(tune__median(g, ng) * 100) / 100 : 0;
        res->long_prompt_tps = nl ? round(tune__median(lp, nl) * 10) / 10 : NAN;
        json_object_set_new(history, "winner", json_string(win->key));
        rc = 0;
    }
    run_free(&r);
    args_free(&base);
    return rc;
}

static void run_free(run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->c[i]->key);
        free(r->c[i]->label);
        json_decref(r->c[i]->headroom);
        args_free(&r->c[i]->args);
        free(r->c[i]);
    }
    free(r->c);
}

int tune_grid(const tune_setup_t *s, json_t *history, void (*save)(void *), void *sud, tune_result_t *res)
{
    run_t r;
    run_start(&r, s, history, save, sud, res);
    int runs = s->runs > 0 ? s->runs : 3;
    phase(&r, "grid", 1.0);
    long g = tune_grid_size(&s->space);
    cfg_t *best = NULL;
    for (long k = 0; k < g && can_load(&r); k++) {
        tune_point_t p;
        tune_grid_point(&s->space, k, &p);
        cfg_t *c = cfg_of_point(&r, s->args, s->n_args, &p);
        if (!c)
            continue;
        if (!has_load(c, runs))
            load(&r, c, runs, runs);
        set_base(&r, last_ok(c));
        if (ok(c) && (!best || cfg_score(&r, c) > cfg_score(&r, best)))
            best = c;
    }
    run_result(&r, res);
    int rc = -1;
    tune_meas_t e;
    if (best && estimate(best, &e)) {
        res->ok = true;
        res->args = tune__copy_args(best->args, best->n);
        res->n_args = best->n;
        res->measured_tps = round(e.gen * 100) / 100;
        res->long_prompt_tps = isnan(e.lprompt) ? NAN : round(e.lprompt * 10) / 10;
        json_object_set_new(history, "winner", json_string(best->key));
        rc = 0;
    }
    run_free(&r);
    return rc;
}

int tune_objective_parse(const char *s, tune_objective_t *o)
{
    memset(o, 0, sizeof *o);
    if (!strcmp(s, "gen")) {
        o->gen = 1;
        return 0;
    }
    if (!strcmp(s, "prompt")) {
        o->prompt = 1;
        return 0;
    }
    char *copy = xstrdup(s), *save = NULL;
    for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *ge = strstr(it, ">=");
        double w;
        if (ge) { /* a floor: "gen>=1" */
            *ge = 0;
            double *f = !strcmp(it, "gen") ? &o->gen_floor : !strcmp(it, "prompt") ? &o->prompt_floor : NULL;
            if (!f || !parse_f64(ge + 2, &w) || w <= 0 || w > 100) {
                free(copy);
                return -1;
            }
            *f = w;
            continue;
        }
        char *eq = strchr(it, '=');
        if (!eq || !parse_f64(eq + 1, &w) || w < 0) {
            free(copy);
            return -1;
        }
        *eq = 0;
        if (!strcmp(it, "gen"))
            o->gen = w;
        else if (!strcmp(it, "prompt"))
            o->prompt = w;
        else if (!strcmp(it, "cold"))
            o->cold = w;
        else if (!strcmp(it, "vision"))
            o->vision = w;
        else if (!strcmp(it, "turn"))
            o->turn = w;
        else {
            free(copy);
            return -1;
        }
    }
    free(copy);
    return o->gen + o->prompt + o->cold + o->vision + o->turn > 0 ? 0 : -1;
}
