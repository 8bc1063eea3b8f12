/*
 * test_plan.c — the planner against llama-server's own numbers: every GPU
 * fixture (H100 logs, the H200 tuning histories and anchors) predicted per
 * device — weights, KV, recurrent state, compute buffers, and the context
 * --fit picks — on sparse full-size files with the fixtures' shapes (the
 * synthetic qwen35-35b-a3b, q4_k, for the H200; the same tensor table with
 * the H100 model's Q4_K_M-style mix for the H100 logs); the accuracy
 * targets (compute within 5% per device, fit's context within 1%); layer
 * placement rules (-ngl, -ts, output layer first, -ncmoe, --cpu-moe, -ot,
 * --no-kv-offload); --fit's steps; the tuner's bounds (smallest -ncmoe,
 * largest -ngl); verdicts and suggestions; argument errors.
 *
 * VARIET_PLAN_TABLE=1 prints the GPU error table (bench/planner.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "ggufw.h"
#include "loadlog.h"
#include "modelinfo.h"
#include "plan.h"
#include "synth.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

static gguf_t *g35, *g100;
static mi_t *m35, *m100;
static char path35[128], path100[128];

/* llama-quantize's use_more_bits(i, n) (Q4_K_M keeps these layers' ffn_down
 * and attn_v in q6_k). */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The H100 fixtures' model: the synthetic table with the Q4_K_M-style mix
 * its log reports (q4_K 356, q5_K 30, q6_K 46 tensors): output and the
 * use_more_bits layers' ffn_down / attn_v in q6_k, attn_qkv in q5_k. The
 * tests check it against that log's model buffer sizes. */
static int write_h100_variant(const gguf_t *g, const char *path, char *err, size_t errlen)
{
    ggufw_t *w = ggufw_new(32);
    for (size_t i = 0; i < gguf_n_kv(g); i++) {
        const gguf_kv_t *kv = gguf_kv(g, i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (!strcmp(key, "general.alignment"))
            continue;
        switch (kv->type) {
        case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: ggufw_u32(w, key, (uint32_t)kv->v.u); break;
        case GGUF_VT_UINT64: ggufw_u64(w, key, kv->v.u); break;
        case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32: case GGUF_VT_INT64: ggufw_i32(w, key, (int32_t)kv->v.i); break;
        case GGUF_VT_FLOAT32: case GGUF_VT_FLOAT64: ggufw_f32(w, key, (float)kv->v.f); break;
        case GGUF_VT_BOOL: ggufw_bool(w, key, (int)kv->v.u); break;
        case GGUF_VT_STRING: {
            char *v = xasprintf("%.*s", (int)kv->v.s.len, kv->v.s.ptr);
            ggufw_str(w, key, v);
            free(v);
            break;
        }
        case GGUF_VT_ARRAY: { /* numeric arrays only: the vocabulary's size comes from token_embd */
            if (kv->v.arr.type == GGUF_VT_STRING || kv->v.arr.n > 64)
                break;
            int32_t a[64];
            for (uint64_t k = 0; k < kv->v.arr.n; k++) {
                int64_t x = 0;
                gguf_arr_int(g, kv, k, &x);
                a[k] = (int32_t)x;
            }
            ggufw_arr_i32(w, key, (size_t)kv->v.arr.n, a);
            break;
        }
        default: break;
        }
    }
    int i_attn_v = 0;
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_t *t = gguf_tensor(g, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        gguf_ttype_t type = t->type;
        int il = -1;
        sscanf(name, "blk.%d.", &il);
        if (type != GGUF_TT_F32) {
            if (!strcmp(name, "output.weight"))
                type = GGUF_TT_Q6_K;
            else if (strstr(name, "ffn_down") && il >= 0 && more_bits(il, 40))
                type = GGUF_TT_Q6_K;
            else if (strstr(name, "attn_v.weight"))
                type = more_bits(i_attn_v++, 10) ? GGUF_TT_Q6_K : type;
            else if (strstr(name, "attn_qkv.weight"))
                type = GGUF_TT_Q5_K;
        }
        if (ggufw_tensor(w, name, type, (int)t->n_dims, t->ne) < 0) {
            snprintf(err, errlen, "%s: type does not fit", name);
            ggufw_free(&w);
            return -1;
        }
    }
    FILE *f = fopen(path, "wb");
    int rc = f ? ggufw_write(w, f, NULL, NULL, err, errlen) : -1;
    if (f)
        fclose(f);
    ggufw_free(&w);
    return rc;
}

static int setup(void **s)
{
    (void)s;
    char err[256];
    snprintf(path35, sizeof path35, "/tmp/variet-test-plan-%ld.gguf", (long)getpid());
    snprintf(path100, sizeof path100, "/tmp/variet-test-plan-h100-%ld.gguf", (long)getpid());
    synth_opts_t o = {.wtype = -1, .seed = 1, .sparse = true};
    if (synth_write(synth_find("qwen35-35b-a3b"), &o, path35, err, sizeof err))
        return -1;
    if (gguf_open(path35, &g35, err, sizeof err) || mi_from_gguf(g35, &m35, err, sizeof err))
        return -1;
    if (write_h100_variant(g35, path100, err, sizeof err) || gguf_open(path100, &g100, err, sizeof err) ||
        mi_from_gguf(g100, &m100, err, sizeof err)) {
        fprintf(stderr, "h100 variant: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    mi_free(&m35);
    gguf_close(&g35);
    unlink(path35);
    mi_free(&m100);
    gguf_close(&g100);
    unlink(path100);
    return 0;
}

/* Split a command line into an argv (borrowing `copy`). */
static size_t split(char *copy, char **argv, size_t cap)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t && n < cap; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    return n;
}

static void opts(plan_opts_t *o, const char *line)
{
    char *copy = xstrdup(line), *argv[64];
    size_t n = split(copy, argv, 64);
    char err[256];
    if (plan_opts_from_args(argv, n, o, err, sizeof err))
        fail_msg("%s: %s", line, err);
    free(copy);
}

#define NEAR_MIB(bytes, mib, tol) \
    do { \
        double got_ = (double)(bytes) / MIB; \
        if (fabs(got_ - (mib)) > (tol)) \
            fail_msg("%s = %.2f MiB, llama-server %.2f MiB (tolerance %.2f)", #bytes, got_, (double)(mib), (double)(tol)); \
    } while (0)

/* *text (caller frees) lives in the caller's frame: a pointer local to this
 * function would make every pointer into the text look dangling to gcc -O3 */
static void fixture(const char *rel, char **text, size_t *len)
{
    char *path = xasprintf("%s/%s", VARIET_FIXTURES, rel), err[256];
    *text = NULL;
    int rc = file_read_all(path, 64u << 20, text, len, err, sizeof err);
    free(path);
    if (rc)
        fail_msg("fixture: %s", err);
}

static void parse_log(const char *rel, loadlog_t *r)
{
    size_t len;
    char *text;
    fixture(rel, &text, &len);
    loadlog_init(r);
    loadlog_parse(r, text, len);
    free(text);
}

static const loadlog_dev_t *log_dev(const loadlog_t *r, const char *name)
{
    for (int i = 0; i < r->n_dev; i++)
        if (!strcmp(r->dev[i].name, name))
            return &r->dev[i];
    fail_msg("device %s not in the log", name);
    return NULL;
}

/* ------------------------------------------------------ the GPU fixtures */

/* One measured configuration: what llama-server reported, and what it ran. */
typedef struct {
    char src[96];          /* fixture, and the trial within it */
    const mi_t *m;
    char args[400];
    int64_t free_mib;      /* free before launch (NVML), -1 when the log has none */
    double w, kv, rs, c_gpu, c_host, host_w; /* MiB as reported; -1 unknown */
    long n_ctx;            /* context it loaded with, -1 unknown */
    bool fit;              /* --fit was on and the context is fit's */
    bool host_experts;     /* experts (or whole layers) in host memory */
    const char *fit_abort; /* the fit's abort reason in the log, or NULL */
    bool oom;              /* it ran out of device memory while loading */
} meas_t;

#define MAX_MEAS 160
static meas_t meas[MAX_MEAS];
static int n_meas;

static meas_t *add_meas(const char *src, const mi_t *m, const char *args)
{
    assert_true(n_meas < MAX_MEAS);
    meas_t *x = &meas[n_meas++];
    memset(x, 0, sizeof *x);
    snprintf(x->src, sizeof x->src, "%s", src);
    x->m = m;
    snprintf(x->args, sizeof x->args, "%s", args);
    x->free_mib = -1;
    x->w = x->kv = x->rs = x->c_gpu = x->c_host = x->host_w = -1;
    x->n_ctx = -1;
    return x;
}

/* The H100 logs (args from the fixture's README table). The device list at
 * the top gives free memory after llama-server's CUDA context: + that. */
static void load_h100(void)
{
    static const struct {
        const char *log, *args;
    } logs[] = {
        {"default-c4096.log", "-c 4096"},
        {"defaults.log", ""},
        {"seedargs-full-gpu.log", "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512 -t 6 -tb 6"},
        {"b24-defaults.log", ""},
        {"b20-seedargs-fitoff-oom.log", "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512 -t 6 -tb 6 -fit off"},
        {"b24-seedargs-fitoff.log", "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512 -t 6 -tb 6 -fit off"},
        {"b24-seedargs-fiton.log", "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512 -t 6 -tb 6"},
        {"b24-tuned-ub2048-f16-c65536.log", "-ngl 999 -c 65536 -np 1 -fa on -ub 2048 -b 2048"},
        {"b12-defaults.log", ""},
        {"b12-fit-c32k-np1.log", "-c 32768 -np 1"},
        {"b12-ncmoe20-ub512.log", "-ngl 999 -c 32768 -np 1 -fa on -ncmoe 20 -fit off"},
        {"b12-ncmoe24-ub2048.log", "-ngl 999 -c 32768 -np 1 -fa on -ncmoe 24 -ub 2048 -b 2048 -fit off"},
    };
    for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++) {
        char rel[160];
        snprintf(rel, sizeof rel, "llama-server/cuda-h100-qwen35moe/%s", logs[i].log);
        loadlog_t r;
        parse_log(rel, &r);
        meas_t *x = add_meas(logs[i].log, m100, logs[i].args);
        x->free_mib = (int64_t)log_dev(&r, "CUDA0")->free_mib + PLAN_CUDA_CTX_MIB;
        x->w = loadlog_sum(&r, "CUDA0", "model");
        x->kv = loadlog_sum(&r, "CUDA0", "kv");
        x->rs = loadlog_sum(&r, "CUDA0", "rs");
        x->c_gpu = loadlog_sum(&r, "CUDA0", "compute");
        x->c_host = loadlog_sum(&r, "CUDA_Host", "compute");
        x->host_w = loadlog_sum(&r, "CPU", "model");
        x->n_ctx = r.n_ctx;
        x->fit = !strstr(logs[i].args, "-fit off");
        x->host_experts = strstr(logs[i].args, "ncmoe") || x->host_w > 1000;
        x->fit_abort = r.fit_abort[0] ? xstrdup(r.fit_abort) : NULL;
        x->oom = r.oom;
        if (r.oom) /* no KV, RS, compute lines */
            x->kv = x->rs = x->c_gpu = x->c_host = -1;
    }
}

/* "| 0 | NVIDIA H200 | 12799 | 143771 | ..." in a tuning log's Hardware table */
static int64_t md_free(const char *text)
{
    const char *p = strstr(text, "| 0 | ");
    assert_non_null(p);
    p = strchr(p + 6, '|');
    assert_non_null(p);
    return strtoll(p + 1, NULL, 10);
}

/* The tuning logs' winners: args from the result JSON, memory from "Memory
 * of the winner". */
static void load_tune_md(const char *rel, const char *name)
{
    size_t len;
    char *text;
    fixture(rel, &text, &len);
    const char *j = strstr(text, "```json\n");
    assert_non_null(j);
    j += 8;
    const char *je = strstr(j, "```");
    assert_non_null(je);
    /* the block is the role's entry: "name": {...} */
    char *obj = xasprintf("{%.*s}", (int)(je - j), j);
    json_error_t e;
    json_t *doc = json_loads(obj, 0, &e);
    free(obj);
    assert_non_null(doc);
    const char *role;
    json_t *def;
    char args[400] = "";
    size_t l = 0;
    json_object_foreach(doc, role, def) {
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(def, "args"), k, a) l += (size_t)snprintf(args + l, sizeof args - l, "%s%s", l ? " " : "", json_string_value(a));
    }
    json_decref(doc);
    meas_t *x = add_meas(name, m35, args);
    x->free_mib = md_free(text);
    const char *t = strstr(text, "Memory of the winner");
    assert_non_null(t);
    const char *g = strstr(t, "| CUDA0 |"), *h = strstr(t, "| CUDA_Host |");
    assert_non_null(g);
    assert_non_null(h);
    assert_int_equal(sscanf(g, "| CUDA0 | %lf | %lf | %lf | %lf |", &x->w, &x->kv, &x->rs, &x->c_gpu), 4);
    double hk, hr;
    assert_int_equal(sscanf(h, "| CUDA_Host | %lf | %lf | %lf | %lf |", &x->host_w, &hk, &hr, &x->c_host), 4);
    x->host_experts = strstr(args, "n-cpu-moe") != NULL;
    free(text);
}

/* The full-offload tuning history: every trial that loaded. */
static void load_tune_json(const char *rel, const char *md, const char *name)
{
    size_t len;
    char *mdtext;
    fixture(md, &mdtext, &len);
    int64_t free_mib = md_free(mdtext);
    free(mdtext);
    char *text;
    fixture(rel, &text, &len);
    json_error_t e;
    json_t *doc = json_loadb(text, len, 0, &e);
    free(text);
    assert_non_null(doc);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(doc, "trials"), i, t) {
        json_t *load = json_object_get(t, "load");
        const char *st = json_string_value(json_object_get(t, "status"));
        if (!load || (strcmp(st, "ok") && strcmp(st, "tight"))) /* a tight load loaded */
            continue;
        char args[400] = "", src[96];
        size_t l = 0, k;
        json_t *a;
        json_array_foreach(json_object_get(t, "args"), k, a) l += (size_t)snprintf(args + l, sizeof args - l, "%s%s", l ? " " : "", json_string_value(a));
        bool dup = false; /* the same configuration measured again (pruning) */
        for (int q = 0; q < n_meas; q++)
            dup |= strstr(meas[q].src, "trial") && !strcmp(meas[q].args, args);
        if (dup)
            continue;
        snprintf(src, sizeof src, "%s trial %zu", name, i + 1);
        meas_t *x = add_meas(src, m35, args);
        x->free_mib = free_mib;
        json_t *d;
        json_array_foreach(json_object_get(load, "devices"), k, d) {
            const char *dn = json_string_value(json_object_get(d, "device"));
            double c = json_number_value(json_object_get(d, "compute_mib"));
            if (!strcmp(dn, "CUDA0")) {
                x->w = json_number_value(json_object_get(d, "model_mib"));
                x->kv = json_number_value(json_object_get(d, "kv_mib"));
                x->rs = json_number_value(json_object_get(d, "rs_mib"));
                x->c_gpu = c;
            } else if (!strcmp(dn, "CUDA_Host")) {
                x->c_host = c;
            } else if (!strncmp(dn, "CPU", 3)) {
                x->host_w = (x->host_w < 0 ? 0 : x->host_w) + json_number_value(json_object_get(d, "model_mib"));
            }
        }
        x->host_experts = x->host_w > 1000; /* more than the token embeddings */
    }
    json_decref(doc);
}

/* A tuner trial that ran out of device memory allocating its compute
 * buffer: weights, KV and RS as allocated, the compute buffer from the
 * failed allocation, free memory from the log's device list (after
 * llama-server's CUDA context). */
static void load_oom_log(const char *rel, const char *name, const char *args)
{
    loadlog_t r;
    parse_log(rel, &r);
    assert_true(r.oom);
    assert_string_equal(r.oom_what, "the compute buffer");
    meas_t *x = add_meas(name, m35, args);
    x->free_mib = (int64_t)log_dev(&r, "CUDA0")->free_mib + PLAN_CUDA_CTX_MIB;
    x->w = loadlog_sum(&r, "CUDA0", "model");
    x->host_w = loadlog_sum(&r, "CPU", "model");
    x->c_gpu = r.oom_mib;
    x->n_ctx = r.n_ctx;
    x->oom = true;
}

/* anchors-21500MiB.log: `variet hw`, then per role the bench's load report. */
static void load_anchors(void)
{
    size_t len;
    char *text;
    fixture("gpu/h200-tune/anchors-21500MiB.log", &text, &len);
    const char *hw = strstr(text, "NVIDIA H200 ");
    assert_non_null(hw);
    double total, used, fr;
    assert_int_equal(sscanf(hw + 12, "%lf %lf %lf", &total, &used, &fr), 3);
    static const struct {
        const char *role, *args;
    } roles[] = {
        {"defaults", ""},
        {"seed", "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512 -t 6 -tb 6"},
        {"hand", "-ngl 999 -c 65536 -np 1 -fa on -ub 2048 -b 2048"},
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        char hdr[64], src[64];
        snprintf(hdr, sizeof hdr, "=== %s\n", roles[i].role);
        const char *sec = strstr(text, hdr);
        assert_non_null(sec);
        const char *g = strstr(sec, "  CUDA0        model "), *h = strstr(sec, "  CUDA_Host    model ");
        assert_non_null(g);
        assert_non_null(h);
        snprintf(src, sizeof src, "h200 anchors %s", roles[i].role);
        meas_t *x = add_meas(src, m35, roles[i].args);
        x->free_mib = (int64_t)fr;
        assert_int_equal(sscanf(g, "  CUDA0 model %lf MiB, KV %lf MiB, RS %lf MiB, compute %lf MiB", &x->w, &x->kv, &x->rs,
                                &x->c_gpu), 4);
        double hw_, hk, hr;
        assert_int_equal(sscanf(h, "  CUDA_Host model %lf MiB, KV %lf MiB, RS %lf MiB, compute %lf MiB", &hw_, &hk, &hr,
                                &x->c_host), 4);
        /* the context it loaded with, from its KV cache */
        plan_opts_t o;
        opts(&o, roles[i].args);
        uint64_t per_256 = mi_kv_bytes(m35, 256, o.type_k, o.type_v);
        x->n_ctx = (long)llround(x->kv * MIB / (double)per_256 * 256.0);
        x->fit = true;
    }
    free(text);
}

static void load_all(void)
{
    if (n_meas)
        return;
    load_h100();
    load_tune_md("gpu/h200-tune/tune-partial-12800MiB-ctx32k.md", "h200 tune 12800 winner (ncmoe 16 ub 256)");
    load_tune_md("gpu/h200-tune/tune-partial-12800MiB-ctx32k-space2.md", "h200 tune 12800 space2 winner (ncmoe 16 ub 512)");
    load_anchors();
    load_tune_json("gpu/h200-tune/tune-full-gpu-21500MiB-ctx256k.json", "gpu/h200-tune/tune-full-gpu-21500MiB-ctx256k.md",
                   "h200 full-gpu");
    load_tune_json("gpu/h200-tune-6/tune-12800.json", "gpu/h200-tune-6/tune-balanced-12800.md", "h200 tune-6 12800");
    load_tune_json("gpu/h200-tune-6/tune-21500.json", "gpu/h200-tune-6/tune-balanced-21500.md", "h200 tune-6 21500");
    load_oom_log("gpu/h200-tune-6/tune-21500-trial-10-oom.log", "h200 tune-6 21500 trial 10 (oom, 256K ub 1024)",
                 "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 1024 -b 1024 -t 6 -tb 6 --fit off");
    load_tune_json("gpu/h200-tune-7/tune-12800.json", "gpu/h200-tune-7/tune-balanced-12800.md", "h200 tune-7 12800");
    load_tune_json("gpu/h200-tune-7/tune-21500.json", "gpu/h200-tune-7/tune-balanced-21500.md", "h200 tune-7 21500");
    load_oom_log("gpu/h200-tune-7/tune-21500-trial-9-oom.log", "h200 tune-7 21500 trial 9 (oom, 95,744 f16 ub 2048)",
                 "-ngl 999 -c 95744 -np 1 -fa on -ctk f16 -ctv f16 -ub 2048 -b 2048 -t 6 -tb 6 --fit off");
}

static double rel_err(double pred, double real) { return real > 0 ? (pred - real) / real : 0; }

/* Every GPU fixture, predicted: the error table and the targets. */
static void t_gpu_fixtures(void **s)
{
    (void)s;
    load_all();
    bool table = getenv("VARIET_PLAN_TABLE") != NULL;
    if (table)
        printf("| fixture | host experts | weights MiB pred / real | KV | RS | GPU compute pred / real | error | "
               "host compute pred / real | error | context pred / real (fit) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    double worst_c = 0, worst_c_hx = 0, worst_ctx = 0;
    int failures = 0;
    for (int i = 0; i < n_meas; i++) {
        meas_t *x = &meas[i];
        plan_opts_t o;
        opts(&o, x->args);
        plan_gpu_t gpu = {"CUDA0", x->free_mib};
        plan_t p;
        plan_predict(x->m, &o, &gpu, 1, -1, 0, &p);
        double w = p.dev[1].weights / MIB, kv = p.dev[1].kv / MIB, rs = p.dev[1].rs / MIB, cg = p.dev[1].compute / MIB,
               ch = p.dev[0].compute / MIB;
        double eg = rel_err(cg, x->c_gpu), eh = rel_err(ch, x->c_host);
        double ectx = x->n_ctx > 0 ? rel_err((double)p.n_ctx, (double)x->n_ctx) : 0;
        bool ok = fabs(w - x->w) <= 0.01;
        if (x->oom) { /* predicted not to fit once llama-server's own CUDA context is counted */
            plan_t q;
            plan_predict(x->m, &o, &gpu, 1, -1, (uint64_t)PLAN_CUDA_CTX_MIB << 20, &q);
            ok &= q.verdict == PLAN_NO_FIT;
        } else if (x->fit && p.fit.ctx_cut) {
            /* the KV cache follows fit's context, held to 1% below (the free
             * memory it starts from is known to a MiB: a 256-cell step) */
            ok &= fabs(rs - x->rs) <= 0.01 && fabs(rel_err(kv, x->kv)) <= 0.01;
        } else {
            ok &= fabs(kv - x->kv) <= 0.01 && fabs(rs - x->rs) <= 0.01;
        }
        if (x->c_gpu >= 0)
            ok &= fabs(eg) <= 0.05 && fabs(eh) <= 0.05;
        if (x->fit && x->n_ctx > 0)
            ok &= fabs(ectx) <= 0.01;
        if (x->fit_abort)
            ok &= p.fit.status == PLAN_FIT_ABORTED && strstr(x->fit_abort, p.fit.reason) == x->fit_abort;
        if (x->c_gpu >= 0) {
            if (fabs(eg) > fabs(worst_c))
                worst_c = eg;
            if (fabs(eh) > fabs(worst_c))
                worst_c = eh;
            if (x->host_experts && fabs(eg) > fabs(worst_c_hx))
                worst_c_hx = eg;
        }
        if (x->fit && fabs(ectx) > fabs(worst_ctx))
            worst_ctx = ectx;
        if (!ok) {
            failures++;
            fprintf(stderr, "%s [%s]: weights %.2f/%.2f KV %.2f/%.2f RS %.2f/%.2f compute %.2f/%.2f host %.2f/%.2f ctx %llu/%ld fit %s %s\n",
                    x->src, x->args, w, x->w, kv, x->kv, rs, x->rs, cg, x->c_gpu, ch, x->c_host,
                    (unsigned long long)p.n_ctx, x->n_ctx, plan_fit_status_name(p.fit.status), p.fit.reason);
        }
        if (table) {
            char cgs[48] = "–", chs[48] = "–", ctxs[64] = "–";
            if (x->c_gpu >= 0) {
                snprintf(cgs, sizeof cgs, "%.2f / %.2f | %+.1f%%", cg, x->c_gpu, eg * 100);
                snprintf(chs, sizeof chs, "%.2f / %.2f | %+.1f%%", ch, x->c_host, eh * 100);
            } else {
                snprintf(cgs, sizeof cgs, "%.2f / – | –", cg);
                snprintf(chs, sizeof chs, "%.2f / – | –", ch);
            }
            if (x->oom)
                snprintf(ctxs, sizeof ctxs, "out of memory, predicted: %s", plan_verdict_name(PLAN_NO_FIT));
            if (x->n_ctx > 0 && !x->oom)
                snprintf(ctxs, sizeof ctxs, "%llu / %ld%s", (unsigned long long)p.n_ctx, x->n_ctx,
                         x->fit ? (p.fit.status == PLAN_FIT_CTX || p.fit.status == PLAN_FIT_PLACED ? " (cut)" : " (on)") : "");
            char kvs[48], rss[48];
            snprintf(kvs, sizeof kvs, x->kv >= 0 ? "%.2f / %.2f" : "%.2f / –", kv, x->kv);
            snprintf(rss, sizeof rss, x->rs >= 0 ? "%.2f / %.2f" : "%.2f / –", rs, x->rs);
            printf("| %s%s | %s | %.2f / %.2f | %s | %s | %s | %s | %s |\n", x->src, ok ? "" : " **FAIL**",
                   x->host_experts ? "yes" : "no", w, x->w, kvs, rss, cgs, chs, ctxs);
        }
    }
    printf("planner GPU fixtures: %d configurations, %d outside tolerance, worst compute error %+.1f%% (with host "
           "experts %+.1f%%), worst fit context error %+.2f%%\n",
           n_meas, failures, worst_c * 100, worst_c_hx * 100, worst_ctx * 100);
    assert_int_equal(failures, 0);
    assert_true(fabs(worst_c) <= 0.05);
    assert_true(fabs(worst_ctx) <= 0.01);
}

/* The H100 variant really is the model of those logs: its model buffers. */
static void t_h100_variant(void **s)
{
    (void)s;
    NEAR_MIB(m100->weight_bytes, 19.70 * 1024, 0.006 * 1024); /* "file size = 19.70 GiB" */
    loadlog_t r;
    parse_log("llama-server/cuda-h100-qwen35moe/b12-ncmoe20-ub512.log", &r);
    plan_opts_t o;
    opts(&o, "-ngl 999 -c 32768 -np 1 -fa on -ncmoe 20 -fit off");
    plan_gpu_t gpu = {"CUDA0", 12801};
    plan_t p;
    plan_predict(m100, &o, &gpu, 1, -1, 0, &p);
    NEAR_MIB(p.dev[1].weights, log_dev(&r, "CUDA0")->model_mib, 0.01);
    /* llama-server's CPU_Mapped line is the mmap'ed span from the first to
     * the last host tensor, GPU tensors between them included: never less */
    assert_true(p.dev[0].weights / MIB <= log_dev(&r, "CPU_Mapped")->model_mib + 0.01);
    assert_true(p.dev[0].weights / MIB >= log_dev(&r, "CPU_Mapped")->model_mib * 0.9);
}

/* seedargs-full-gpu.log: all on CUDA0. */
static void t_fixture_full_gpu(void **s)
{
    (void)s;
    plan_opts_t o;
    opts(&o, "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512 -t 6 -tb 6");
    plan_gpu_t gpu = {"CUDA0", 81079};
    plan_t p;
    plan_predict(m35, &o, &gpu, 1, 24000, 512u << 20, &p);
    assert_int_equal(p.n_dev, 2);
    NEAR_MIB(p.dev[1].kv, 1440.00, 0.005);
    NEAR_MIB(p.dev[1].rs, 62.81, 0.005);
    NEAR_MIB(p.dev[0].weights, 272.81, 0.005); /* token_embd on the host (CPU_Mapped) */
    NEAR_MIB(p.dev[0].output, 0.95, 0.005);
    NEAR_MIB(p.dev[1].compute, 666.27, 666.27 * 0.05);
    NEAR_MIB(p.dev[0].compute, 132.27, 132.27 * 0.05);
    assert_int_equal(p.dev[1].layers, 40);
    assert_true(p.dev[1].output_layer);
    assert_int_equal(p.verdict, PLAN_FITS);
    assert_false(p.pp);
    assert_int_equal(p.fit.status, PLAN_FIT_UNCHANGED); /* 58 GiB to spare */
}

static void t_placement(void **s)
{
    (void)s;
    plan_opts_t o;
    plan_gpu_t gpus[2] = {{"CUDA0", 24000}, {"CUDA1", 24000}};
    plan_t p;
    /* -ngl 1: only the output layer on the GPU */
    opts(&o, "-ngl 1 -c 4096");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[1].layers, 0);
    assert_true(p.dev[1].output_layer);
    assert_int_equal(p.dev[0].layers, 40);
    /* -ngl 11: output + the last 10 layers */
    opts(&o, "-ngl 11 -c 4096");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[1].layers, 10);
    assert_int_equal(p.dev[0].layers, 30);
    /* -ts 3,1 over 41 offloaded (40 + output): upper_bound of i/41 in {0.75, 1} */
    opts(&o, "-ngl 999 -c 4096 -ts 3,1");
    plan_predict(m35, &o, gpus, 2, -1, 0, &p);
    assert_int_equal(p.dev[1].layers, 31); /* i/41 < 0.75 for i = 0..30 */
    assert_int_equal(p.dev[2].layers, 9);
    assert_true(p.dev[2].output_layer);
    assert_true(p.pp);
    /* -ncmoe 20: experts of layers 0..19 on the host */
    uint64_t exp20 = 0, exp_all = 0, exp1019 = 0;
    for (uint32_t i = 0; i < 40; i++) {
        exp_all += m35->layers[i].exp_bytes;
        if (i < 20)
            exp20 += m35->layers[i].exp_bytes;
        if (i >= 10 && i < 20)
            exp1019 += m35->layers[i].exp_bytes;
    }
    opts(&o, "-ngl 999 -c 32768 -np 1 -fa on -ncmoe 20");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[0].weights, m35->bytes_tok_embd + exp20);
    assert_false(p.pp);
    opts(&o, "-ngl 999 -c 32768 --cpu-moe");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[0].weights, m35->bytes_tok_embd + exp_all);
    /* -ot: llama-server's regexes, \d included; first match wins */
    opts(&o, "-ngl 999 -c 32768 -ot blk\\.1\\d\\.ffn_.*_exps=CPU");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[0].weights, m35->bytes_tok_embd + exp1019);
    opts(&o, "-ngl 999 -c 32768 -ot blk\\.(1[0-9])\\.ffn_down_exps=CUDA0,blk\\.1[0-9]\\.ffn_.*=CPU");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    uint64_t gate_up_other = 0;
    for (uint32_t i = 10; i < 20; i++)
        gate_up_other += m35->layers[i].ffn_gate_bytes + m35->layers[i].ffn_up_bytes +
                         (m35->layers[i].ffn_down_bytes - m35->layers[i].exp_down_bytes);
    assert_int_equal(p.dev[0].weights, m35->bytes_tok_embd + gate_up_other);
    /* --no-kv-offload: KV and RS on the host */
    opts(&o, "-ngl 999 -c 32768 -nkvo");
    plan_predict(m35, &o, gpus, 1, -1, 0, &p);
    assert_int_equal(p.dev[1].kv, 0);
    assert_true(p.dev[0].kv > 0);
    /* no GPU: everything on the host */
    opts(&o, "-c 4096");
    plan_predict(m35, &o, NULL, 0, -1, 0, &p);
    assert_int_equal(p.dev[0].layers, 40);
    assert_int_equal(p.dev[0].weights, m35->weight_bytes);
    assert_int_equal(p.fit.status, PLAN_FIT_OFF);
}

/* The KQ mask: one stream per slot unless the cache is unified (-np left
 * at auto, or -kvu). */
static void t_kv_unified(void **s)
{
    (void)s;
    plan_opts_t o;
    plan_gpu_t gpu = {"CUDA0", 81079};
    plan_t a, b, c;
    opts(&o, "-ngl 999 -c 32768");
    assert_true(o.kv_unified);
    plan_predict(m35, &o, &gpu, 1, -1, 0, &a);
    opts(&o, "-ngl 999 -c 32768 -np 4");
    assert_false(o.kv_unified);
    plan_predict(m35, &o, &gpu, 1, -1, 0, &b);
    opts(&o, "-ngl 999 -c 32768 -np 4 -kvu");
    plan_predict(m35, &o, &gpu, 1, -1, 0, &c);
    /* 32768 × 512 f16 vs 4 streams of 8192 */
    NEAR_MIB(a.dev[1].compute - b.dev[1].compute, 24.0, 0.01);
    assert_int_equal(a.dev[1].compute, c.dev[1].compute);
    assert_int_equal(a.dev[1].kv, b.dev[1].kv);
}

/* --fit, step by step, where the fixtures do not reach. */
static void t_fit_rules(void **s)
{
    (void)s;
    plan_opts_t o;
    plan_gpu_t gpu = {"CUDA0", 22514 + PLAN_CUDA_CTX_MIB};
    plan_fit_t f;
    /* -c given: the context stays, and -ngl stops it before placement */
    opts(&o, "-c 131072 -ngl 999");
    plan_fit(m35, &o, &gpu, 1, &f);
    assert_int_equal(f.status, PLAN_FIT_ABORTED);
    assert_string_equal(f.reason, "n_gpu_layers already set by user");
    assert_int_equal(f.n_ctx, 131072);
    /* -ngl auto is the default: fit may place */
    opts(&o, "-c 131072 -ngl auto");
    plan_fit(m35, &o, &gpu, 1, &f);
    assert_int_equal(f.status, PLAN_FIT_PLACED);
    assert_false(f.ctx_cut);
    assert_true(f.n_part[0] > 0 && f.n_part[0] < 40);
    assert_non_null(strstr(f.args, "-ngl 41"));
    /* -c 0 asks for the full context: not cut, experts moved instead */
    opts(&o, "-c 0");
    plan_fit(m35, &o, &gpu, 1, &f);
    assert_int_equal(f.status, PLAN_FIT_PLACED);
    assert_int_equal(f.n_ctx, 262144);
    /* -ncmoe is a tensor override: abort, after the context cut */
    opts(&o, "-ncmoe 4");
    gpu.free_mib = 12274 + PLAN_CUDA_CTX_MIB;
    plan_fit(m35, &o, &gpu, 1, &f);
    assert_int_equal(f.status, PLAN_FIT_ABORTED);
    assert_string_equal(f.reason, "model_params::tensor_buft_overrides already set by user");
    assert_true(f.ctx_cut);
    assert_int_equal(f.n_ctx, 4096); /* cut to -fitc and still short */
    /* -fitc raises the floor, -fitt the margin */
    opts(&o, "-fitc 8192 -fitt 2048");
    gpu.free_mib = 22514 + PLAN_CUDA_CTX_MIB;
    plan_fit(m35, &o, &gpu, 1, &f);
    plan_fit_t f2;
    opts(&o, "");
    plan_fit(m35, &o, &gpu, 1, &f2);
    assert_int_equal(f.status, PLAN_FIT_CTX);
    assert_true(f.n_ctx < f2.n_ctx && f.n_ctx >= 8192);
    /* -fit off: nothing replayed; unknown free memory: not either */
    opts(&o, "-fit off");
    plan_fit(m35, &o, &gpu, 1, &f);
    assert_int_equal(f.status, PLAN_FIT_OFF);
    opts(&o, "");
    gpu.free_mib = -1;
    plan_fit(m35, &o, &gpu, 1, &f);
    assert_int_equal(f.status, PLAN_FIT_UNKNOWN);
    /* a role with no args on a 24 GB card is predicted as it loads, not as
     * 256K x 4 slots that do not fit */
    gpu.free_mib = 22514 + PLAN_CUDA_CTX_MIB;
    plan_t p;
    plan_predict(m35, &o, &gpu, 1, -1, 512u << 20, &p);
    assert_int_equal(p.fit.status, PLAN_FIT_CTX);
    assert_int_equal(p.verdict, PLAN_FITS);
    assert_int_equal(p.n_ctx, p.fit.n_ctx);
    /* what fit loads, given back as explicit args, is the same prediction */
    gpu.free_mib = 12274 + PLAN_CUDA_CTX_MIB;
    opts(&o, "-c 32768 -np 1");
    plan_predict(m100, &o, &gpu, 1, -1, 0, &p);
    assert_int_equal(p.fit.status, PLAN_FIT_PLACED);
    char line[400];
    snprintf(line, sizeof line, "-c 32768 -np 1 -fit off %s", p.fit.args);
    for (char *q = line; *q; q++)
        if (*q == '\'')
            *q = ' '; /* the shell quotes */
    plan_t back;
    opts(&o, line);
    plan_predict(m100, &o, &gpu, 1, -1, 0, &back);
    assert_int_equal(back.dev[1].weights, p.dev[1].weights);
    assert_int_equal(back.dev[1].compute, p.dev[1].compute);
    assert_int_equal(back.dev[0].weights, p.dev[0].weights);
    gpu.free_mib = 22514 + PLAN_CUDA_CTX_MIB;
    opts(&o, "");
    /* two GPUs: fit splits the layers itself (tensor split) */
    plan_gpu_t two[2] = {{"CUDA0", 12000}, {"CUDA1", 12000}};
    opts(&o, "-c 32768");
    plan_predict(m35, &o, two, 2, -1, 0, &p);
    assert_true(p.fit.status == PLAN_FIT_PLACED || p.fit.status == PLAN_FIT_UNCHANGED);
    if (p.fit.status == PLAN_FIT_PLACED) {
        assert_int_equal(p.fit.n_layer[0] + p.fit.n_layer[1], 41);
        assert_true(p.dev[1].total + (1024u << 20) <= (uint64_t)(12000 - PLAN_CUDA_CTX_MIB) * (1u << 20));
        assert_true(p.dev[2].total + (1024u << 20) <= (uint64_t)(12000 - PLAN_CUDA_CTX_MIB) * (1u << 20));
    }
}

/* The tuner's bounds: the smallest -ncmoe and the largest -ngl that keep a
 * margin free, consistent with plan_predict at the boundary and with the
 * H200 12,800 MiB run (the tuner's winner ran with -ncmoe 16, and the new
 * prediction leaves 15 short of the CUDA context). */
static void t_tuner_bounds(void **s)
{
    (void)s;
    load_all();
    const meas_t *w = NULL;
    for (int i = 0; i < n_meas; i++)
        if (strstr(meas[i].src, "space2 winner"))
            w = &meas[i];
    assert_non_null(w);
    plan_opts_t o;
    opts(&o, w->args);
    plan_gpu_t gpu = {"CUDA0", w->free_mib};
    uint64_t margin = (uint64_t)PLAN_CUDA_CTX_MIB << 20;
    int64_t nc = plan_min_ncmoe(m35, &o, &gpu, 1, margin);
    const char *q = strstr(w->args, "--n-cpu-moe ");
    assert_non_null(q);
    assert_int_equal(nc, atol(q + 12));
    plan_t p;
    o.ncmoe = nc;
    o.fit = false;
    plan_predict(m35, &o, &gpu, 1, -1, margin, &p);
    assert_int_equal(p.verdict, PLAN_FITS);
    o.ncmoe = nc - 1;
    plan_predict(m35, &o, &gpu, 1, -1, margin, &p);
    assert_int_equal(p.verdict, PLAN_NO_FIT);
    /* nothing needed on a big card; nothing possible on a tiny one */
    gpu.free_mib = 81079;
    assert_int_equal(plan_min_ncmoe(m35, &o, &gpu, 1, margin), 0);
    gpu.free_mib = 1000;
    assert_int_equal(plan_min_ncmoe(m35, &o, &gpu, 1, margin), -1);
    gpu.free_mib = -1;
    assert_int_equal(plan_min_ncmoe(m35, &o, &gpu, 1, margin), -1);
    /* -ngl */
    gpu.free_mib = 12800;
    opts(&o, "-c 32768 -np 1 -fa on -fit off");
    int64_t ngl = plan_max_ngl(m35, &o, &gpu, 1, margin);
    assert_true(ngl > 0 && ngl < 41);
    o.ngl = ngl;
    plan_predict(m35, &o, &gpu, 1, -1, margin, &p);
    assert_int_equal(p.verdict, PLAN_FITS);
    for (int64_t k = ngl + 1; k <= 41; k++) {
        o.ngl = k;
        plan_predict(m35, &o, &gpu, 1, -1, margin, &p);
        assert_int_equal(p.verdict, PLAN_NO_FIT);
    }
    gpu.free_mib = 81079;
    assert_int_equal(plan_max_ngl(m35, &o, &gpu, 1, margin), 41);
}

/* b20-seedargs-fitoff-oom.log: 20.5 GiB free → the KV cache does not fit. */
static void t_verdicts(void **s)
{
    (void)s;
    plan_opts_t o;
    plan_gpu_t gpu = {"CUDA0", 20500};
    plan_t p;
    opts(&o, "-ngl 999 -c 262144 -np 1 -fa on -ctk q4_0 -ctv q4_0 -ub 256 -b 512");
    plan_predict(m35, &o, &gpu, 1, 100000, 512u << 20, &p);
    assert_int_equal(p.verdict, PLAN_NO_FIT);
    assert_int_equal(p.over_dev, 1);
    assert_string_equal(p.over_what, "weights");
    assert_true(p.n_suggest >= 2);
    bool ctx = false, moe = false;
    for (int i = 0; i < p.n_suggest; i++) {
        ctx |= strncmp(p.suggest[i], "-c ", 3) == 0;
        moe |= strncmp(p.suggest[i], "-ncmoe ", 7) == 0;
    }
    assert_true(ctx && moe);
    /* a 12 GB card: only expert offload or fewer layers can help */
    gpu.free_mib = 12020;
    opts(&o, "-ngl 999 -c 32768 -np 1 -fa on");
    plan_predict(m35, &o, &gpu, 1, 100000, 512u << 20, &p);
    assert_int_equal(p.verdict, PLAN_NO_FIT);
    moe = false;
    for (int i = 0; i < p.n_suggest; i++)
        moe |= strncmp(p.suggest[i], "-ncmoe ", 7) == 0;
    assert_true(moe);
    /* and the suggestion really fits */
    for (int i = 0; i < p.n_suggest; i++)
        if (!strncmp(p.suggest[i], "-ncmoe ", 7)) {
            plan_t q;
            plan_opts_t o2 = o;
            o2.ncmoe = atoi(p.suggest[i] + 7);
            plan_predict(m35, &o2, &gpu, 1, 100000, 512u << 20, &q);
            assert_int_equal(q.verdict, PLAN_FITS);
            o2.ncmoe--;
            plan_predict(m35, &o2, &gpu, 1, 100000, 512u << 20, &q);
            assert_int_equal(q.verdict, PLAN_NO_FIT); /* the cheapest one */
        }
}

static void t_bad_args(void **s)
{
    (void)s;
    plan_opts_t o;
    char err[256];
    char *a1[] = {"-ctk", "q9"};
    assert_int_not_equal(plan_opts_from_args(a1, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "args[1]"));
    char *a2[] = {"-ts", "3,x"};
    assert_int_not_equal(plan_opts_from_args(a2, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "-ts"));
    char *a3[] = {"--port", "9"};
    assert_int_not_equal(plan_opts_from_args(a3, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "--port"));
    char *a4[] = {"-ot", "blk\\.1\\.ffn_.*"};
    assert_int_not_equal(plan_opts_from_args(a4, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "PATTERN=BUFFER"));
    char *a5[] = {"-ot", "exps=VRAM"};
    assert_int_not_equal(plan_opts_from_args(a5, 2, &o, err, sizeof err), 0);
    assert_non_null(strstr(err, "VRAM"));
    char *a6[] = {"-fitt", "lots"};
    assert_int_not_equal(plan_opts_from_args(a6, 2, &o, err, sizeof err), 0);
    char *a7[] = {"-ngl", "all", "-fitt", "512,256", "-fitc", "16384", "-fit", "off"};
    assert_int_equal(plan_opts_from_args(a7, 8, &o, err, sizeof err), 0);
    assert_true(o.ngl_set);
    assert_false(o.fit);
    assert_int_equal(o.fit_target_mib[0], 512);
    assert_int_equal(o.fit_target_mib[1], 256);
    assert_int_equal(o.fit_ctx_min, 16384);
}

/* ---- the companions ---- */

static const char *tmp_dir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/variet-plan-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    return dir;
}

/* A preset (possibly with other encoder dims), written sparse, its facts. */
static mi_t *preset_mi(const synth_preset_t *p, const char *name)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/%s.gguf", tmp_dir(), name);
    synth_opts_t so = {.wtype = -1, .sparse = true};
    assert_int_equal(synth_write(p, &so, path, err, sizeof err), 0);
    gguf_t *g = NULL;
    mi_t *m = NULL;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    assert_int_equal(mi_from_gguf(g, &m, err, sizeof err), 0);
    gguf_close(&g);
    unlink(path);
    return m;
}

/* plan_mmproj against llama-server's own reserve for 35 projector shapes
 * (tests/fixtures/llama-server/mmproj-reserve-b11669.txt): within 7% or
 * 6 MiB each, the weights to the byte of the tensor table. */
static void t_mmproj_reserve(void **s)
{
    (void)s;
    char *path = xasprintf("%s/llama-server/mmproj-reserve-b11669.txt", VARIET_FIXTURES), *text = NULL, err[256];
    size_t len;
    assert_int_equal(file_read_all(path, 1u << 20, &text, &len, err, sizeof err), 0);
    int rows = 0, bad = 0;
    double worst = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char base[64], fa[8];
        unsigned e, ff, h, blocks, itmax;
        double real;
        assert_int_equal(sscanf(line, "%63s %u %u %u %u %7s %u %lf", base, &e, &ff, &h, &blocks, fa, &itmax, &real), 8);
        synth_preset_t p = *synth_find(base);
        p.n_embd = e;
        p.n_ff = ff;
        p.n_head = h;
        p.n_layer = blocks;
        mi_t *m = preset_mi(&p, "proj");
        plan_opts_t o;
        plan_opts_default(&o);
        o.flash_attn = !strcmp(fa, "on");
        o.image_max_tokens = itmax;
        plan_mmproj_t mp;
        plan_mmproj(m, &o, &mp);
        assert_int_equal(mp.weights, m->weight_bytes);
        double pred = (double)mp.compute / 1048576.0, err_rel = (pred - real) / real;
        if (fabs(err_rel) > fabs(worst))
            worst = err_rel;
        if (fabs(pred - real) > 6.0 && fabs(err_rel) > 0.07) {
            bad++;
            fprintf(stderr, "%s", line);
            fprintf(stderr, ": predicted %.2f MiB (%+.1f%%)\n", pred, err_rel * 100);
        }
        rows++;
        mi_free(&m);
    }
    printf("projector compute: %d shapes, %d outside 7%% / 6 MiB, worst %+.1f%%\n", rows, bad, worst * 100);
    assert_true(rows >= 60);
    assert_int_equal(bad, 0);
    free(text);
    free(path);
}

/* The draft model per device: where -devd, -ngld and the split put it, its
 * context and KV types, and the totals it adds. */
static void t_draft_devices(void **s)
{
    (void)s;
    mi_t *tgt = preset_mi(synth_find("tiny-qwen35moe"), "t"), *dm = preset_mi(synth_find("tiny-draft"), "d");
    plan_gpu_t gpus[2] = {{"CUDA0", 8000}, {"CUDA1", 8000}};
    char err[256];
    struct {
        const char *args[12];
        uint64_t on_host_min; /* bytes of the draft on the host at least */
        int gpus_with;        /* GPUs holding draft bytes */
        uint64_t n_ctx;
    } cases[] = {
        {{"-c", "4096", "-np", "1", "-md", "d.gguf"}, 0, 2, 4096},
        {{"-c", "4096", "-np", "1", "-md", "d.gguf", "-devd", "CUDA1"}, 0, 1, 4096},
        {{"-c", "4096", "-np", "1", "-md", "d.gguf", "-devd", "none"}, 1, 0, 4096},
        /* no draft layer on a GPU, but the first GPU's compute buffer still
         * takes the copies of its host weights for prompt batches */
        {{"-c", "4096", "-np", "1", "-md", "d.gguf", "-ngld", "0"}, 0, 0, 4096},
        {{"-np", "1", "-md", "d.gguf", "-fit", "off"}, 0, 2, 32768}, /* no -c: the draft's own trained context */
        {{"-c", "4096", "-np", "1", "-md", "d.gguf", "-cd", "1024"}, 0, 2, 1024},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        while (n < 12 && cases[i].args[n])
            n++;
        plan_opts_t o;
        assert_int_equal(plan_opts_from_args((char *const *)cases[i].args, n, &o, err, sizeof err), 0);
        assert_true(o.draft);
        plan_t without, with, dp;
        plan_predict(tgt, &o, gpus, 2, -1, 0, &without);
        o.draft_mi = dm;
        plan_predict(tgt, &o, gpus, 2, -1, 0, &with);
        plan_draft(&o, gpus, 2, &dp);
        assert_int_equal(dp.n_ctx, cases[i].n_ctx);
        uint64_t sum = 0;
        int holding = 0;
        for (int d = 0; d < 3; d++) {
            assert_int_equal(with.dev[d].draft, dp.dev[d].total);
            assert_int_equal(with.dev[d].total, without.dev[d].total + with.dev[d].draft);
            sum += dp.dev[d].total;
            holding += d > 0 && dp.dev[d].weights > 0;
        }
        assert_int_equal(holding, cases[i].gpus_with);
        if (cases[i].on_host_min)
            assert_int_equal(dp.dev[0].total, sum); /* everything on the host */
        /* the draft's KV at its context, f16 */
        assert_int_equal(dp.dev[0].kv + dp.dev[1].kv + dp.dev[2].kv, mi_kv_bytes(dm, cases[i].n_ctx, GGUF_TT_F16, GGUF_TT_F16));
    }
    /* its own KV types */
    char *q[] = {"-c", "8192", "-np", "1", "-md", "d.gguf", "-ctkd", "q8_0", "-ctvd", "q4_0"};
    plan_opts_t o;
    assert_int_equal(plan_opts_from_args(q, 10, &o, err, sizeof err), 0);
    o.draft_mi = dm;
    plan_t dp;
    plan_draft(&o, NULL, 0, &dp);
    assert_int_equal(dp.dev[0].kv, mi_kv_bytes(dm, 8192, GGUF_TT_Q8_0, GGUF_TT_Q4_0));
    /* fit reserves the draft's memory before it fits the model, and the
     * draft keeps the context the args gave (no -c: its own trained one)
     * however far fit cuts the model's: the full-size pair on a 24 GB card */
    mi_t *big = preset_mi(synth_find("qwen35-35b-a3b"), "big"), *bd = preset_mi(synth_find("qwen35-0.8b-draft"), "bd");
    plan_gpu_t card[1] = {{"CUDA0", 24000}};
    char *fa[] = {"-np", "1", "-md", "bd.gguf"};
    assert_int_equal(plan_opts_from_args(fa, 4, &o, err, sizeof err), 0);
    plan_t alone, paired;
    plan_predict(big, &o, card, 1, -1, 0, &alone);
    o.draft_mi = bd;
    plan_predict(big, &o, card, 1, -1, 0, &paired);
    plan_draft(&o, card, 1, &dp);
    printf("fit with the full-size draft: context %llu (alone %llu), the draft %.0f MiB on the card at context %llu\n",
           (unsigned long long)paired.n_ctx, (unsigned long long)alone.n_ctx, paired.dev[1].draft / 1048576.0,
           (unsigned long long)dp.n_ctx);
    assert_int_equal(dp.n_ctx, 262144);
    assert_int_equal(paired.dev[1].draft, dp.dev[1].total);
    assert_true(paired.dev[1].draft > 4000ull << 20); /* 3 GiB of it the draft's KV at 262144 */
    assert_true(paired.n_ctx < alone.n_ctx);           /* fit made room for it */
    assert_true(paired.fit.status == PLAN_FIT_PLACED || paired.fit.status == PLAN_FIT_CTX);
    /* within fit's target on the card, as llama-server's own reservation makes it */
    assert_true((double)paired.dev[1].total / 1048576.0 < 24000 - PLAN_CUDA_CTX_MIB);
    /* the projector: on the first GPU, or the host with --no-mmproj-offload;
     * fit reserves it on the GPU it uses, not when it stays on the host */
    mi_t *bp = preset_mi(synth_find("qwen35-35b-a3b-mmproj"), "bp");
    char *pa[] = {"-np", "1", "--mmproj", "bp.gguf"}, *ph[] = {"-np", "1", "--mmproj", "bp.gguf", "--no-mmproj-offload"};
    plan_t on_gpu, on_host;
    assert_int_equal(plan_opts_from_args(pa, 4, &o, err, sizeof err), 0);
    o.mmproj_mi = bp;
    plan_predict(big, &o, card, 1, -1, 0, &on_gpu);
    assert_int_equal(plan_opts_from_args(ph, 5, &o, err, sizeof err), 0);
    o.mmproj_mi = bp;
    plan_predict(big, &o, card, 1, -1, 0, &on_host);
    plan_mmproj_t mp;
    plan_mmproj(bp, &o, &mp);
    printf("projector on the card: context %llu, on the host: %llu (alone %llu); %.0f + %.0f MiB\n",
           (unsigned long long)on_gpu.n_ctx, (unsigned long long)on_host.n_ctx, (unsigned long long)alone.n_ctx,
           mp.weights / 1048576.0, mp.compute / 1048576.0);
    assert_int_equal(on_gpu.dev[1].mmproj, mp.weights + mp.compute);
    assert_int_equal(on_gpu.dev[0].mmproj, 0);
    assert_int_equal(on_host.dev[0].mmproj, mp.weights + mp.compute);
    assert_int_equal(on_host.dev[1].mmproj, 0);
    assert_int_equal(on_host.n_ctx, alone.n_ctx); /* nothing of it on the card: fit's context unchanged */
    /* -mmdev picks the GPU (none: the host), else -dev's first, else the first */
    static const struct {
        const char *args[4];
        int dev;
    } where[] = {{{"-mmdev", "CUDA1"}, 2}, {{"-mmdev", "none"}, 0}, {{"-dev", "CUDA1"}, 2},
                 {{"-dev", "CUDA0,CUDA1"}, 1}, {{"--no-mmproj-offload", "-mmdev", "CUDA1"}, 0}, {{NULL}, 1}};
    plan_gpu_t two[2] = {{"CUDA0", 24000}, {"CUDA1", 24000}};
    for (size_t k = 0; k < sizeof where / sizeof where[0]; k++) {
        size_t na = 0;
        while (na < 4 && where[k].args[na])
            na++;
        assert_int_equal(plan_opts_from_args((char *const *)where[k].args, na, &o, err, sizeof err), 0);
        o.mmproj_mi = bp;
        assert_int_equal(plan_mmproj_device(&o, 2), where[k].dev);
        plan_t t;
        plan_predict(big, &o, two, 2, -1, 0, &t);
        assert_int_equal(t.dev[where[k].dev].mmproj, mp.weights + mp.compute);
    }
    assert_true(on_gpu.n_ctx < alone.n_ctx);
    mi_free(&bp);
    mi_free(&big);
    mi_free(&bd);
    char *bad[] = {"-md", "d.gguf", "-devd", "Vulkan0"};
    assert_int_equal(plan_opts_from_args(bad, 4, &o, err, sizeof err), -EINVAL);
    assert_string_equal(err, "-devd: 'Vulkan0' is not a device the planner knows (CUDA0, CUDA1, ... or none)");
    mi_free(&tgt);
    mi_free(&dm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_h100_variant),
        cmocka_unit_test(t_mmproj_reserve),
        cmocka_unit_test(t_draft_devices),
        cmocka_unit_test(t_gpu_fixtures),
        cmocka_unit_test(t_fixture_full_gpu),
        cmocka_unit_test(t_placement),
        cmocka_unit_test(t_kv_unified),
        cmocka_unit_test(t_fit_rules),
        cmocka_unit_test(t_tuner_bounds),
        cmocka_unit_test(t_verdicts),
        cmocka_unit_test(t_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
