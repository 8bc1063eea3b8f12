/*
 * tune_space.c — the tuner's search space: which dimensions suit the
 * situation (CPU only, everything on the GPUs, experts on the host), their
 * values, and a point's llama-server command line. Relative -ncmoe values
 * are resolved here with the planner, so "min" follows the ubatch, KV type
 * and context of the same point. The planner sees the role's draft and
 * projector (tune_setup_t.rp): a point that keeps the draft pays for its
 * memory, one that drops it does not. The draft length is set only while
 * the draft is on, so points that differ in it alone with the draft off
 * are one command line (one configuration, measured once).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "tune_int.h"
#include "util.h"

char **tune__copy_args(char *const *a, size_t n)
{
    char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = xstrdup(a[i]);
    return v;
}

char **tune__set(char **argv, size_t *n, int opt, const char *value)
{
    char **next = args_set(argv, *n, (args_opt_t)opt, value, n);
    args_free(&argv);
    return next;
}

double tune__median(double *v, int n)
{
    /* insertion sort: n is a handful */
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && v[k] < v[k - 1]; k--) {
            double t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------- planner helpers ---------- */

int tune__opts(const tune_setup_t *s, char *const *args, size_t n, plan_opts_t *po, char *err, size_t errlen)
{
    /* with the role's draft and projector: the gate counts what loads */
    return s->rp ? roleplan_opts(s->rp, args, n, po, err, errlen) : plan_opts_from_args(args, n, po, err, errlen);
}

static bool plan_of(const tune_setup_t *s, char *const *args, size_t n, plan_t *pl, char *err, size_t errlen)
{
    plan_opts_t po;
    if (tune__opts(s, args, n, &po, err, errlen))
        return false;
    plan_predict(s->mi, &po, s->gpus, s->n_gpu, s->n_gpu ? -1 : s->host_free_mib, 0, pl);
    return true;
}

int tune_headroom(const tune_setup_t *s, char *const *args, size_t n, double *headroom_mib, double *band_mib,
                  json_t *rec, char *err, size_t errlen)
{
    plan_t pl;
    if (!plan_of(s, args, n, &pl, err, errlen))
        return -EINVAL;
    double least = INFINITY, band = 0;
    json_t *head = rec ? json_object() : NULL;
    for (int d = 0; d < pl.n_dev; d++) {
        const plan_dev_t *D = &pl.dev[d];
        if (D->free_mib < 0)
            continue;
        double h = (double)D->free_mib - (double)D->total / 1048576.0;
        if (d > 0) /* a GPU: llama-server's own CUDA context is not in the totals */
            h -= PLAN_CUDA_CTX_MIB;
        if (head)
            json_object_set_new(head, D->name, json_real(round(h * 10) / 10));
        if (h < least) {
            least = h;
            /* what the planner estimates rather than counts: compute buffers
             * (within ~5%) and CUDA's own context; 128 MiB + 5% of them */
            band = 128 + 0.05 * (double)D->compute / 1048576.0;
        }
    }
    if (head)
        json_object_set_new(rec, "plan_headroom_mib", head);
    *headroom_mib = least;
    *band_mib = band;
    return 0;
}

int64_t tune__min_ncmoe(const tune_setup_t *s, char *const *args, size_t n)
{
    plan_opts_t po;
    char err[256];
    if (tune__opts(s, args, n, &po, err, sizeof err))
        return -1;
    return plan_min_ncmoe(s->mi, &po, s->gpus, s->n_gpu, (uint64_t)PLAN_CUDA_CTX_MIB << 20);
}

uint64_t tune__slot_ctx(const tune_setup_t *s, char *const *args, size_t n)
{
    long c = 0, np = 1;
    if (!args_get_long(args, n, ARG_CTX_SIZE, &c) || c <= 0)
        c = s->mi->n_ctx_train;
    /* -np unset: llama-server's auto (4 slots over one unified cache, so
     * one request may use all of it); set: the context is split per slot */
    if (!args_get_long(args, n, ARG_PARALLEL, &np) || np <= 0)
        np = 1;
    return c > 0 ? (uint64_t)c / (uint64_t)np : 0;
}

tune_situation_t tune_situation(const tune_setup_t *s)
{
    if (s->n_gpu == 0)
        return TUNE_SIT_CPU;
    if (!s->mi->n_expert)
        return TUNE_SIT_FULL_GPU;
    char **a = tune__copy_args(s->args, s->n_args);
    size_t n = s->n_args;
    a = tune__set(a, &n, ARG_N_CPU_MOE, NULL);
    a = tune__set(a, &n, ARG_CPU_MOE, NULL);
    a = tune__set(a, &n, ARG_FIT, "off");
    if (s->ctx_min) {
        char cs[32];
        snprintf(cs, sizeof cs, "%llu", (unsigned long long)s->ctx_min);
        a = tune__set(a, &n, ARG_CTX_SIZE, cs);
    }
    double h = 0, band;
    char err[256];
    int r = tune_headroom(s, a, n, &h, &band, NULL, err, sizeof err);
    args_free(&a);
    return r == 0 && h < 0 ? TUNE_SIT_HOST_EXPERTS : TUNE_SIT_FULL_GPU;
}

char **tune_reference_args(const tune_setup_t *s, size_t *n)
{
    static const args_opt_t placed[] = {ARG_NGL,      ARG_N_CPU_MOE,  ARG_CPU_MOE,    ARG_TENSOR_SPLIT,
                                        ARG_SPLIT_MODE, ARG_MAIN_GPU, ARG_FIT,        ARG_FIT_TARGET,
                                        ARG_UBATCH,   ARG_BATCH,      ARG_CACHE_K,    ARG_CACHE_V,
                                        ARG_FLASH_ATTN, ARG_THREADS,  ARG_THREADS_BATCH, ARG_NO_MMPROJ_OFFLOAD};
    char **a = tune__copy_args(s->args, s->n_args);
    *n = s->n_args;
    for (size_t i = 0; i < sizeof placed / sizeof placed[0]; i++)
        a = tune__set(a, n, placed[i], NULL);
    /* at the least context the user requires, which the search may pick:
     * at the role's larger one llama.cpp places for a context nobody asked
     * for (at 21,500 MiB free on the H200 the role's 262,144 put 11 layers'
     * experts on the host, 126 t/s against 219 at 47,872) */
    if (s->ctx_min) {
        char cs[32];
        snprintf(cs, sizeof cs, "%llu", (unsigned long long)s->ctx_min);
        a = tune__set(a, n, ARG_CTX_SIZE, cs);
    }
    return a;
}

/* ---------- dimensions ---------- */

static tune_dim_t *dim_new(tune_space_t *sp, tune_dim_kind_t k, const char *name)
{
    if (sp->n_dims == TUNE_MAX_DIMS)
        return NULL;
    tune_dim_t *d = &sp->dims[sp->n_dims++];
    memset(d, 0, sizeof *d);
    d->kind = k;
    d->name = name;
    return d;
}

static void dim_value(tune_dim_t *d, const char *v)
{
    /* a value that does not fit its slot is left out, never cut short */
    size_t len = v ? strlen(v) : 0;
    if (d && v && len < sizeof d->values[0] && d->n_values < TUNE_MAX_VALUES && tune_value_index(d, v) < 0)
        memcpy(d->values[d->n_values++], v, len + 1);
}

int tune_value_index(const tune_dim_t *d, const char *v)
{
    for (int i = 0; i < d->n_values; i++)
        if (!strcmp(d->values[i], v))
            return i;
    return -1;
}

/* current: the role's explicit value, or "default" (llama-server's own). */
static tune_dim_t *dim_add(tune_space_t *sp, tune_dim_kind_t k, const char *name, const char *current,
                           const char *const *vals, int n)
{
    tune_dim_t *d = dim_new(sp, k, name);
    if (!d)
        return NULL;
    dim_value(d, current ? current : "default");
    for (int i = 0; i < n; i++)
        dim_value(d, vals[i]);
    return d;
}

static const struct {
    const char *name;
    tune_dim_kind_t kind;
    int opt;
} dim_names[] = {
    {"ub", TUNE_DIM_UBATCH, ARG_UBATCH},  {"kv", TUNE_DIM_KV, ARG_CACHE_K},
    {"fa", TUNE_DIM_FA, ARG_FLASH_ATTN},  {"t", TUNE_DIM_THREADS, ARG_THREADS},
    {"ts", TUNE_DIM_TS, ARG_TENSOR_SPLIT}, {"ncmoe", TUNE_DIM_NCMOE, ARG_N_CPU_MOE},
    {"mmproj", TUNE_DIM_MMPROJ, -1},      {"ctx", TUNE_DIM_CTX, ARG_CTX_SIZE},
    {"draft", TUNE_DIM_DRAFT, -1},        {"dn", TUNE_DIM_DRAFT_MAX, ARG_DRAFT_MAX},
    {"load", TUNE_DIM_LOAD, ARG_LOAD_MODE},  {"ctxcp", TUNE_DIM_CTXCP, ARG_CTX_CHECKPOINTS},
};

static bool relative_ncmoe(const char *v)
{
    return !strncmp(v, "min", 3);
}

/* An ncmoe value resolved per point (min±N from the planner, fit by
 * llama-server), not a layer count of its own. */
static bool per_point_ncmoe(const char *v)
{
    return relative_ncmoe(v) || !strcmp(v, "fit");
}

/* "min" → 0, "min+2" → 2, "min-1" → -1; false when malformed. */
static bool ncmoe_offset(const char *v, int *off)
{
    if (!strcmp(v, "min")) {
        *off = 0;
        return true;
    }
    int64_t x;
    if ((v[3] == '+' || v[3] == '-') && parse_i64(v + 4, 0, 1000, &x)) {
        *off = v[3] == '+' ? (int)x : -(int)x;
        return true;
    }
    return false;
}

int tune_space_parse(tune_setup_t *s, const char *spec, char *err, size_t errlen)
{
    s->space_default = false;
    char *copy = xstrdup(spec), *save = NULL;
    int rc = 0;
    for (char *item = strtok_r(copy, ";\n", &save); item && !rc; item = strtok_r(NULL, ";\n", &save)) {
        while (*item == ' ')
            item++;
        if (!*item)
            continue;
        char *eq = strchr(item, '=');
        if (!eq) {
            snprintf(err, errlen, "--space: '%s' is not name=v1,v2,...", item);
            rc = -EINVAL;
            break;
        }
        *eq = 0;
        size_t k = 0;
        while (k < sizeof dim_names / sizeof dim_names[0] && strcmp(dim_names[k].name, item))
            k++;
        if (k == sizeof dim_names / sizeof dim_names[0]) {
            snprintf(err, errlen, "--space: unknown dimension '%s' (ub, kv, fa, t, ts, ncmoe, mmproj, ctx, draft, dn, load)",
                     item);
            rc = -EINVAL;
            break;
        }
        tune_dim_t *d = dim_new(&s->space, dim_names[k].kind, dim_names[k].name);
        if (!d) {
            snprintf(err, errlen, "--space: at most %d dimensions", TUNE_MAX_DIMS);
            rc = -EINVAL;
            break;
        }
        const char *cur = NULL;
        if (dim_names[k].opt >= 0 && dim_names[k].kind != TUNE_DIM_NCMOE)
            cur = args_get(s->args, s->n_args, (args_opt_t)dim_names[k].opt);
        if (dim_names[k].kind == TUNE_DIM_MMPROJ)
            cur = args_find(s->args, s->n_args, ARG_NO_MMPROJ_OFFLOAD) >= 0 ? "host" : "gpu";
        bool has_draft = args_get(s->args, s->n_args, ARG_DRAFT_MODEL) != NULL;
        if ((d->kind == TUNE_DIM_DRAFT || d->kind == TUNE_DIM_DRAFT_MAX) && !has_draft) {
            snprintf(err, errlen, "--space %s: the role names no draft model (draft_model_path or -md)", item);
            rc = -EINVAL;
            break;
        }
        if (d->kind == TUNE_DIM_DRAFT_MAX && !s->draft_max_opt[0]) {
            snprintf(err, errlen, "--space dn: the llama-server in use lists no draft-length option");
            rc = -EINVAL;
            break;
        }
        if (d->kind == TUNE_DIM_DRAFT)
            cur = "on";
        /* the search starts at the role's value; where the role leaves an
         * option to llama-server, at "default", so only what was varied and
         * found better is ever written */
        if (cur)
            dim_value(d, cur);
        else if (d->kind != TUNE_DIM_NCMOE && d->kind != TUNE_DIM_MMPROJ && d->kind != TUNE_DIM_DRAFT)
            dim_value(d, "default");
        char *s2 = NULL;
        const char *sep = !strcmp(item, "ts") ? "|" : ",";
        for (char *v = strtok_r(eq + 1, sep, &s2); v; v = strtok_r(NULL, sep, &s2)) {
            int off;
            if (d->kind == TUNE_DIM_DRAFT && strcmp(v, "on") && strcmp(v, "off")) {
                snprintf(err, errlen, "--space draft=%s: the values are on and off", v);
                rc = -EINVAL;
                break;
            }
            if (d->kind == TUNE_DIM_NCMOE && !strcmp(v, "fit") && s->n_gpu == 0) {
                snprintf(err, errlen, "--space ncmoe=fit: llama-server's --fit places layers on GPUs, and there are none");
                rc = -EINVAL;
                break;
            }
            if (d->kind == TUNE_DIM_NCMOE && relative_ncmoe(v) && !ncmoe_offset(v, &off)) {
                snprintf(err, errlen, "--space ncmoe=%s: relative values are min, min+N, min-N", v);
                rc = -EINVAL;
                break;
            }
            dim_value(d, v);
        }
        if (!rc && d->n_values == 0) {
            snprintf(err, errlen, "--space: '%s' has no values", item);
            rc = -EINVAL;
        }
    }
    free(copy);
    if (rc)
        return rc;
    /* values through llama-server's own argument rules */
    for (int d = 0; d < s->space.n_dims; d++)
        for (int v = 0; v < s->space.dims[d].n_values; v++) {
            if (s->space.dims[d].kind == TUNE_DIM_NCMOE && per_point_ncmoe(s->space.dims[d].values[v]))
                continue;
            tune_point_t p = {{0}};
            p.idx[d] = v;
            size_t na;
            char **a = tune_point_args(s, s->args, s->n_args, &p, &na);
            char e[256];
            long bad = a ? args_check(a, na, e, sizeof e) : -1;
            args_free(&a);
            if (bad >= 0) {
                snprintf(err, errlen, "--space %s=%s: %s", s->space.dims[d].name, s->space.dims[d].values[v], e);
                return -EINVAL;
            }
        }
    return 0;
}

static void add_threads(tune_setup_t *s)
{
    long cpus = s->host_cpus > 0 ? s->host_cpus : 2;
    char tv[4][24];
    const char *vals[4];
    long cand[4] = {cpus, cpus * 3 / 4, cpus / 2, cpus - 1};
    int nt = 0;
    for (int i = 0; i < 4; i++)
        if (cand[i] >= 1) {
            snprintf(tv[nt], sizeof tv[nt], "%ld", cand[i]);
            vals[nt] = tv[nt];
            nt++;
        }
    dim_add(&s->space, TUNE_DIM_THREADS, "t", args_get(s->args, s->n_args, ARG_THREADS), vals, nt);
}

static void add_ctx(tune_setup_t *s)
{
    if (!s->ctx_min)
        return;
    tune_dim_t *d = dim_new(&s->space, TUNE_DIM_CTX, "ctx");
    uint64_t top = s->mi->n_ctx_train ? s->mi->n_ctx_train : s->ctx_min;
    for (uint64_t c = s->ctx_min; d && d->n_values < 4; c *= 2) {
        char v[32];
        snprintf(v, sizeof v, "%llu", (unsigned long long)(c < top ? c : top));
        dim_value(d, v);
        if (c >= top)
            break;
    }
}

typedef struct {
    int pct, l0;
    double dist;
} ts_cand_t;

/* Two GPUs: every -ts ratio (in 1% steps of the first card's share) that
 * changes the integer layer split, feasible ones only, nearest to the split
 * by free memory first; at most TUNE_MAX_VALUES. */
static void add_ts(tune_setup_t *s)
{
    char *const *a = s->args;
    size_t n = s->n_args;
    tune_dim_t *d = dim_new(&s->space, TUNE_DIM_TS, "ts");
    if (!d)
        return;
    const char *cur = args_get(a, n, ARG_TENSOR_SPLIT);
    dim_value(d, cur ? cur : "default");
    ts_cand_t c[100];
    int nc = 0, last_l0 = -1;
    double f0 = s->gpus[0].free_mib > 0 && s->gpus[1].free_mib > 0
                    ? (double)s->gpus[0].free_mib / (double)(s->gpus[0].free_mib + s->gpus[1].free_mib)
                    : 0.5;
    for (int pct = 20; pct <= 80; pct++) {
        char v[16];
        snprintf(v, sizeof v, "%d,%d", pct, 100 - pct);
        char **x = args_set(a, n, ARG_TENSOR_SPLIT, v, NULL);
        size_t nx = 0;
        while (x[nx])
            nx++;
        x = tune__set(x, &nx, ARG_FIT, "off");
        plan_opts_t po;
        plan_t pl;
        char err[256];
        double h = -INFINITY, band = 0;
        if (tune__opts(s, x, nx, &po, err, sizeof err) == 0) {
            plan_predict(s->mi, &po, s->gpus, s->n_gpu, -1, 0, &pl);
            tune_headroom(s, x, nx, &h, &band, NULL, err, sizeof err);
            int l0 = pl.n_dev > 1 ? pl.dev[1].layers : -1;
            if (l0 != last_l0 && (s->situation == TUNE_SIT_HOST_EXPERTS || h >= -band) && nc < 100) {
                double r = pct / 100.0;
                c[nc++] = (ts_cand_t){pct, l0, r > f0 ? r - f0 : f0 - r};
            }
            last_l0 = l0;
        }
        args_free(&x);
    }
    for (int i = 1; i < nc; i++) /* nearest to the free-memory split first */
        for (int k = i; k > 0 && c[k].dist < c[k - 1].dist; k--) {
            ts_cand_t t = c[k];
            c[k] = c[k - 1];
            c[k - 1] = t;
        }
    for (int i = 0; i < nc; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d,%d", c[i].pct, 100 - c[i].pct);
        dim_value(d, v);
    }
    if (d->n_values < 2) /* nothing else fits: not a dimension */
        s->space.n_dims--;
}

bool tune__maps_weights(char *const *a, size_t n)
{
    if (args_find(a, n, ARG_NO_MMAP) >= 0)
        return false;
    const char *m = args_get(a, n, ARG_LOAD_MODE);
    return !m || !strcmp(m, "mmap") || !strcmp(m, "mmap+mlock") || !strcmp(m, "auto");
}

/* The dimensions from index `from` on, in the order of kinds (each present
 * kind once; every dimension there is of one of them). */
static void order_dims(tune_space_t *sp, int from, const tune_dim_kind_t *kinds, int nk)
{
    tune_dim_t tmp[TUNE_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < nk; i++)
        for (int d = from; d < sp->n_dims; d++)
            if (sp->dims[d].kind == kinds[i])
                tmp[k++] = sp->dims[d];
    memcpy(&sp->dims[from], tmp, (size_t)k * sizeof *tmp);
}

void tune_space_default(tune_setup_t *s)
{
    char *const *a = s->args;
    size_t n = s->n_args;
    tune_space_t *sp = &s->space;
    static const char *const kvq[] = {"q8_0", "q4_0"};
    static const char *const kv_all[] = {"f16", "q8_0", "q4_0"};
    const char *kcur = args_get(a, n, ARG_CACHE_K);
    s->space_default = true;
    s->situation = tune_situation(s);
    switch (s->situation) {
    case TUNE_SIT_HOST_EXPERTS: {
        /* host experts: threads drive the experts' matmuls on the CPU, the
         * share of experts on the GPU drives generation, ubatch drives
         * prefill (weights streamed per ubatch) */
        int at = sp->n_dims;
        add_threads(s);
        /* "fit": llama-server's own placement (--fit, common/fit.cpp) at
         * this point's context, ubatch, KV and threads, its margin from
         * --min-free (tune_point_args); it can put part of a layer's experts
         * on the GPU, which whole-layer -ncmoe values cannot */
        static const char *const nc[] = {"min", "min+1", "min+2", "min+4", "min-1", "fit"};
        static const char *const nc_ref[] = {"fit", "min", "min+1", "min+2", "min+4", "min-1"};
        tune_dim_t *d = dim_new(sp, TUNE_DIM_NCMOE, "ncmoe");
        for (int i = 0; d && i < 6; i++)
            dim_value(d, s->from_reference ? nc_ref[i] : nc[i]);
        /* the experts the host keeps are mapped from the file by default:
         * pageable memory, which every large ubatch copies to the GPU again;
         * read in (load none) they sit in the GPU backend's pinned host
         * buffer instead (llama.cpp's loader itself warns that CPU overrides
         * with mmap on are slower), at the price of a longer cold start and
         * of host memory the page cache cannot give back */
        if (s->load_opt[0] && tune__maps_weights(a, n)) {
            static const char *const lv[] = {"none"};
            dim_add(sp, TUNE_DIM_LOAD, "load", args_get(a, n, ARG_LOAD_MODE), lv, 1);
        }
        static const char *const ub[] = {"1024", "2048", "4096", "256"};
        dim_add(sp, TUNE_DIM_UBATCH, "ub", args_get(a, n, ARG_UBATCH), ub, 4);
        dim_add(sp, TUNE_DIM_KV, "kv", kcur, kcur ? kv_all : kvq, kcur ? 3 : 2);
        add_ctx(s);
        if (s->from_reference) {
            /* from llama.cpp's own placement (fit places the experts, its
             * threads are the cores already): the prefill dimensions first
             * (the H200 runs: read-in weights +34%, ubatch up to +60% long
             * prompt), KV before the placement, as a smaller cache is what
             * lets another layer's experts stay on the GPU, threads last.
             * On the simulated landscape this start finds 95-100% of the
             * grid's best (the role's own start, q4_0 KV already, 98-100%);
             * on the H200 the role's start lost to llama.cpp's own */
            static const tune_dim_kind_t ro[] = {TUNE_DIM_LOAD, TUNE_DIM_UBATCH,  TUNE_DIM_KV,
                                                 TUNE_DIM_NCMOE, TUNE_DIM_THREADS, TUNE_DIM_CTX};
            order_dims(sp, at, ro, 6);
        }
        break;
    }
    case TUNE_SIT_FULL_GPU: {
        static const char *const ub[] = {"1024", "2048", "4096", "256"};
        dim_add(sp, TUNE_DIM_UBATCH, "ub", args_get(a, n, ARG_UBATCH), ub, 4);
        dim_add(sp, TUNE_DIM_KV, "kv", kcur, kcur ? kv_all : kvq, kcur ? 3 : 2);
        add_ctx(s);
        break;
    }
    case TUNE_SIT_CPU: {
        add_threads(s);
        static const char *const ub[] = {"128", "256", "1024"};
        dim_add(sp, TUNE_DIM_UBATCH, "ub", args_get(a, n, ARG_UBATCH), ub, 3);
        dim_add(sp, TUNE_DIM_KV, "kv", kcur, kcur ? kv_all : kvq, kcur ? 3 : 1);
        static const char *const fa[] = {"on", "off"};
        dim_add(sp, TUNE_DIM_FA, "fa", args_get(a, n, ARG_FLASH_ATTN), fa, 2);
        add_ctx(s);
        break;
    }
    }
    if (s->n_gpu == 2)
        add_ts(s);
    else if (s->n_gpu > 2) {
        char ts_free[64];
        size_t l = 0;
        for (int g = 0; g < s->n_gpu && l < sizeof ts_free; g++)
            l += (size_t)snprintf(ts_free + l, sizeof ts_free - l, "%s%lld", g ? "," : "",
                                  (long long)(s->gpus[g].free_mib / 1024 + 1));
        const char *tsv[] = {ts_free};
        dim_add(sp, TUNE_DIM_TS, "ts", args_get(a, n, ARG_TENSOR_SPLIT), tsv, 1);
    }
    /* context checkpoints cost a fresh prompt's prefill and keep a chat's
     * earlier turns (bench --scenario turn): a dimension only when the
     * objective measures the second turn, so that what they buy is weighed */
    if (s->obj.turn > 0 && (s->mi->n_layer_recurrent || s->mi->n_layer_swa)) {
        const char *cur = args_get(a, n, ARG_CTX_CHECKPOINTS);
        const char *cv[] = {cur && !strcmp(cur, "0") ? "default" : "0"};
        dim_add(sp, TUNE_DIM_CTXCP, "ctxcp", cur, cv, 1);
    }
    if (args_get(a, n, ARG_MMPROJ) && s->n_gpu) {
        const char *mv[] = {"gpu", "host"};
        dim_add(sp, TUNE_DIM_MMPROJ, "mmproj", args_find(a, n, ARG_NO_MMPROJ_OFFLOAD) >= 0 ? "host" : "gpu", mv, 2);
    }
    /* the role's draft model: worth its memory and its load time? (last:
     * the rest of the configuration first decides what the draft has to
     * beat) and, with it on, how many tokens it drafts */
    if (args_get(a, n, ARG_DRAFT_MODEL)) {
        const char *dv[] = {"off"};
        dim_add(sp, TUNE_DIM_DRAFT, "draft", "on", dv, 1);
        if (s->draft_max_opt[0]) {
            static const char *const dn[] = {"4", "8", "16"};
            dim_add(sp, TUNE_DIM_DRAFT_MAX, "dn", args_get(a, n, ARG_DRAFT_MAX), dn, 3);
        }
    }
}

bool tune_space_from_reference(const tune_setup_t *s, tune_setup_t *out)
{
    if (!s->ref_args || !s->space_default)
        return false;
    *out = *s;
    out->args = s->ref_args;
    out->n_args = s->n_ref_args;
    out->from_reference = true;
    memset(&out->space, 0, sizeof out->space);
    tune_space_default(out);
    return true;
}

long tune_grid_size(const tune_space_t *sp)
{
    long g = 1;
    for (int d = 0; d < sp->n_dims; d++)
        g *= sp->dims[d].n_values;
    return g;
}

void tune_grid_point(const tune_space_t *sp, long k, tune_point_t *p)
{
    memset(p, 0, sizeof *p);
    for (int d = sp->n_dims - 1; d >= 0; d--) {
        p->idx[d] = (int)(k % sp->dims[d].n_values);
        k /= sp->dims[d].n_values;
    }
}

/* ---------- a point's command line ---------- */

/* The load mode v in the spelling of the llama-server in use (NULL: the
 * role's own, no load option at all). "none" keeps a locked role locked:
 * mmap+mlock (or an old build's --mlock) becomes mlock. */
static char **set_load(const tune_setup_t *s, char **a, size_t *n, const char *v)
{
    const char *cur = args_get(a, *n, ARG_LOAD_MODE);
    bool mlock = args_find(a, *n, ARG_MLOCK) >= 0 || (cur && strstr(cur, "mlock"));
    bool old = !strcmp(s->load_opt, "--no-mmap"); /* a build before --load-mode */
    a = tune__set(a, n, ARG_NO_MMAP, NULL);
    if (!v)
        return tune__set(a, n, ARG_LOAD_MODE, NULL);
    if (old) {
        a = tune__set(a, n, ARG_LOAD_MODE, NULL);
        return strcmp(v, "none") ? a : tune__set(a, n, ARG_NO_MMAP, "1");
    }
    if (!strcmp(v, "none") && mlock) {
        a = tune__set(a, n, ARG_MLOCK, NULL);
        v = "mlock";
    }
    return tune__set(a, n, ARG_LOAD_MODE, v);
}

char **tune_point_args(const tune_setup_t *s, char *const *base, size_t n_base, const tune_point_t *p, size_t *n)
{
    const tune_space_t *sp = &s->space;
    *n = n_base;
    char **a = tune__copy_args(base, n_base);
    int ncmoe_dim = -1, draft_max_dim = -1;
    for (int d = 0; d < sp->n_dims; d++) {
        const tune_dim_t *D = &sp->dims[d];
        const char *v = D->values[p->idx[d]];
        bool dflt = !strcmp(v, "default");
        switch (D->kind) {
        case TUNE_DIM_UBATCH: {
            a = tune__set(a, n, ARG_UBATCH, dflt ? NULL : v);
            long b = 2048;
            int64_t ub = 0;
            args_get_long(a, *n, ARG_BATCH, &b);
            if (!dflt && parse_i64(v, 1, INT32_MAX, &ub) && ub > b) /* -ub above -b is cut to -b */
                a = tune__set(a, n, ARG_BATCH, v);
            break;
        }
        case TUNE_DIM_KV:
            a = tune__set(a, n, ARG_CACHE_K, dflt ? NULL : v);
            a = tune__set(a, n, ARG_CACHE_V, dflt ? NULL : v);
            break;
        case TUNE_DIM_FA:
            a = tune__set(a, n, ARG_FLASH_ATTN, dflt ? NULL : v);
            break;
        case TUNE_DIM_THREADS:
            a = tune__set(a, n, ARG_THREADS, dflt ? NULL : v);
            a = tune__set(a, n, ARG_THREADS_BATCH, dflt ? NULL : v);
            break;
        case TUNE_DIM_TS:
            a = tune__set(a, n, ARG_TENSOR_SPLIT, dflt ? NULL : v);
            break;
        case TUNE_DIM_NCMOE:
            if (per_point_ncmoe(v))
                ncmoe_dim = d; /* after the others: it depends on them */
            else
                a = tune__set(a, n, ARG_N_CPU_MOE, dflt || !strcmp(v, "0") ? NULL : v);
            break;
        case TUNE_DIM_MMPROJ:
            a = tune__set(a, n, ARG_NO_MMPROJ_OFFLOAD, !strcmp(v, "host") ? "1" : NULL);
            break;
        case TUNE_DIM_CTX:
            a = tune__set(a, n, ARG_CTX_SIZE, dflt ? NULL : v);
            break;
        case TUNE_DIM_DRAFT:
            if (!strcmp(v, "off")) { /* no draft loaded, nothing drafted */
                a = tune__set(a, n, ARG_DRAFT_MODEL, NULL);
                a = tune__set(a, n, ARG_SPEC_TYPE, NULL);
            }
            break;
        case TUNE_DIM_DRAFT_MAX:
            draft_max_dim = d; /* after the draft's own dimension: only with the draft on */
            break;
        case TUNE_DIM_LOAD:
            a = set_load(s, a, n, dflt ? NULL : v);
            break;
        case TUNE_DIM_CTXCP:
            a = tune__set(a, n, ARG_CTX_CHECKPOINTS, dflt ? NULL : v);
            break;
        }
    }
    if (draft_max_dim >= 0 && args_get(a, *n, ARG_DRAFT_MODEL)) {
        const char *v = sp->dims[draft_max_dim].values[p->idx[draft_max_dim]];
        /* every spelling out, then the build's own */
        a = tune__set(a, n, ARG_DRAFT_MAX, NULL);
        if (strcmp(v, "default") && s->draft_max_opt[0]) {
            a = xrealloc(a, (*n + 3) * sizeof *a);
            a[(*n)++] = xstrdup(s->draft_max_opt);
            a[(*n)++] = xstrdup(v);
            a[*n] = NULL;
        }
    }
    bool fit_placed = ncmoe_dim >= 0 && !strcmp(sp->dims[ncmoe_dim].values[p->idx[ncmoe_dim]], "fit");
    if (fit_placed) {
        /* fit places only what is unset: the layers and the experts */
        a = tune__set(a, n, ARG_NGL, NULL);
        a = tune__set(a, n, ARG_N_CPU_MOE, NULL);
        a = tune__set(a, n, ARG_CPU_MOE, NULL);
        a = tune__set(a, n, ARG_FIT, "on");
        /* fit's margin is on what its dry run allocates; after the runs
         * NVML reads 111-198 MiB less free than the planner's headroom on
         * the H200 histories (CUDA pool, graphs, cuBLAS), 275-277 with host
         * experts at -ub 4096: so the margin is --min-free plus that */
        long ub = 512;
        args_get_long(a, *n, ARG_UBATCH, &ub);
        long long margin = (s->min_free_mib > 0 ? s->min_free_mib : 256) + (ub > 2048 ? 288 : 192);
        char mv[24];
        snprintf(mv, sizeof mv, "%lld", margin);
        a = tune__set(a, n, ARG_FIT_TARGET, mv);
        return a;
    }
    if (ncmoe_dim >= 0) {
        int off = 0;
        ncmoe_offset(sp->dims[ncmoe_dim].values[p->idx[ncmoe_dim]], &off);
        a = tune__set(a, n, ARG_CPU_MOE, NULL);
        a = tune__set(a, n, ARG_FIT, "off");
        int64_t m = tune__min_ncmoe(s, a, *n);
        if (m < 0 || m + off < 0 || m + off > (int64_t)s->mi->n_layer) {
            args_free(&a);
            return NULL;
        }
        char v[16];
        snprintf(v, sizeof v, "%lld", (long long)(m + off));
        a = tune__set(a, n, ARG_N_CPU_MOE, m + off ? v : NULL);
    }
    /* llama-server's --fit would move what the point pins */
    bool pins = ncmoe_dim >= 0; /* the role as it is (every index 0) runs as the role does */
    for (int d = 0; d < sp->n_dims; d++)
        if (p->idx[d] != 0)
            pins = true;
    if (pins)
        a = tune__set(a, n, ARG_FIT, "off");
    return a;
}

char *tune_point_label(const tune_space_t *sp, const tune_point_t *p)
{
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (int d = 0; d < sp->n_dims; d++)
        buf_printf(&b, "%s%s=%s", d ? " " : "", sp->dims[d].name, sp->dims[d].values[p->idx[d]]);
    return b.data;
}

char *tune_join_args(char *const *a, size_t n)
{
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s%s", i ? " " : "", a[i]);
    return b.data;
}
