/*
 * cmd_tune.c — `variet tune ROLE`: measure llama-server configurations of a
 * role on this machine, keep the best, write down why.
 *
 * A trial = the role's args with every varied option pinned (and -fit off,
 * so llama-server does not quietly change them), checked by the planner
 * against free memory first (no launch when it cannot fit), then started,
 * its load report read, benched (short scenario, repeated until the median
 * is stable), stopped. The search is tune_search() (coordinate descent);
 * then a pruning pass drops every extra flag whose removal changes nothing
 * measurable. Every trial is appended to a JSON history (resumable); at the
 * end the winner's args and measured_tps go into the registry (previous
 * file kept as .bak) and a Markdown retuning log is written.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "bench.h"
#include "backend.h"
#include "cmd.h"
#include "gguf.h"
#include "hw.h"
#include "loadlog.h"
#include "modelinfo.h"
#include "plan.h"
#include "proc.h"
#include "registry.h"
#include "tune.h"
#include "util.h"

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

typedef struct {
    double gen, prompt, cold; /* weights of the objective */
} objective_t;

typedef struct {
    /* inputs */
    const registry_t *reg;
    const reg_role_t *role;
    char *exe;
    mi_t *mi;
    hw_info_t hw;
    plan_gpu_t gpus[PLAN_MAX_GPU];
    int n_gpu;
    uint64_t margin;
    tune_space_t space;
    char **base;        /* role args (+ constraints) that trials start from */
    size_t n_base;
    objective_t obj;
    int runs, max_runs;
    bool dry_run, verbose_tty;
    const char *log_dir;
    /* state */
    json_t *history;    /* {"role":..., "trials":[...]} */
    char *history_path;
    double base_gen, base_prompt, base_cold;
    int trial_no, budget;
    double deadline;    /* now_s() after which no new trial starts (0: none) */
    bool out_of_time;
    buf_t md_sweeps;    /* Markdown of each trial, in order */
} tuner_t;

/* ---------- args for a point ---------- */

static char **set_opt(char **argv, size_t *n, args_opt_t opt, const char *value)
{
    char **next = args_set(argv, *n, opt, value, n);
    args_free(&argv);
    return next;
}

static char **copy_args(char *const *a, size_t n)
{
    char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = xstrdup(a[i]);
    return v;
}

/* The full llama-server args for point p (caller frees with args_free). */
static char **point_args(const tuner_t *t, char *const *base, size_t n_base, const tune_point_t *p, size_t *n)
{
    *n = n_base;
    char **a = copy_args(base, n_base);
    for (int d = 0; d < t->space.n_dims; d++) {
        const tune_dim_t *D = &t->space.dims[d];
        const char *v = D->values[p->idx[d]];
        switch (D->kind) {
        case TUNE_DIM_UBATCH: {
            a = set_opt(a, n, ARG_UBATCH, v);
            long b = 2048;
            int64_t ub = 0;
            args_get_long(a, *n, ARG_BATCH, &b);
            if (parse_i64(v, 1, INT32_MAX, &ub) && ub > b) /* -ub above -b is cut to -b */
                a = set_opt(a, n, ARG_BATCH, v);
            break;
        }
        case TUNE_DIM_KV:
            a = set_opt(a, n, ARG_CACHE_K, v);
            a = set_opt(a, n, ARG_CACHE_V, v);
            break;
        case TUNE_DIM_FA:
            a = set_opt(a, n, ARG_FLASH_ATTN, v);
            break;
        case TUNE_DIM_THREADS:
            a = set_opt(a, n, ARG_THREADS, v);
            a = set_opt(a, n, ARG_THREADS_BATCH, v);
            break;
        case TUNE_DIM_TS:
            a = set_opt(a, n, ARG_TENSOR_SPLIT, v);
            break;
        case TUNE_DIM_NCMOE:
            a = set_opt(a, n, ARG_N_CPU_MOE, strcmp(v, "0") ? v : NULL);
            break;
        case TUNE_DIM_MMPROJ:
            a = set_opt(a, n, ARG_NO_MMPROJ_OFFLOAD, !strcmp(v, "host") ? "1" : NULL);
            break;
        }
    }
    a = set_opt(a, n, ARG_FIT, "off");
    return a;
}

static char *join_args(char *const *a, size_t n)
{
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s%s", i ? " " : "", a[i]);
    return b.data;
}

/* ---------- history ---------- */

static void history_save(tuner_t *t)
{
    char err[256];
    char *s = json_dumps(t->history, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (file_write_atomic(t->history_path, s, strlen(s), err, sizeof err))
        fprintf(stderr, "variet tune: cannot save history: %s\n", err);
    free(s);
}

static json_t *history_find(const tuner_t *t, const char *key)
{
    json_t *tr = json_object_get(t->history, "trials"), *e;
    size_t i;
    json_array_foreach(tr, i, e)
        if (!strcmp(json_string_value(json_object_get(e, "key")) ?: "", key))
            return e;
    return NULL;
}

/* The history record of point p on top of base args, or NULL (borrowed). */
static json_t *point_record(const tuner_t *t, char *const *base, size_t n_base, const tune_point_t *p)
{
    size_t n;
    char **a = point_args(t, base, n_base, p, &n);
    char *key = join_args(a, n);
    json_t *rec = history_find(t, key);
    free(key);
    args_free(&a);
    return rec;
}

/* ---------- one trial ---------- */

static double score_of(const tuner_t *t, double gen, double prompt, double cold)
{
    double s = 0;
    if (t->obj.gen > 0 && t->base_gen > 0)
        s += t->obj.gen * gen / t->base_gen;
    if (t->obj.prompt > 0 && t->base_prompt > 0)
        s += t->obj.prompt * prompt / t->base_prompt;
    if (t->obj.cold > 0 && cold > 0 && t->base_cold > 0)
        s += t->obj.cold * t->base_cold / cold;
    return s;
}

static void progress(tuner_t *t, const char *what, const char *result)
{
    if (t->verbose_tty) {
        int total = t->budget > 0 ? t->budget : 0, done = t->trial_no;
        char bar[21];
        int fill = total ? (done * 20 / total > 20 ? 20 : done * 20 / total) : 0;
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        fprintf(stderr, "[%s] trial %d%s%s  %s → %s\n", bar, done, total ? "/" : "", total ? "" : "", what, result);
    } else {
        fprintf(stderr, "trial %d: %s → %s\n", t->trial_no, what, result);
    }
}

/* Run one configuration; fills a JSON record (caller owns) and the eval. */
static int run_trial(tuner_t *t, char *const *args, size_t n, const char *label, tune_eval_t *out, json_t **rec_out)
{
    char err[512], *key = join_args(args, n);
    json_t *rec = json_pack("{s:s,s:s}", "key", key, "label", label);
    json_t *ja = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ja, json_string(args[i]));
    json_object_set_new(rec, "args", ja);
    json_object_set_new(rec, "time", json_integer((json_int_t)time(NULL)));
    out->status = TUNE_FAILED;
    out->score = 0;
    out->noise = 0;
    t->trial_no++;

    /* the planner first: no launch for what cannot fit */
    plan_opts_t po;
    plan_t pl;
    if (plan_opts_from_args(args, n, &po, err, sizeof err) == 0) {
        plan_predict(t->mi, &po, t->gpus, t->n_gpu, t->n_gpu ? -1 : t->hw.ram_avail_mib, t->margin, &pl);
        json_t *head = json_object();
        for (int d = 0; d < pl.n_dev; d++)
            if (pl.dev[d].free_mib >= 0)
                json_object_set_new(head, pl.dev[d].name,
                                    json_real((double)pl.dev[d].free_mib - (double)pl.dev[d].total / 1048576.0));
        json_object_set_new(rec, "plan_headroom_mib", head);
        if (pl.verdict == PLAN_NO_FIT) {
            char why[256];
            snprintf(why, sizeof why, "planner: does not fit (%s, %s)", pl.dev[pl.over_dev].name, pl.over_what);
            json_object_set_new(rec, "status", json_string("infeasible"));
            json_object_set_new(rec, "error", json_string(why));
            out->status = TUNE_INFEASIBLE;
            progress(t, label, why);
            *rec_out = rec;
            free(key);
            return 0;
        }
    } else {
        json_object_set_new(rec, "status", json_string("failed"));
        json_object_set_new(rec, "error", json_string(err));
        progress(t, label, err);
        *rec_out = rec;
        free(key);
        return 0;
    }
    if (t->dry_run) {
        json_object_set_new(rec, "status", json_string("planned"));
        progress(t, label, "would run (dry run)");
        out->status = TUNE_FAILED;
        *rec_out = rec;
        free(key);
        return 0;
    }

    char *log = xasprintf("%s/tune-%s-trial-%d.log", t->log_dir, t->role->name, t->trial_no);
    pid_t pid = 0;
    char *base = NULL;
    double cold = 0;
    loadlog_t rep;
    int rc = bench_spawn(t->exe, t->role->model_abs, args, n, log, t->reg->engine.load_timeout_s, &pid, &base, &cold,
                         &rep, err, sizeof err);
    json_t *load = json_object();
    json_object_set_new(load, "cold_start_s", json_real(cold));
    if (rep.pipeline_parallel >= 0)
        json_object_set_new(load, "pipeline_parallel", json_boolean(rep.pipeline_parallel));
    json_t *devs = json_array();
    for (int d = 0; d < rep.n_dev; d++)
        json_array_append_new(devs, json_pack("{s:s,s:f,s:f,s:f,s:f}", "device", rep.dev[d].name, "model_mib",
                                              rep.dev[d].model_mib, "kv_mib", rep.dev[d].kv_mib, "rs_mib",
                                              rep.dev[d].rs_mib, "compute_mib", rep.dev[d].compute_mib));
    json_object_set_new(load, "devices", devs);
    json_object_set_new(load, "n_ubatch", json_integer(rep.n_ubatch));
    json_object_set_new(load, "flash_attn", json_string(rep.flash_attn));
    json_object_set_new(rec, "load", load);
    if (rc) {
        json_object_set_new(rec, "status", json_string(rep.oom ? "oom" : "failed"));
        json_object_set_new(rec, "error", json_string(err));
        progress(t, label, err);
        goto done;
    }
    /* measure: short scenario (and long when prefill counts) */
    char *prompt = NULL, *lprompt = NULL;
    long ptok = 0;
    bench_sample_t s[16], warm, ls = {0};
    int nr = 0;
    if (bench_prompt(base, NULL, bench_short.prompt_tokens, &prompt, &ptok, err, sizeof err) ||
        bench_run(base, NULL, prompt, bench_short.n_predict, &warm, err, sizeof err)) {
        json_object_set_new(rec, "status", json_string("failed"));
        json_object_set_new(rec, "error", json_string(err));
        progress(t, label, err);
        free(prompt);
        goto done;
    }
    bench_stats_t st;
    for (;;) {
        if (bench_run(base, NULL, prompt, bench_short.n_predict, &s[nr], err, sizeof err))
            break;
        nr++;
        if (nr < t->runs)
            continue;
        bench_stats(s, nr, &st);
        double spread = st.med.gen_tps > 0 ? (st.max.gen_tps - st.min.gen_tps) / st.med.gen_tps : 1;
        /* repeat until the median is stable (spread under 5%) or max runs */
        if (spread <= 0.05 || nr >= t->max_runs || nr >= 16 || interrupted)
            break;
    }
    free(prompt);
    if (nr == 0) {
        json_object_set_new(rec, "status", json_string("failed"));
        json_object_set_new(rec, "error", json_string(err));
        progress(t, label, err);
        goto done;
    }
    bench_stats(s, nr, &st);
    if (t->obj.prompt > 0) {
        if (bench_prompt(base, NULL, bench_long.prompt_tokens, &lprompt, &ptok, err, sizeof err) == 0)
            bench_run(base, NULL, lprompt, bench_long.n_predict, &ls, err, sizeof err);
        free(lprompt);
    }
    if (t->base_gen <= 0) {
        t->base_gen = st.med.gen_tps;
        t->base_prompt = ls.prompt_tps;
        t->base_cold = cold;
    }
    out->status = TUNE_OK;
    out->noise = st.med.gen_tps > 0 ? (st.max.gen_tps - st.min.gen_tps) / st.med.gen_tps / 2 : 0;
    out->score = score_of(t, st.med.gen_tps, ls.prompt_tps, cold);
    json_object_set_new(rec, "status", json_string("ok"));
    json_object_set_new(rec, "runs", json_integer(nr));
    json_object_set_new(rec, "gen_tps", json_real(st.med.gen_tps));
    json_object_set_new(rec, "gen_tps_min", json_real(st.min.gen_tps));
    json_object_set_new(rec, "gen_tps_max", json_real(st.max.gen_tps));
    json_object_set_new(rec, "prompt_tps", json_real(st.med.prompt_tps));
    json_object_set_new(rec, "prefill_s", json_real(st.med.prefill_s));
    json_object_set_new(rec, "ttft_ms", json_real(st.med.ttft_ms));
    if (ls.prompt_tps > 0)
        json_object_set_new(rec, "long_prompt_tps", json_real(ls.prompt_tps));
    json_object_set_new(rec, "noise", json_real(out->noise));
    json_object_set_new(rec, "score", json_real(out->score));
    char res[160];
    snprintf(res, sizeof res, "%.2f t/s gen (±%.1f%%, %d runs), %.1f t/s prompt, cold %.2f s", st.med.gen_tps,
             out->noise * 100, nr, st.med.prompt_tps, cold);
    progress(t, label, res);
done:
    if (pid > 0)
        proc_stop(pid, t->reg->engine.stop_grace_s);
    free(base);
    if (out->status == TUNE_OK)
        unlink(log); /* failed trials keep their log: the error names it */
    else
        json_object_set_new(rec, "log", json_string(log));
    free(log);
    *rec_out = rec;
    free(key);
    return 0;
}

static void eval_from_record(const tuner_t *t, json_t *rec, tune_eval_t *e)
{
    const char *st = json_string_value(json_object_get(rec, "status")) ?: "";
    e->status = !strcmp(st, "ok") ? TUNE_OK : !strcmp(st, "infeasible") ? TUNE_INFEASIBLE : TUNE_FAILED;
    e->noise = json_number_value(json_object_get(rec, "noise"));
    e->score = e->status == TUNE_OK
                   ? score_of(t, json_number_value(json_object_get(rec, "gen_tps")),
                              json_number_value(json_object_get(rec, "long_prompt_tps")),
                              json_number_value(json_object_get(json_object_get(rec, "load"), "cold_start_s")))
                   : 0;
}

static char *point_label(const tuner_t *t, const tune_point_t *p)
{
    buf_t b;
    buf_init(&b, 0);
    buf_append(&b, "", 0);
    for (int d = 0; d < t->space.n_dims; d++)
        buf_printf(&b, "%s%s=%s", d ? " " : "", t->space.dims[d].name, t->space.dims[d].values[p->idx[d]]);
    return b.data;
}

/* --replay: answer from a recorded history (bench/tuner), launching nothing. */
static int eval_replay(void *ud, const tune_point_t *p, tune_eval_t *out)
{
    tuner_t *t = ud;
    json_t *rec = point_record(t, t->base, t->n_base, p);
    if (rec)
        eval_from_record(t, rec, out);
    else
        *out = (tune_eval_t){TUNE_FAILED, 0, 0};
    return 0;
}

static int eval_point(void *ud, const tune_point_t *p, tune_eval_t *out)
{
    tuner_t *t = ud;
    if (interrupted)
        return -EINTR;
    if (t->deadline > 0 && now_s() > t->deadline) {
        t->out_of_time = true;
        return -ETIME;
    }
    size_t n;
    char **a = point_args(t, t->base, t->n_base, p, &n);
    char *label = point_label(t, p);
    json_t *rec = NULL;
    run_trial(t, a, n, label, out, &rec);
    json_object_set_new(rec, "phase", json_string("search"));
    json_array_append_new(json_object_get(t->history, "trials"), rec);
    history_save(t);
    free(label);
    args_free(&a);
    return interrupted ? -EINTR : 0;
}

/* ---------- space ---------- */

static void dim_add(tune_space_t *s, tune_dim_kind_t k, const char *name, const char *current, const char *const *vals,
                    int n)
{
    if (s->n_dims == TUNE_MAX_DIMS)
        return;
    tune_dim_t *d = &s->dims[s->n_dims++];
    memset(d, 0, sizeof *d);
    d->kind = k;
    d->name = name;
    /* the current value first: the search starts there */
    if (current) {
        snprintf(d->values[d->n_values++], sizeof d->values[0], "%s", current);
    }
    for (int i = 0; i < n && d->n_values < TUNE_MAX_VALUES; i++)
        if (tune_value_index(d, vals[i]) < 0)
            snprintf(d->values[d->n_values++], sizeof d->values[0], "%s", vals[i]);
}

/* "ub=128,512;kv=f16,q8_0;fa=on,off;t=1,2;ts=1,1|3,1;ncmoe=0,4" */
static int parse_space(tuner_t *t, const char *spec, char *const *args, size_t n, char *err, size_t errlen)
{
    char *copy = xstrdup(spec), *save = NULL;
    for (char *item = strtok_r(copy, ";\n", &save); item; item = strtok_r(NULL, ";\n", &save)) {
        while (*item == ' ')
            item++;
        if (!*item)
            continue;
        char *eq = strchr(item, '=');
        if (!eq) {
            snprintf(err, errlen, "--space: '%s' is not name=v1,v2,...", item);
            free(copy);
            return -EINVAL;
        }
        *eq = 0;
        const char *vals[TUNE_MAX_VALUES];
        int nv = 0;
        char *vs = eq + 1, *s2 = NULL;
        const char *sep = !strcmp(item, "ts") ? "|" : ",";
        for (char *v = strtok_r(vs, sep, &s2); v && nv < TUNE_MAX_VALUES; v = strtok_r(NULL, sep, &s2))
            vals[nv++] = v;
        if (!nv) {
            snprintf(err, errlen, "--space: '%s' has no values", item);
            free(copy);
            return -EINVAL;
        }
        const char *cur = NULL;
        if (!strcmp(item, "ub"))
            dim_add(&t->space, TUNE_DIM_UBATCH, "ub", (cur = args_get(args, n, ARG_UBATCH)) ? cur : NULL, vals, nv);
        else if (!strcmp(item, "kv"))
            dim_add(&t->space, TUNE_DIM_KV, "kv", args_get(args, n, ARG_CACHE_K), vals, nv);
        else if (!strcmp(item, "fa"))
            dim_add(&t->space, TUNE_DIM_FA, "fa", args_get(args, n, ARG_FLASH_ATTN), vals, nv);
        else if (!strcmp(item, "t"))
            dim_add(&t->space, TUNE_DIM_THREADS, "t", args_get(args, n, ARG_THREADS), vals, nv);
        else if (!strcmp(item, "ts"))
            dim_add(&t->space, TUNE_DIM_TS, "ts", args_get(args, n, ARG_TENSOR_SPLIT), vals, nv);
        else if (!strcmp(item, "ncmoe"))
            dim_add(&t->space, TUNE_DIM_NCMOE, "ncmoe", args_get(args, n, ARG_N_CPU_MOE), vals, nv);
        else if (!strcmp(item, "mmproj"))
            dim_add(&t->space, TUNE_DIM_MMPROJ, "mmproj", NULL, vals, nv);
        else {
            snprintf(err, errlen, "--space: unknown dimension '%s' (ub, kv, fa, t, ts, ncmoe, mmproj)", item);
            free(copy);
            return -EINVAL;
        }
    }
    free(copy);
    /* validate values through llama-server's own argument rules */
    for (int d = 0; d < t->space.n_dims; d++)
        for (int v = 0; v < t->space.dims[d].n_values; v++) {
            tune_point_t p = {{0}};
            p.idx[d] = v;
            size_t na;
            char **a = point_args(t, args, n, &p, &na);
            char e[256];
            long bad = args_check(a, na, e, sizeof e);
            args_free(&a);
            if (bad >= 0) {
                snprintf(err, errlen, "--space %s=%s: %s", t->space.dims[d].name, t->space.dims[d].values[v], e);
                return -EINVAL;
            }
        }
    return 0;
}

/* Defaults sensible for the hardware. */
static void default_space(tuner_t *t, char *const *args, size_t n)
{
    static const char *const ub[] = {"128", "256", "384", "512", "1024", "2048"};
    static const char *const kv[] = {"f16", "q8_0", "q4_0"};
    static const char *const fa[] = {"on", "off"};
    const char *cur;
    dim_add(&t->space, TUNE_DIM_UBATCH, "ub", (cur = args_get(args, n, ARG_UBATCH)) ? cur : "512", ub, 6);
    dim_add(&t->space, TUNE_DIM_KV, "kv", (cur = args_get(args, n, ARG_CACHE_K)) ? cur : "f16", kv, 3);
    dim_add(&t->space, TUNE_DIM_FA, "fa", (cur = args_get(args, n, ARG_FLASH_ATTN)) ? cur : "on", fa, 2);
    long cpus = t->hw.host_cpus_usable > 0 ? t->hw.host_cpus_usable : t->hw.host_cpus > 0 ? t->hw.host_cpus : 2;
    char tv[4][24];
    const char *tvals[4];
    int nt = 0;
    long cand[4] = {cpus, cpus / 2, cpus * 3 / 4, cpus - 1};
    for (int i = 0; i < 4; i++)
        if (cand[i] >= 1) {
            snprintf(tv[nt], sizeof tv[nt], "%ld", cand[i]);
            tvals[nt] = tv[nt];
            nt++;
        }
    dim_add(&t->space, TUNE_DIM_THREADS, "t", (cur = args_get(args, n, ARG_THREADS)) ? cur : tvals[0], tvals, nt);
    if (t->n_gpu > 1) {
        static char ts_free[64];
        size_t l = 0;
        for (int g = 0; g < t->n_gpu && l < sizeof ts_free; g++)
            l += (size_t)snprintf(ts_free + l, sizeof ts_free - l, "%s%lld", g ? "," : "",
                                  (long long)(t->gpus[g].free_mib / 1024 + 1));
        const char *tsv[] = {"1,1", ts_free, "3,1", "1,3"};
        dim_add(&t->space, TUNE_DIM_TS, "ts", args_get(args, n, ARG_TENSOR_SPLIT), tsv, t->n_gpu == 2 ? 4 : 2);
    }
    if (t->mi->n_expert && t->n_gpu) {
        /* only when the experts do not fit on the GPUs as configured */
        plan_opts_t po;
        plan_t pl;
        char err[256];
        if (plan_opts_from_args(args, n, &po, err, sizeof err) == 0) {
            plan_predict(t->mi, &po, t->gpus, t->n_gpu, -1, t->margin, &pl);
            if (pl.verdict == PLAN_NO_FIT) {
                char nv[6][16];
                const char *vals[6];
                uint32_t L = t->mi->n_layer;
                for (int i = 0; i < 6; i++) {
                    snprintf(nv[i], sizeof nv[i], "%u", L * (uint32_t)i / 5);
                    vals[i] = nv[i];
                }
                dim_add(&t->space, TUNE_DIM_NCMOE, "ncmoe", args_get(args, n, ARG_N_CPU_MOE), vals, 6);
            }
        }
    }
    if (args_get(args, n, ARG_MMPROJ) && t->n_gpu) {
        const char *mv[] = {"gpu", "host"};
        dim_add(&t->space, TUNE_DIM_MMPROJ, "mmproj",
                args_find(args, n, ARG_NO_MMPROJ_OFFLOAD) >= 0 ? "host" : "gpu", mv, 2);
    }
}

/* ---------- removal candidates ---------- */

typedef struct {
    size_t at, len; /* tokens [at, at+len) of the args */
} item_t;

static bool essential(const char *tok)
{
    static const char *const keep[] = {"-c", "--ctx-size", "-np", "--parallel", "-ngl", "--gpu-layers",
                                       "--n-gpu-layers", "-fit", "--fit", "--mmproj", "-mm", "-ub", "--ubatch-size",
                                       "-b", "--batch-size", "-ctk", "--cache-type-k", "-ctv", "--cache-type-v",
                                       "-fa", "--flash-attn", "-t", "--threads", "-tb", "--threads-batch", "-ts",
                                       "--tensor-split", "-ncmoe", "--n-cpu-moe", "--no-mmproj-offload",
                                       "--chat-template", "--jinja", "-a", "--alias", NULL};
    for (int i = 0; keep[i]; i++)
        if (!strcmp(tok, keep[i]) || (!strncmp(tok, keep[i], strlen(keep[i])) && tok[strlen(keep[i])] == '='))
            return true;
    return false;
}

/* Option items of args that could be dropped: an option token plus its
 * value when the next token is not an option. */
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

/* ---------- report ---------- */

static void md_hw(const tuner_t *t, buf_t *md)
{
    buf_printf(md, "## Hardware\n\n");
    if (t->hw.n_gpu == 0)
        buf_printf(md, "No GPU (%s).\n\n", t->hw.note);
    else {
        buf_printf(md, "| GPU | name | free MiB | total MiB | PCIe now | PCIe max |\n|---|---|---|---|---|---|\n");
        for (int g = 0; g < t->hw.n_gpu; g++) {
            const hw_gpu_t *G = &t->hw.gpu[g];
            buf_printf(md, "| %d | %s | %lld | %lld | Gen%d x%d (%.1f GB/s) | Gen%d x%d |\n", G->index, G->name,
                       (long long)G->mem_free_mib, (long long)G->mem_total_mib, G->gen_cur, G->width_cur,
                       hw_pcie_gbps(G->gen_cur, G->width_cur), G->gen_max, G->width_max);
        }
        buf_printf(md, "\n");
    }
    buf_printf(md, "Host: %ld CPUs, %lld MiB RAM available.\n\n", t->hw.host_cpus, (long long)t->hw.ram_avail_mib);
}

static void md_model(const tuner_t *t, buf_t *md)
{
    const mi_t *m = t->mi;
    char a[32];
    buf_printf(md, "## Model\n\n`%s`: %s, %s, %.3f B parameters (%.3f B active), %u layers (%u full attention, %u "
                   "recurrent, %u sliding window), %u experts (%u used).\n\n",
               t->role->model_path, m->arch, fmt_bytes(m->file_size, a, sizeof a), m->n_params / 1e9,
               m->n_params_active / 1e9, m->n_layer, m->n_layer_attn, m->n_layer_recurrent, m->n_layer_swa,
               m->n_expert, m->n_expert_used);
    buf_printf(md, "| KV type | per token | 4K | 32K | 128K |\n|---|---|---|---|---|\n");
    static const uint32_t kt[3] = {GGUF_TT_F16, GGUF_TT_Q8_0, GGUF_TT_Q4_0};
    for (int k = 0; k < 3; k++) {
        char b1[32], b2[32], b3[32], b4[32];
        buf_printf(md, "| %s | %s | %s | %s | %s |\n", gguf_type_name(kt[k]),
                   fmt_bytes(mi_kv_bytes(m, 1, kt[k], kt[k]), b1, sizeof b1),
                   fmt_bytes(mi_kv_bytes(m, 4096, kt[k], kt[k]), b2, sizeof b2),
                   fmt_bytes(mi_kv_bytes(m, 32768, kt[k], kt[k]), b3, sizeof b3),
                   fmt_bytes(mi_kv_bytes(m, 131072, kt[k], kt[k]), b4, sizeof b4));
    }
    if (m->n_layer_recurrent)
        buf_printf(md, "\nRecurrent state: %s per sequence.\n", fmt_bytes(mi_rs_bytes(m, 1), a, sizeof a));
    buf_printf(md, "\n");
}

static void md_trials(const tuner_t *t, buf_t *md)
{
    json_t *tr = json_object_get(t->history, "trials"), *e;
    size_t i;
    buf_printf(md, "## Trials\n\n| # | phase | configuration | status | PP | prompt t/s | gen t/s (min–max) | prefill s "
                   "| cold s | headroom MiB |\n|---|---|---|---|---|---|---|---|---|---|\n");
    json_array_foreach(tr, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status")) ?: "?";
        json_t *load = json_object_get(e, "load");
        json_t *pp = json_object_get(load, "pipeline_parallel");
        char head[128] = "";
        json_t *h = json_object_get(e, "plan_headroom_mib"), *hv;
        const char *hk;
        size_t l = 0;
        json_object_foreach(h, hk, hv)
        {
            if (l >= sizeof head)
                break;
            l += (size_t)snprintf(head + l, sizeof head - l, "%s%s %.0f", l ? ", " : "", hk, json_number_value(hv));
        }
        if (!strcmp(st, "ok"))
            buf_printf(md, "| %zu | %s | %s | ok | %s | %.1f | %.2f (%.2f–%.2f) | %.3f | %.2f | %s |\n", i + 1,
                       json_string_value(json_object_get(e, "phase")) ?: "", json_string_value(json_object_get(e, "label")),
                       json_is_boolean(pp) ? (json_is_true(pp) ? "on" : "fell back") : "–",
                       json_number_value(json_object_get(e, "prompt_tps")), json_number_value(json_object_get(e, "gen_tps")),
                       json_number_value(json_object_get(e, "gen_tps_min")),
                       json_number_value(json_object_get(e, "gen_tps_max")),
                       json_number_value(json_object_get(e, "prefill_s")),
                       json_number_value(json_object_get(load, "cold_start_s")), head);
        else
            buf_printf(md, "| %zu | %s | %s | %s: %s | – | – | – | – | – | %s |\n", i + 1,
                       json_string_value(json_object_get(e, "phase")) ?: "", json_string_value(json_object_get(e, "label")),
                       st, json_string_value(json_object_get(e, "error")) ?: "", head);
    }
    buf_printf(md, "\n");
}

/* ---------- main ---------- */

static int parse_objective(const char *s, objective_t *o)
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
        char *eq = strchr(it, '=');
        double w;
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
        else {
            free(copy);
            return -1;
        }
    }
    free(copy);
    return o->gen + o->prompt + o->cold > 0 ? 0 : -1;
}

static int exec_tune(cmd_ctx_t *c)
{
    const char *config = c->config, *space_arg = cmd_opt(c, "--space");
    const char *objective = cmd_opt(c, "--objective") ?: "gen";
    const char *strategy = cmd_opt(c, "--strategy") ?: "descent", *replay = cmd_opt(c, "--replay");
    int64_t budget = 0, runs = 3, ctx = 0, min_free = 512;
    double minutes = 0;
    bool resume = cmd_flag(c, "--resume"), dry = cmd_flag(c, "--dry-run");
    char err[1024];

    const char *b = cmd_opt(c, "--budget");
    if (b) {
        size_t l = strlen(b);
        if (l > 1 && b[l - 1] == 'm') {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(l - 1), b);
            if (!parse_f64(tmp, &minutes) || minutes <= 0) {
                fprintf(stderr, "variet tune: --budget wants N trials or Nm minutes, got '%s'\n", b);
                return CMD_USAGE;
            }
        } else if (!parse_i64(b, 1, 100000, &budget)) {
            fprintf(stderr, "variet tune: --budget wants N trials or Nm minutes, got '%s'\n", b);
            return CMD_USAGE;
        }
    }
    if (cmd_opt_i64(c, "--runs", 1, 16, &runs) || cmd_opt_i64(c, "--ctx", 256, 1 << 24, &ctx) ||
        cmd_opt_i64(c, "--min-free", 0, 1 << 20, &min_free))
        return CMD_USAGE;
    if (strcmp(strategy, "descent") && strcmp(strategy, "grid")) {
        fprintf(stderr, "variet tune: --strategy is descent (default) or grid\n");
        return CMD_USAGE;
    }

    tuner_t t;
    memset(&t, 0, sizeof t);
    t.runs = (int)runs;
    t.max_runs = (int)runs * 2;
    t.dry_run = dry;
    t.verbose_tty = isatty(2);
    t.margin = (uint64_t)min_free << 20;
    buf_init(&t.md_sweeps, 0);
    if (parse_objective(objective, &t.obj)) {
        fprintf(stderr, "variet tune: --objective is gen, prompt or weights like gen=1,prompt=0.5,cold=0.2\n");
        return CMD_USAGE;
    }
    registry_t *reg = c->reg; /* main.c's: not freed here */
    int rc = CMD_USAGE;
    gguf_t *g = NULL;
    t.reg = reg;
    t.role = c->role;
    if (gguf_open(t.role->model_abs, &g, err, sizeof err) || mi_from_gguf(g, &t.mi, err, sizeof err)) {
        fprintf(stderr, "variet tune: %s\n", err);
        goto out;
    }
    rc = CMD_FAIL;
    t.exe = backend_find_exe(reg->engine.llama_server);
    if (!t.exe && !dry) {
        fprintf(stderr, "variet tune: no llama-server found (set _engine.llama_server or $VARIET_LLAMA_SERVER)\n");
        goto out;
    }
    hw_info_init(&t.hw);
    char hwerr[256];
    hw_probe(&t.hw, hwerr, sizeof hwerr);
    for (int k = 0; k < t.hw.n_gpu && k < PLAN_MAX_GPU; k++) {
        snprintf(t.gpus[k].name, sizeof t.gpus[k].name, "CUDA%d", k);
        t.gpus[k].free_mib = t.hw.gpu[k].mem_free_mib;
        t.n_gpu++;
    }
    /* base args: the role's, with the required context pinned */
    t.base = copy_args(t.role->args, t.role->n_args);
    t.n_base = t.role->n_args;
    if (ctx > 0) {
        char cs[32];
        snprintf(cs, sizeof cs, "%lld", (long long)ctx);
        t.base = set_opt(t.base, &t.n_base, ARG_CTX_SIZE, cs);
    }
    if (space_arg) {
        char *spec = NULL;
        size_t len;
        char e2[256];
        if (access(space_arg, R_OK) == 0 && file_read_all(space_arg, 1 << 20, &spec, &len, e2, sizeof e2) == 0) {
            /* a file with the same syntax, one dimension per line */
        } else {
            spec = xstrdup(space_arg);
        }
        int r = parse_space(&t, spec, t.base, t.n_base, err, sizeof err);
        free(spec);
        if (r) {
            fprintf(stderr, "variet tune: %s\n", err);
            rc = CMD_USAGE;
            goto out;
        }
    } else {
        default_space(&t, t.base, t.n_base);
    }
    char *cdir = xstrdup(reg->dir ? reg->dir : ".");
    t.log_dir = cdir;
    t.history_path = xasprintf("%s/tune-%s.json", cdir, t.role->name);
    if (resume) {
        json_error_t je;
        t.history = json_load_file(t.history_path, 0, &je);
        if (!t.history) {
            fprintf(stderr, "variet tune: --resume: cannot read %s: %s\n", t.history_path, je.text);
            goto out;
        }
    } else {
        t.history = json_pack("{s:s,s:[]}", "role", t.role->name, "trials");
    }
    json_t *sp = json_object();
    for (int d = 0; d < t.space.n_dims; d++) {
        json_t *vals = json_array();
        for (int v = 0; v < t.space.dims[d].n_values; v++)
            json_array_append_new(vals, json_string(t.space.dims[d].values[v]));
        json_object_set_new(sp, t.space.dims[d].name, vals);
    }
    json_object_set_new(t.history, "space", sp);

    long grid = 1;
    for (int d = 0; d < t.space.n_dims; d++)
        grid *= t.space.dims[d].n_values;
    if (grid > 20000) {
        fprintf(stderr, "variet tune: the space has %ld configurations; keep it under 20000\n", grid);
        rc = CMD_USAGE;
        goto out;
    }
    fprintf(stderr, "variet tune: role %s, %d dimensions (", t.role->name, t.space.n_dims);
    for (int d = 0; d < t.space.n_dims; d++) {
        fprintf(stderr, "%s%s:", d ? "; " : "", t.space.dims[d].name);
        for (int v = 0; v < t.space.dims[d].n_values; v++)
            fprintf(stderr, "%s%s", v ? "," : "", t.space.dims[d].values[v]);
    }
    fprintf(stderr, "), full grid %ld configurations\n", grid);

    if (dry) {
        /* what would run: every grid point the planner lets through */
        long fits = 0;
        for (long k = 0; k < grid; k++) {
            tune_point_t p = {{0}};
            long r = k;
            for (int d = t.space.n_dims - 1; d >= 0; d--) {
                p.idx[d] = (int)(r % t.space.dims[d].n_values);
                r /= t.space.dims[d].n_values;
            }
            size_t n;
            char **a = point_args(&t, t.base, t.n_base, &p, &n);
            plan_opts_t po;
            plan_t pl;
            char *label = point_label(&t, &p);
            if (plan_opts_from_args(a, n, &po, err, sizeof err) == 0) {
                plan_predict(t.mi, &po, t.gpus, t.n_gpu, t.n_gpu ? -1 : t.hw.ram_avail_mib, t.margin, &pl);
                bool ok = pl.verdict != PLAN_NO_FIT;
                fits += ok;
                printf("%s  %s\n", ok ? "run " : "skip", label);
            } else {
                printf("skip  %s (%s)\n", label, err);
            }
            free(label);
            args_free(&a);
        }
        printf("%ld of %ld configurations fit; the search visits a subset (coordinate descent from the first)\n", fits,
               grid);
        rc = CMD_OK;
        goto out;
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t0 = now_s();

    /* known results from a resumed history */
    tune_known_t *known = xcalloc(grid > 0 ? (size_t)grid : 1, sizeof *known);
    int n_known = 0;
    /* baseline first (it anchors normalised objectives) */
    tune_point_t start = {{0}};
    {
        json_t *rec = point_record(&t, t.base, t.n_base, &start);
        if (rec && json_number_value(json_object_get(rec, "gen_tps")) > 0) {
            t.base_gen = json_number_value(json_object_get(rec, "gen_tps"));
            t.base_prompt = json_number_value(json_object_get(rec, "long_prompt_tps"));
            t.base_cold = json_number_value(json_object_get(json_object_get(rec, "load"), "cold_start_s"));
        }
    }
    for (long k = 0; resume && k < grid; k++) {
        tune_point_t p = {{0}};
        long r = k;
        for (int d = t.space.n_dims - 1; d >= 0; d--) {
            p.idx[d] = (int)(r % t.space.dims[d].n_values);
            r /= t.space.dims[d].n_values;
        }
        json_t *rec = point_record(&t, t.base, t.n_base, &p);
        if (rec) {
            known[n_known].p = p;
            eval_from_record(&t, rec, &known[n_known].e);
            n_known++;
        }
    }
    if (n_known)
        fprintf(stderr, "variet tune: resuming with %d trials already measured\n", n_known);
    t.budget = (int)budget;
    if (minutes > 0)
        t.deadline = t0 + minutes * 60;
    tune_result_t res;
    int sr;
    if (replay) {
        /* how the search would have gone on a recorded landscape */
        json_decref(t.history);
        json_error_t je;
        t.history = json_load_file(replay, 0, &je);
        if (!t.history) {
            fprintf(stderr, "variet tune: --replay %s: %s\n", replay, je.text);
            free(known);
            goto out;
        }
        json_t *tr = json_object_get(t.history, "trials"), *e;
        size_t ii;
        double grid_best = 0;
        int grid_n = 0;
        json_array_foreach(tr, ii, e)
        {
            if (strcmp(json_string_value(json_object_get(e, "phase")) ?: "", "search"))
                continue;
            grid_n++;
            double g2 = json_number_value(json_object_get(e, "gen_tps"));
            if (g2 > grid_best)
                grid_best = g2;
        }
        json_t *r0 = point_record(&t, t.base, t.n_base, &start);
        t.base_gen = r0 ? json_number_value(json_object_get(r0, "gen_tps")) : 1;
        if (t.base_gen <= 0)
            t.base_gen = 1;
        sr = tune_search(&t.space, &start, (int)budget, NULL, 0, eval_replay, &t, &res);
        json_t *br = point_record(&t, t.base, t.n_base, &res.best);
        double found = br ? json_number_value(json_object_get(br, "gen_tps")) : 0;
        printf("replay: grid %d trials, best %.2f t/s; search %d trials (%.0f%% of the grid), found %.2f t/s "
               "(%.1f%% of the grid's best)\n",
               grid_n, grid_best, res.trials, grid_n ? 100.0 * res.trials / grid_n : 0, found,
               grid_best > 0 ? 100.0 * found / grid_best : 0);
        free(known);
        rc = sr == 0 ? CMD_OK : CMD_FAIL;
        goto out;
    }
    if (!strcmp(strategy, "grid")) {
        /* every configuration, in order (bench/tuner's reference) */
        memset(&res, 0, sizeof res);
        res.best_eval.status = TUNE_FAILED;
        for (long k = 0; k < grid && !interrupted; k++) {
            tune_point_t p = {{0}};
            long r = k;
            for (int d = t.space.n_dims - 1; d >= 0; d--) {
                p.idx[d] = (int)(r % t.space.dims[d].n_values);
                r /= t.space.dims[d].n_values;
            }
            tune_eval_t e;
            bool have = false;
            for (int q = 0; q < n_known; q++)
                if (!memcmp(&known[q].p, &p, sizeof p)) {
                    e = known[q].e;
                    have = true;
                }
            if (!have) {
                if (eval_point(&t, &p, &e) < 0)
                    break;
                res.trials++;
            }
            res.visited++;
            if (e.status == TUNE_OK && (res.best_eval.status != TUNE_OK || e.score > res.best_eval.score)) {
                res.best = p;
                res.best_eval = e;
            }
        }
        sr = res.best_eval.status == TUNE_OK ? 0 : -1;
    } else {
        sr = tune_search(&t.space, &start, (int)budget, known, n_known, eval_point, &t, &res);
    }
    free(known);
    if (t.out_of_time)
        fprintf(stderr, "variet tune: time budget of %.1f min reached after %d trials\n", minutes, res.trials);
    if (interrupted) {
        fprintf(stderr, "variet tune: interrupted after %d trials; history in %s (continue with --resume)\n",
                res.trials, t.history_path);
        history_save(&t);
        rc = 130;
        goto out;
    }
    if (sr != 0) {
        fprintf(stderr, "variet tune: no configuration ran successfully (see %s)\n", t.history_path);
        goto out;
    }

    /* pruning pass: drop extra flags whose removal changes nothing */
    size_t nb;
    char **best = point_args(&t, t.base, t.n_base, &res.best, &nb);
    tune_eval_t best_e = res.best_eval;
    buf_t removed;
    buf_init(&removed, 0);
    buf_append(&removed, "", 0);
    item_t items[32];
    size_t ni = removable(t.base, t.n_base, items, 32);
    for (size_t k = ni; k-- > 0 && !interrupted;) {
        /* build base without item k, then the best point on top */
        size_t nn = 0;
        char **nbase = xcalloc(t.n_base + 1, sizeof *nbase);
        for (size_t i = 0; i < t.n_base; i++)
            if (i < items[k].at || i >= items[k].at + items[k].len)
                nbase[nn++] = xstrdup(t.base[i]);
        size_t na;
        char **a = point_args(&t, nbase, nn, &res.best, &na);
        char label[200];
        snprintf(label, sizeof label, "without %s%s%s", t.base[items[k].at], items[k].len > 1 ? " " : "",
                 items[k].len > 1 ? t.base[items[k].at + 1] : "");
        tune_eval_t e;
        json_t *rec = NULL;
        run_trial(&t, a, na, label, &e, &rec);
        json_object_set_new(rec, "phase", json_string("prune"));
        json_array_append_new(json_object_get(t.history, "trials"), rec);
        history_save(&t);
        bool same = e.status == TUNE_OK && e.score >= best_e.score * (1.0 - tune_tie_threshold(&e, &best_e));
        double delta = best_e.score > 0 ? (e.score / best_e.score - 1) * 100 : 0;
        if (same) {
            buf_printf(&removed, "| `%s` | %+.1f%% | removed (no measurable effect) |\n", label + 8, delta);
            args_free(&t.base);
            t.base = nbase;
            t.n_base = nn;
            args_free(&best);
            best = a;
            nb = na;
            if (e.score > best_e.score)
                best_e = e;
        } else {
            buf_printf(&removed, "| `%s` | %+.1f%% | kept |\n", label + 8, delta);
            args_free(&nbase);
            args_free(&a);
        }
    }

    /* the winner's measured figures */
    char *bkey = join_args(best, nb);
    json_t *brec = history_find(&t, bkey);
    json_t *srec = point_record(&t, t.role->args, t.role->n_args, &start);
    double new_tps = json_number_value(json_object_get(brec, "gen_tps"));
    double old_tps = t.role->measured_tps;
    char *old_args = join_args(t.role->args, t.role->n_args);

    /* Markdown retuning log */
    buf_t md;
    buf_init(&md, 0);
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
    buf_printf(&md, "# Retuning `%s` (%s)\n\n", t.role->name, stamp);
    buf_printf(&md, "## Motivation and baseline\n\nObjective: %s (generation t/s on the short scenario: ~%d prompt "
                    "tokens, %d generated; weights gen=%.2g prompt=%.2g cold=%.2g). Starting point: the role's current "
                    "arguments `%s`",
               objective, bench_short.prompt_tokens, bench_short.n_predict, t.obj.gen, t.obj.prompt, t.obj.cold,
               old_args);
    if (srec && json_number_value(json_object_get(srec, "gen_tps")) > 0)
        buf_printf(&md, ", measured at %.2f gen t/s", json_number_value(json_object_get(srec, "gen_tps")));
    buf_printf(&md, "; recorded measured_tps %.2f. Differences within the measured noise (at least 1%%) count as "
                    "ties; the simpler configuration wins.\n\n",
               old_tps);
    md_hw(&t, &md);
    md_model(&t, &md);
    buf_printf(&md, "## Search\n\nCoordinate descent over:\n\n");
    for (int d = 0; d < t.space.n_dims; d++) {
        buf_printf(&md, "- `%s`:", t.space.dims[d].name);
        for (int v = 0; v < t.space.dims[d].n_values; v++)
            buf_printf(&md, " %s", t.space.dims[d].values[v]);
        buf_printf(&md, "\n");
    }
    buf_printf(&md, "\n%d trials measured in this run (%d configurations known, full grid %ld), %.0f s.\n\n",
               res.trials, res.visited, grid, now_s() - t0);
    md_trials(&t, &md);
    buf_printf(&md, "## Removed flags\n\n");
    if (ni)
        buf_printf(&md, "| flag | Δ objective without it | decision |\n|---|---|---|\n%s\n", removed.data);
    else
        buf_printf(&md, "The role had no extra flags to try removing.\n\n");
    buf_printf(&md, "## Result\n\n```json\n");
    /* final JSON for the role */
    size_t fa_n = nb;
    json_t *fa = json_array();
    for (size_t i = 0; i < fa_n; i++)
        json_array_append_new(fa, json_string(best[i]));
    json_t *final = json_pack("{s:s,s:s,s:f,s:o}", "display_name", t.role->display_name, "model_path",
                              t.role->model_path, "measured_tps", round(new_tps * 100) / 100, "args", fa);
    char *fs = json_dumps(final, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    buf_printf(&md, "\"%s\": %s\n```\n\n", t.role->name, fs);
    free(fs);
    json_decref(final);
    buf_printf(&md, "| | gen t/s | prompt t/s | TTFT ms | prefill s | cold start s |\n|---|---|---|---|---|---|\n");
    if (srec && !strcmp(json_string_value(json_object_get(srec, "status")) ?: "", "ok"))
        buf_printf(&md, "| before | %.2f | %.1f | %.1f | %.3f | %.2f |\n", json_number_value(json_object_get(srec, "gen_tps")),
                   json_number_value(json_object_get(srec, "prompt_tps")), json_number_value(json_object_get(srec, "ttft_ms")),
                   json_number_value(json_object_get(srec, "prefill_s")),
                   json_number_value(json_object_get(json_object_get(srec, "load"), "cold_start_s")));
    buf_printf(&md, "| after | %.2f | %.1f | %.1f | %.3f | %.2f |\n\n", new_tps,
               json_number_value(json_object_get(brec, "prompt_tps")), json_number_value(json_object_get(brec, "ttft_ms")),
               json_number_value(json_object_get(brec, "prefill_s")),
               json_number_value(json_object_get(json_object_get(brec, "load"), "cold_start_s")));
    json_t *devs = json_object_get(json_object_get(brec, "load"), "devices"), *dv;
    size_t di;
    if (json_array_size(devs)) {
        buf_printf(&md, "Memory of the winner (llama-server's report):\n\n| device | model MiB | KV MiB | RS MiB | compute "
                        "MiB |\n|---|---|---|---|---|\n");
        json_array_foreach(devs, di, dv)
        buf_printf(&md, "| %s | %.2f | %.2f | %.2f | %.2f |\n", json_string_value(json_object_get(dv, "device")),
                   json_number_value(json_object_get(dv, "model_mib")), json_number_value(json_object_get(dv, "kv_mib")),
                   json_number_value(json_object_get(dv, "rs_mib")), json_number_value(json_object_get(dv, "compute_mib")));
        buf_printf(&md, "\n");
    }
    buf_printf(&md, "measured_tps: %.2f → %.2f\n", old_tps, new_tps);
    char *md_path = xasprintf("%s/tune-%s-%s.md", cdir, t.role->name, stamp);
    if (file_write_atomic(md_path, md.data, md.len, err, sizeof err))
        fprintf(stderr, "variet tune: cannot write %s: %s\n", md_path, err);

    /* registry: args + measured_tps, previous file kept */
    char rname[128];
    snprintf(rname, sizeof rname, "%s", t.role->name);
    if (registry_set_args(reg, rname, best, nb) || registry_set_tps(reg, rname, new_tps) ||
        registry_save(reg, config, true, err, sizeof err)) {
        fprintf(stderr, "variet tune: cannot update %s: %s\n", config, err);
    } else {
        char *na = join_args(best, nb);
        printf("%s: %s\n  args: %s\n    → %s\n  measured_tps: %.2f → %.2f\n  log: %s\n  history: %s\n", config, rname,
               old_args, na, old_tps, new_tps, md_path, t.history_path);
        free(na);
        rc = CMD_OK;
    }
    free(md_path);
    buf_free(&md);
    free(old_args);
    free(bkey);
    buf_free(&removed);
    args_free(&best);
out:
    free((char *)t.log_dir);
    free(t.history_path);
    json_decref(t.history);
    args_free(&t.base);
    free(t.exe);
    buf_free(&t.md_sweeps);
    mi_free(&t.mi);
    gguf_close(&g);
    return rc;
}

static const cli_opt_t tune_opts[] = {
    CMD_OPT_CONFIG,
    {"--space", 0, "SPEC|FILE", "dimensions and values, e.g. 'ub=128,512;kv=f16,q8_0;fa=on,off;t=1,2' (default: from hw)",
     0},
    {"--budget", 0, "N|Nm", "stop after N trials or N minutes", 0},
    {"--runs", 0, "N", "measured runs per trial after a warm-up, 1..16 (default 3)", 0},
    {"--ctx", 0, "N", "pin the context length every trial must hold", 0},
    {"--min-free", 0, "MiB", "memory kept free on each device (default 512)", 0},
    {"--objective", 0, "gen|prompt|W", "what to maximise: gen, prompt, or weights like gen=1,prompt=0.5,cold=0.2", 0},
    {"--resume", 0, NULL, "continue from tune-ROLE.json without measuring anything twice", 0},
    {"--dry-run", 0, NULL, "list the space with the planner's run/skip verdicts; launch nothing", 0},
    {"--strategy", 0, "descent|grid", "coordinate descent (default) or the whole grid", 0},
    {"--replay", 0, "HISTORY", "replay the search on a recorded grid (bench/tuner.sh)", 0},
    {0},
};

const cmd_entry_t cmd_tune_entry = {
    .name = "tune",
    .pos_usage = "ROLE",
    .summary = "search llama-server flags by measurement under memory limits; write the winner and a retuning log",
    .opts = tune_opts,
    .min_pos = 1,
    .max_pos = 1,
    .target = CMD_TARGET_ROLE,
    .exec = exec_tune,
};
