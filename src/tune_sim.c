/*
 * tune_sim.c — simulated measurement for the tuner: landscapes shaped
 * after recorded ones, with per-run noise and a slow between-load drift,
 * so that search decisions can be tested deterministically in CI and
 * benchmarked without a GPU. Named as what it is: a simulation, never
 * used to report a configuration's speed.
 *
 * gpu-host-experts  the H200 histories at 12,800 MiB free (tests/fixtures/
 *                   gpu/h200-tune): generation ~ 1/(1 + 0.184·ncmoe), threads
 *                   worth +50% (t=6 → 16), prefill grows with ubatch
 *                   (weights streamed per ubatch), --poll 50 costs 3%;
 *                   a --fit point's ncmoe is what the planner's replay of
 *                   fit leaves on the host (a partial layer counted in part);
 *                   weights read in (--load-mode none) +34% long prompt.
 * gpu-full          21,500 MiB free: generation flat in ubatch, prefill up to
 *                   ~1.5× from ub 512 to 4096, quantized KV 3-6% slower.
 * gpu-full-pair     as gpu-full, but two changes pay only together: -ub 4096
 *                   prefills faster than 2048 only with f16 KV, and f16 alone
 *                   costs 1% generation (coordinate descent alone misses it).
 * cpu-tiny          a 2-core CPU: threads and ubatch matter, the rest is noise.
 * cpu-flat          nothing matters but threads (ties, pruning).
 * A draft model (-md, drafting) in any landscape: the seed's trade-off,
 * +14% generation at 8 drafted tokens and a 45% longer cold start
 * (draft_gain), for the tuner's draft dimension and its objective.
 * Context checkpoints off (-ctxcp 0) on a model with recurrent or
 * sliding-window layers: a fresh prompt prefills 1.29× faster (the H200
 * survey) and a chat's second turn (the turn weight) prefills the whole
 * conversation again instead of ~170 tokens.
 * Memory: the planner's prediction with a hidden error (the true compute
 * buffer 25% smaller with host experts: the size of the error the planner
 * had before it modelled host experts), so the tuner's edge handling is
 * exercised: OOM when the truth does not fit, free memory after the runs
 * from the truth.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "tune_int.h"
#include "util.h"

typedef enum { L_HOST_EXPERTS, L_FULL, L_FULL_PAIR, L_CPU, L_FLAT } land_t;

const char *const tune_sim_landscapes[] = {"gpu-host-experts", "gpu-full", "gpu-full-pair", "cpu-tiny", "cpu-flat", NULL};

struct tune_sim {
    land_t land;
    const tune_setup_t *s; /* borrowed: mi and GPUs for the memory model */
    uint64_t rng;
    double drift, clock;
    long cpus;
};

static double urand(tune_sim_t *m)
{
    /* xorshift64*: deterministic per seed */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (double)((m->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static double gauss(tune_sim_t *m)
{
    double u = urand(m), v = urand(m);
    return sqrt(-2 * log(u > 1e-12 ? u : 1e-12)) * cos(2 * M_PI * v);
}

tune_sim_t *tune_sim_new(const char *landscape, const tune_setup_t *s, unsigned seed, char *err, size_t errlen)
{
    int k = 0;
    while (tune_sim_landscapes[k] && strcmp(tune_sim_landscapes[k], landscape))
        k++;
    if (!tune_sim_landscapes[k]) {
        snprintf(err, errlen, "unknown landscape '%s' (gpu-host-experts, gpu-full, gpu-full-pair, cpu-tiny, cpu-flat)", landscape);
        return NULL;
    }
    tune_sim_t *m = xcalloc(1, sizeof *m);
    m->land = (land_t)k;
    m->s = s;
    m->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed * 0x100000001B3ull);
    m->drift = 1;
    m->cpus = s->host_cpus > 0 ? s->host_cpus : 16;
    return m;
}

void tune_sim_free(tune_sim_t **m)
{
    free(*m);
    *m = NULL;
}

double tune_sim_clock(void *sim)
{
    return ((tune_sim_t *)sim)->clock;
}

static long getl(char *const *a, size_t n, args_opt_t o, long dflt)
{
    long v;
    return args_get_long(a, n, o, &v) ? v : dflt;
}

static bool has(char *const *a, size_t n, const char *flag)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(a[i], flag))
            return true;
    return false;
}

/* A draft model (-md) that drafts (a --spec-type): the seed's case, +14%
 * generation at 8 drafted tokens (+10% at llama-server's default 3, +12% at
 * 4, +6% at 16: long drafts get rejected more) and a 45% longer cold start
 * (its cold-start score 1/1.45 = 0.69, -31%). 1 without a draft. */
static double draft_gain(char *const *a, size_t n)
{
    if (!args_get(a, n, ARG_DRAFT_MODEL) || !args_get(a, n, ARG_SPEC_TYPE))
        return 1;
    long dn = getl(a, n, ARG_DRAFT_MAX, 3);
    return dn >= 16 ? 1.06 : dn >= 8 ? 1.14 : dn >= 4 ? 1.12 : 1.10;
}

/* The memory side of a configuration, from one planner prediction: the true
 * headroom (MiB) on the tightest GPU, the planner's corrected by the hidden
 * error (INFINITY without GPUs, -1 for args the planner cannot read), and
 * the layers' worth of experts on the host: -ncmoe as given, or what --fit
 * places (the planner replays it): its partial layers, the first of them
 * only partly on the host (down alone: 1/3, gate and down: 2/3), and a
 * layer fit leaves off the GPU altogether as 1.5 (its attention too). */
static void sim_memory(const tune_sim_t *m, char *const *a, size_t n, double *headroom, double *host_layers)
{
    const tune_setup_t *s = m->s;
    long nc;
    bool pinned = args_get_long(a, n, ARG_N_CPU_MOE, &nc);
    *host_layers = pinned ? (double)nc : 0;
    *headroom = INFINITY;
    if (!s->n_gpu)
        return;
    plan_opts_t po;
    plan_t pl;
    char err[256];
    if (tune__opts(s, a, n, &po, err, sizeof err)) {
        *headroom = -1;
        return;
    }
    plan_predict(s->mi, &po, s->gpus, s->n_gpu, -1, 0, &pl);
    if (!pinned && pl.fit.status == PLAN_FIT_PLACED) {
        double h = 0;
        uint32_t on_gpu = 0;
        for (int d = 0; d < pl.fit.n_dev; d++) {
            on_gpu += pl.fit.n_layer[d];
            if (!pl.fit.n_part[d])
                continue;
            plan_lf_t lf = pl.fit.overflow[d];
            h += (double)pl.fit.n_part[d] - 1 + (lf == PLAN_LF_GATE ? 1.0 / 3 : lf == PLAN_LF_UP ? 2.0 / 3 : 1.0);
        }
        uint32_t all = s->mi->n_layer + 1;
        if (on_gpu < all)
            h += 1.5 * (double)(all - on_gpu);
        *host_layers = h;
    }
    bool host = po.ncmoe > 0 || po.cpu_moe || (pl.fit.status == PLAN_FIT_PLACED && pl.fit.n_part[0] > 0);
    for (int d = 1; d < pl.n_dev; d++) {
        double h = (double)pl.dev[d].free_mib - (double)pl.dev[d].total / 1048576.0 - PLAN_CUDA_CTX_MIB;
        if (host)
            h += 0.25 * (double)pl.dev[d].compute / 1048576.0; /* the hidden error */
        *headroom = h < *headroom ? h : *headroom;
    }
}

/* tune_sim_truth, and sim_memory's figures (the cold start and the free
 * memory after the runs read them) */
/* A model with layers a checkpoint must cover (recurrent, sliding-window)
 * run without them. */
static bool no_checkpoints(const tune_sim_t *m, char *const *a, size_t n)
{
    const char *cp = args_get(a, n, ARG_CTX_CHECKPOINTS);
    return cp && !strcmp(cp, "0") && (m->s->mi->n_layer_recurrent || m->s->mi->n_layer_swa);
}

/* A chat's second turn after a first of long_tokens prefilled at rate t/s:
 * ~170 new tokens at a short prompt's rate when the first turn is kept,
 * the whole conversation again when a model that needs checkpoints has
 * none (bench --scenario turn on the tiny hybrid model: 169 against 3,331
 * tokens prefilled). Seconds. */
static double turn_prefill_s(const tune_sim_t *m, char *const *a, size_t n, int long_tokens, double rate)
{
    return no_checkpoints(m, a, n) ? (long_tokens + 170) / rate : 170 / (rate / 8);
}

static tune_status_t truth(const tune_sim_t *m, char *const *a, size_t n, double *gen, double *lprompt,
                           double *headroom_out, double *nc_out)
{
    char e[256];
    double nc, headroom;
    sim_memory(m, a, n, &headroom, &nc);
    *nc_out = nc;
    *headroom_out = headroom;
    if (args_check(a, n, e, sizeof e) >= 0)
        return TUNE_FAILED;
    /* llama-server's default thread count: every core on the H200 host the
     * GPU landscapes are shaped after (its logs: n_threads = 16 / 16), the
     * physical half on the CPU ones */
    bool gpu_land = m->land == L_HOST_EXPERTS || m->land == L_FULL || m->land == L_FULL_PAIR;
    long t_dflt = gpu_land ? m->cpus : m->cpus / 2 > 0 ? m->cpus / 2 : 1;
    double t = (double)getl(a, n, ARG_THREADS, t_dflt);
    double ub = (double)getl(a, n, ARG_UBATCH, 512);
    const char *kv = args_get(a, n, ARG_CACHE_K) ?: "f16";
    const char *fa = args_get(a, n, ARG_FLASH_ATTN) ?: "auto";
    double kvf = !strcmp(kv, "q4_0") ? 0.97 : !strcmp(kv, "q8_0") ? 0.99 : 1.0;
    if (strcmp(kv, "f16") && !strcmp(fa, "off"))
        return TUNE_FAILED; /* quantized V needs flash attention, as llama-server says */
    if (headroom < 0)
        return TUNE_OOM;
    double flags = (has(a, n, "--poll") ? 0.97 : 1) * (has(a, n, "--prio") ? 1.005 : 1);
    double tc = t > m->cpus ? m->cpus - (t - m->cpus) : t; /* oversubscribed */
    switch (m->land) {
    case L_HOST_EXPERTS: {
        /* the host's experts read into pinned memory rather than mapped:
         * +34% long prompt, +4% generation (bench/tuner-gpu.sh on the H200,
         * 12,800 MiB, `-c 32768 -np 1` with and without --load-mode none,
         * two rounds each); its cold start was not measured, so not modelled */
        bool read_in = nc > 0 && !tune__maps_weights(a, n);
        *gen = 90.0 * (0.5 + 0.5 * tc / 16) / (0.5 + 0.5) * (1 + 0.184 * 16) / (1 + 0.184 * nc) * kvf * flags *
               (read_in ? 1.04 : 1);
        *lprompt = 7000 * ub / (ub + 200) * (1 - 0.008 * nc) * (0.85 + 0.15 * tc / 16) * (read_in ? 1.34 : 1);
        break;
    }
    case L_FULL: {
        /* a quantized cache's generation cost at full offload, from the
         * H200 histories' same-ubatch pairs (tests/fixtures/gpu/h200-tune-6,
         * -7): q8_0 / f16 median 0.966 (0.928-0.994), q4_0 / f16 0.942 */
        double kvg = !strcmp(kv, "q4_0") ? 0.94 : !strcmp(kv, "q8_0") ? 0.97 : 1.0;
        *gen = 210 * (ub <= 512 ? 1.0 : 1 - 0.01 * log2(ub / 512)) * kvg * flags;
        *lprompt = 9000 * ub / (ub + 700) * (0.98 + 0.02 * kvf);
        break;
    }
    case L_FULL_PAIR: {
        bool f16 = !strcmp(kv, "f16"), big = ub >= 4096;
        double ue = ub > 2048 ? 2048 : ub;
        *gen = 210 * (f16 ? (big ? 1.02 : 0.99) : 0.97) * flags;
        *lprompt = 9000 * ue / (ue + 700) * (f16 && big ? 1.12 : 1.0);
        break;
    }
    case L_CPU:
        *gen = 400 * (tc >= 2 ? 1 : 0.6) * (ub >= 256 ? 1 : 0.97) * kvf * (!strcmp(fa, "off") ? 0.97 : 1) * flags;
        *lprompt = 2000 * ub / (ub + 128) * (tc >= 2 ? 1 : 0.55);
        break;
    case L_FLAT:
        *gen = 300 * (tc >= 2 ? 1 : 0.7) * (has(a, n, "--poll") ? 0.90 : 1);
        *lprompt = 1500 * (tc >= 2 ? 1 : 0.7);
        break;
    }
    *gen *= draft_gain(a, n);
    /* without context checkpoints a fresh prompt prefills 1.29× faster on
     * the hybrid 35B shape (the H200 flag survey, tests/fixtures/gpu/
     * h200-tune-4: -ctxcp 0 against the same configuration) */
    if (no_checkpoints(m, a, n))
        *lprompt *= 1.29;
    return TUNE_OK;
}

tune_status_t tune_sim_truth(const tune_sim_t *m, char *const *a, size_t n, double *gen, double *lprompt)
{
    double nc, headroom;
    return truth(m, a, n, gen, lprompt, &headroom, &nc);
}

int tune_sim_measure(void *sim, char *const *a, size_t n, const tune_req_t *req, tune_meas_t *out, json_t *rec)
{
    tune_sim_t *m = sim;
    double gen = 0, lp = 0;
    /* drift: a slow random walk between loads, within ±8% */
    m->drift *= 1 + 0.025 * gauss(m);
    m->drift = m->drift > 1.08 ? 1.08 : m->drift < 0.92 ? 0.92 : m->drift;
    double nc, h;
    tune_status_t st = truth(m, a, n, &gen, &lp, &h, &nc);
    out->cold_s = (8 + 0.2 * nc) * (args_get(a, n, ARG_DRAFT_MODEL) ? 1.45 : 1);
    m->clock += out->cold_s;
    json_object_set_new(rec, "simulated", json_true());
    if (st != TUNE_OK) {
        out->status = st;
        snprintf(out->error, sizeof out->error, "%s", st == TUNE_OOM ? "out of memory (simulated)" : "refused (simulated)");
        return 0;
    }
    int ns = req->short_runs > 16 ? 16 : req->short_runs;
    double g[16];
    out->gen_min = INFINITY;
    out->gen_max = 0;
    for (int k = 0; k < ns; k++) {
        g[k] = gen * m->drift * (1 + 0.015 * gauss(m));
        out->gen_runs[k] = g[k];
        out->gen_min = g[k] < out->gen_min ? g[k] : out->gen_min;
        out->gen_max = g[k] > out->gen_max ? g[k] : out->gen_max;
        m->clock += 300 / g[k] + 0.3;
    }
    out->n_short = ns;
    out->gen = ns ? tune__median(g, ns) : NAN;
    out->sprompt = lp / 8;
    out->ttft_ms = 188 / out->sprompt * 1000;
    out->prefill_s = 188 / out->sprompt;
    double l[16];
    int nl = req->long_tokens > 0 ? (req->long_runs > 16 ? 16 : req->long_runs) : 0;
    out->lp_min = INFINITY;
    out->lp_max = 0;
    for (int k = 0; k < nl; k++) {
        l[k] = lp * m->drift * (1 + 0.02 * gauss(m));
        out->lp_min = l[k] < out->lp_min ? l[k] : out->lp_min;
        out->lp_max = l[k] > out->lp_max ? l[k] : out->lp_max;
        m->clock += req->long_tokens / l[k] + 128 / gen;
    }
    out->n_long = nl;
    out->lprompt = nl ? tune__median(l, nl) : NAN;
    if (req->turn && req->long_tokens > 0) {
        double rate = lp * m->drift * (1 + 0.02 * gauss(m));
        out->turn_s = turn_prefill_s(m, a, n, req->long_tokens, rate);
        out->turn_cached = no_checkpoints(m, a, n) ? 0 : req->long_tokens - 4;
        m->clock += out->turn_s + 2 * 16 / gen;
    }
    out->free_mib = isinf(h) ? -1 : (int64_t)h;
    out->pp = -1;
    out->status = TUNE_OK;
    return 0;
}

int tune_replay_measure(void *history, char *const *a, size_t n, const tune_req_t *req, tune_meas_t *out, json_t *rec)
{
    (void)req;
    json_t *h = history;
    char *key = tune_join_args(a, n);
    json_t *tr = json_object_get(h, "trials"), *e, *hit = NULL;
    size_t i;
    /* cycle through the recorded loads of this configuration */
    json_t *seen = json_object_get(h, "_replay_seen");
    if (!seen) {
        seen = json_object();
        json_object_set_new(h, "_replay_seen", seen);
    }
    json_int_t want = json_integer_value(json_object_get(seen, key)), k = 0;
    json_t *first = NULL;
    json_array_foreach(tr, i, e)
    {
        const char *ek = json_string_value(json_object_get(e, "key"));
        const char *st = json_string_value(json_object_get(e, "status"));
        if (!ek || strcmp(ek, key) || (st && !strcmp(st, "infeasible")))
            continue;
        if (!first)
            first = e;
        if (k++ == want) {
            hit = e;
            break;
        }
    }
    if (!hit && first) {
        hit = first;
        want = 0;
    }
    json_object_set_new(seen, key, json_integer(want + 1));
    free(key);
    json_object_set_new(rec, "replayed", json_true());
    if (!hit) {
        out->status = TUNE_FAILED;
        snprintf(out->error, sizeof out->error, "not in the recorded history");
        return 0;
    }
    /* the record format is tune_search.c's; read the figures back */
    tune__meas_from_record(hit, out);
    if (out->status == TUNE_INFEASIBLE || out->status == TUNE_TIGHT)
        out->status = TUNE_FAILED;
    out->free_mib = -1; /* the recorded run's memory is not this one's */
    out->pp = -1;
    return 0;
}

void tune_cmp_free(tune_cmp_t *c)
{
    tune_result_free(&c->res);
    free(c->best_label);
    c->best_label = NULL;
}

/* tune_score of generation g, long prompt l and a second turn's prefill
 * seconds t (NAN: not measured) against g0, l0, t0. */
static double score_glt(const tune_objective_t *o, double g0, double l0, double t0, double g, double l, double t)
{
    tune_meas_t base = {.gen = g0, .lprompt = l0, .cold_s = NAN, .turn_s = t0},
                m = {.gen = g, .lprompt = l, .cold_s = NAN, .turn_s = t};
    return tune_score(o, &base, &m);
}

/* Score of a configuration's truth on a simulated landscape (-1: does not
 * run), against g0, l0 and a fixed second-turn scale. */
static double truth_score(const tune_sim_t *sim, const tune_objective_t *o, char *const *a, size_t n, double g0,
                          double l0)
{
    double g, l;
    if (tune_sim_truth(sim, a, n, &g, &l) != TUNE_OK)
        return -1;
    return score_glt(o, g0, l0, 0.3, g, l, o->turn > 0 ? turn_prefill_s(sim, a, n, 3100, l) : NAN);
}

/* The grid strategy's loads on a fresh draw of the landscape. */
static int grid_loads(const tune_setup_t *s, const char *landscape, unsigned seed)
{
    char err[256];
    tune_sim_t *gsim = tune_sim_new(landscape, s, seed, err, sizeof err);
    if (!gsim)
        return 0;
    tune_setup_t gs = *s;
    gs.ud = gs.cud = gsim;
    gs.budget_s = 0;
    gs.budget_trials = 0;
    gs.progress = NULL;
    json_t *gh = json_pack("{s:s,s:[]}", "role", s->role ? s->role : "", "trials");
    tune_result_t gres;
    tune_grid(&gs, gh, NULL, NULL, &gres);
    int loads = gres.trials;
    tune_result_free(&gres);
    json_decref(gh);
    tune_sim_free(&gsim);
    return loads;
}

int tune_sim_compare(tune_setup_t *s, const char *landscape, unsigned seed, tune_cmp_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    tune_sim_t *sim = tune_sim_new(landscape, s, seed, err, errlen);
    if (!sim)
        return -1;
    s->measure = tune_sim_measure;
    s->ud = sim;
    s->clock = tune_sim_clock;
    s->cud = sim;
    json_t *h = json_pack("{s:s,s:s,s:[]}", "role", s->role ? s->role : "", "simulated", landscape, "trials");
    out->rc = tune_run(s, h, NULL, NULL, &out->res);
    json_decref(h);
    /* the grid's best by the landscape's truth, llama.cpp's own placement
     * among the candidates and the floors' reference as the search had it */
    double g0 = 100, l0 = 4000; /* a fixed scale: the ratio does not depend on it */
    tune_objective_t o = s->obj;
    double rg, rl, best = -1;
    out->grid = tune_grid_size(&s->space);
    if (s->ref_args && tune_sim_truth(sim, s->ref_args, s->n_ref_args, &rg, &rl) == TUNE_OK) {
        o.ref_gen = rg;
        o.ref_lprompt = rl;
        best = truth_score(sim, &o, s->ref_args, s->n_ref_args, g0, l0);
        out->best_label = xstrdup("llama.cpp's own placement");
    } else if (tune_sim_truth(sim, s->args, s->n_args, &rg, &rl) == TUNE_OK) {
        o.ref_gen = rg; /* floors against the baseline */
        o.ref_lprompt = rl;
    }
    for (long k = 0; k < out->grid; k++) {
        tune_point_t p;
        tune_grid_point(&s->space, k, &p);
        size_t n;
        char **a = tune_point_args(s, s->args, s->n_args, &p, &n);
        if (!a)
            continue;
        double sc = truth_score(sim, &o, a, n, g0, l0);
        if (sc > 0)
            out->feasible++;
        if (sc > best) {
            best = sc;
            free(out->best_label);
            out->best_label = tune_point_label(&s->space, &p);
        }
        args_free(&a);
    }
    out->grid_loads = grid_loads(s, landscape, seed);
    if (out->rc == 0 && best > 0)
        out->found = truth_score(sim, &o, out->res.args, out->res.n_args, g0, l0) / best;
    tune_sim_free(&sim);
    s->ud = s->cud = NULL; /* the simulation is gone: nothing in s points at it */
    s->measure = NULL;
    s->clock = NULL;
    return 0;
}

void tune_replay_compare(tune_setup_t *s, json_t *rec, tune_cmp_t *out)
{
    memset(out, 0, sizeof *out);
    /* the grid's best by the same objective, against its first record */
    json_t *tr = json_object_get(rec, "trials"), *e;
    size_t i;
    double g0 = 0, l0 = 0, best = -1;
    json_array_foreach(tr, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status")) ?: "";
        if (strcmp(json_string_value(json_object_get(e, "phase")) ?: "", "grid") || !strcmp(st, "infeasible"))
            continue;
        out->grid_loads++;
        if (strcmp(st, "ok"))
            continue;
        double g = json_number_value(json_object_get(e, "gen_tps"));
        double l = json_number_value(json_object_get(e, "long_prompt_tps"));
        if (!g0) {
            g0 = g;
            l0 = l;
        }
        double sc = score_glt(&s->obj, g0, l0, NAN, g, l, NAN);
        if (sc > best) {
            best = sc;
            out->best_gen = g;
        }
    }
    out->grid = out->grid_loads;
    s->measure = tune_replay_measure;
    s->ud = rec;
    json_t *h = json_pack("{s:s,s:[]}", "role", s->role ? s->role : "", "trials");
    out->rc = tune_run(s, h, NULL, NULL, &out->res);
    json_decref(h);
    s->ud = NULL; /* rec is the caller's: s keeps no pointer to it */
    s->measure = NULL;
    if (out->rc != 0)
        return;
    char *key = tune_join_args(out->res.args, out->res.n_args);
    json_array_foreach(tr, i, e) if (!strcmp(json_string_value(json_object_get(e, "key")) ?: "", key))
    {
        double g = json_number_value(json_object_get(e, "gen_tps"));
        double l = json_number_value(json_object_get(e, "long_prompt_tps"));
        out->found = best > 0 ? score_glt(&s->obj, g0, l0, NAN, g, l, NAN) / best : 0;
        out->found_gen = g;
        break;
    }
    free(key);
}
