/*
 * plan.c — memory prediction per device (see plan.h for the rules and
 * which parts are exact, fitted or estimated).
 *
 * Compute buffers (llama.cpp, ggml-alloc's peak per graph; ub = ubatch):
 *   mask      = n_kv × ub × 2 B (flash attention) or 4 B (without); n_kv is
 *               n_ctx with a unified cache, n_ctx / n_seq per stream without
 *   act       = ub × 4 B × (2·n_embd + 3.7·max_width)
 *               + ub × 2.2 B × (n_embd + max_width) with quantized weights on the CPU
 *   no FA     + n_ctx × ub × n_head × 4 B (the KQ matrix)
 *   device holding layers:   mask + act
 *   GPU, MoE, flash attention: at least mask + 4 B × ub ×
 *     (n_embd·n_used + 3·n_ff_exp·n_used + 3·n_embd), the expert block's
 *     outputs (exact for qwen35moe, -5% for qwen3moe on the dry runs)
 *   GPU, flash attention, quantized cache: at least one layer's K and V as
 *     f16 + mask + 4 B × ub × (n_embd + 3·max_width), the attention's
 *     activations beside them: the larger, not the sum (within 0.3 MiB on
 *     every H100 and H200 full-offload load, 47,872 to 262,144 tokens,
 *     ub 256 to 4096)
 *   host when all offloaded: mask + 8 B × n_embd × ub
 * fitted on the H100 qwen35moe logs and CPU runs of the tiny presets
 * (tests/test_e2e_plan.c keeps checking it).
 *
 * Host-resident weights on a GPU machine (ggml_backend_sched): an op whose
 * weight is in host memory runs on the first GPU when its batch is at least
 * 32 rows (CUDA's offload_op), so every prompt batch copies the weight into
 * that GPU's compute buffer, each such op in its own split; the copy is
 * allocated at the split's start and freed after its mat-mul. ggml-alloc is
 * best fit over the free blocks below the top, else the top grows, so the
 * peak depends on what lies where when the big copies come. With E the
 * largest expert tensor on the host, X = 4·ub·n_embd, G = 4·ub·n_ff_exp·
 * n_used (one expert mat-mul's output), D = 4·ub·n_embd·n_used (the down
 * projection's), R = 4·ub·n_expert, and the first/last attention layer a/z:
 *   host-expert layers on both sides of a (-ncmoe, --cpu-moe): the KQ mask
 *     copy is made after the first copies, between the hole they leave and
 *     the top, and the swiglu output lands in that hole, so the next down
 *     projection's copy goes on top:           mask + 2E + 2X + G + 2R
 *   all of them before a:                       mask + E + D + 2X + G + 2R
 *   all of them from a on (fit's placement): one copy above the activations,
 *     E + D + 2G + X, + mask while an attention layer follows (else - 0.75X);
 *     fit's first partial layer with only the down projection on the host
 *     adds 1.625 G, with gate and down 0.5625 G
 *   with flash attention, when the expert block's outputs (above) outgrow
 *     these, they + E (a host expert's copy beside them: -ub 4096)
 *   whole layers on the host (-ngl < N+1): E + D + 2X + G + 2R, + one
 *     layer's K and V (f16) and the mask when an attention layer is on the
 *     host (estimate, within ~10% of the dry runs)
 * The GPU's buffer is the larger of this and its own layers' need. Checked
 * on the CUDA fixtures (b12-ncmoe20: 469.00 MiB, b12-ncmoe24-ub2048: 616.00,
 * the H200 -ncmoe 16 trials: 337.00 and 312.75, fit's projections in
 * b12-defaults / b12-fit-c32k-np1) to the hundredth of a MiB.
 */
#include "plan.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "gguf.h"
#include "util.h"

#define MIB (1024ull * 1024ull)

/* FFN tensor classes of a layer, as --fit's patterns and -ot see them */
enum { C_EXP_GATE, C_EXP_UP, C_EXP_DOWN, C_OTH_GATE, C_OTH_UP, C_OTH_DOWN, C_N };
#define CB(c) (1u << (c))
#define C_EXPS (CB(C_EXP_GATE) | CB(C_EXP_UP) | CB(C_EXP_DOWN))
#define C_ALL ((1u << C_N) - 1)

static uint64_t class_bytes(const mi_layer_t *L, int c)
{
    switch (c) {
    case C_EXP_GATE: return L->exp_gate_bytes;
    case C_EXP_UP: return L->exp_up_bytes;
    case C_EXP_DOWN: return L->exp_down_bytes;
    case C_OTH_GATE: return L->ffn_gate_bytes - L->exp_gate_bytes;
    case C_OTH_UP: return L->ffn_up_bytes - L->exp_up_bytes;
    case C_OTH_DOWN: return L->ffn_down_bytes - L->exp_down_bytes;
    }
    return 0;
}

/* Per-layer override: FFN classes `cls` live on device `dev` (0 host). */
typedef struct {
    uint8_t cls;
    int8_t dev;
} ovr_t;

void plan_opts_default(plan_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->ngl = -1;
    o->n_seq = 4;
    o->kv_unified = true; /* -np auto */
    o->n_ubatch = 512;
    o->n_batch = 2048;
    o->type_k = o->type_v = GGUF_TT_F16;
    o->flash_attn = -1;
    o->mmproj_offload = true;
    o->fit = true;
    o->draft_ngl = -1;
    o->mmproj_dev = -1;
    o->draft_type_k = o->draft_type_v = GGUF_TT_F16;
    o->fit_ctx_min = 4096;
    for (int g = 0; g < PLAN_MAX_GPU; g++)
        o->fit_target_mib[g] = 1024;
}

static int cache_type(const char *v, uint32_t *out)
{
    int t = gguf_type_from_name(v);
    if (t < 0)
        return -1;
    *out = (uint32_t)t;
    return 0;
}

/* Value of an option args.h does not know (any of the spellings), last one. */
static const char *raw_opt(char *const *argv, size_t n, const char *const *names)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++)
        for (const char *const *nm = names; *nm; nm++) {
            size_t l = strlen(*nm);
            if (!strcmp(argv[i], *nm) && i + 1 < n)
                v = argv[i + 1];
            else if (!strncmp(argv[i], *nm, l) && argv[i][l] == '=')
                v = argv[i] + l + 1;
        }
    return v;
}

static bool raw_flag(char *const *argv, size_t n, const char *const *names)
{
    bool on = false;
    for (size_t i = 0; i < n; i++)
        for (const char *const *nm = names; *nm; nm++)
            if (!strcmp(argv[i], *nm))
                on = true;
    return on;
}

/* "CUDA0,CUDA1" → bits 0 and 1; "none" → *none. Names of other backends
 * (Vulkan0, ...) are not GPUs the planner knows: -EINVAL. */
static int dev_list(const char *opt, const char *v, uint32_t *mask, bool *none, char *err, size_t errlen)
{
    *mask = 0;
    if (none)
        *none = false;
    if (!strcmp(v, "none")) {
        if (none)
            *none = true;
        return 0;
    }
    char *copy = xstrdup(v), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int64_t g;
        if (strncmp(t, "CUDA", 4) || !parse_i64(t + 4, 0, PLAN_MAX_GPU - 1, &g)) {
            snprintf(err, errlen, "%s: '%s' is not a device the planner knows (CUDA0, CUDA1, ... or none)", opt, t);
            rc = -EINVAL;
            break;
        }
        *mask |= 1u << g;
    }
    free(copy);
    return rc;
}

/* "-ot A=CPU,B=CUDA0" (several -ot accumulate). */
static int parse_ot(char *const *argv, size_t n, plan_opts_t *o, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = NULL;
        if ((!strcmp(argv[i], "-ot") || !strcmp(argv[i], "--override-tensor")) && i + 1 < n)
            v = argv[++i];
        else if (!strncmp(argv[i], "--override-tensor=", 18))
            v = argv[i] + 18;
        if (!v)
            continue;
        char *copy = xstrdup(v), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *eq = strrchr(t, '=');
            if (!eq || eq == t) {
                snprintf(err, errlen, "-ot: '%s' is not PATTERN=BUFFER", t);
                free(copy);
                return -EINVAL;
            }
            *eq = 0;
            const char *b = eq + 1;
            int dev;
            if (!strcmp(b, "CPU") || !strncmp(b, "CPU_", 4))
                dev = 0;
            else if (!strncmp(b, "CUDA", 4) && b[4] >= '0' && b[4] <= '9' && atoi(b + 4) < PLAN_MAX_GPU)
                dev = 1 + atoi(b + 4);
            else {
                snprintf(err, errlen, "-ot: unknown buffer type '%s'", b);
                free(copy);
                return -EINVAL;
            }
            if (o->n_ot >= PLAN_MAX_OT || strlen(t) >= sizeof o->ot[0].pattern) {
                snprintf(err, errlen, "-ot: too many or too long patterns");
                free(copy);
                return -EINVAL;
            }
            snprintf(o->ot[o->n_ot].pattern, sizeof o->ot[0].pattern, "%s", t);
            o->ot[o->n_ot++].dev = dev;
        }
        free(copy);
    }
    return 0;
}

/* 1 + g for the lowest GPU g < n in mask (a plan_t.dev index), 0 none. */
static int first_gpu(uint32_t mask, int n)
{
    for (int g = 0; g < n && g < 32; g++)
        if (mask & (1u << g))
            return 1 + g;
    return 0;
}

int plan_opts_from_args(char *const *argv, size_t n, plan_opts_t *o, char *err, size_t errlen)
{
    plan_opts_default(o);
    char e[256];
    long bad = args_check(argv, n, e, sizeof e);
    if (bad >= 0) {
        snprintf(err, errlen, "args[%ld]: %s", bad, e);
        return -EINVAL;
    }
    long v;
    const char *s;
    if ((s = args_get(argv, n, ARG_NGL))) {
        if (!strcmp(s, "auto"))
            o->ngl = -1;
        else if (!strcmp(s, "all"))
            o->ngl = -1, o->ngl_set = true;
        else if (args_get_long(argv, n, ARG_NGL, &v))
            o->ngl = v < 0 ? -1 : v, o->ngl_set = v != -1;
    }
    if (args_get_long(argv, n, ARG_CTX_SIZE, &v)) {
        o->n_ctx = v > 0 ? (uint64_t)v : 0;
        o->ctx_full = v == 0;
    }
    if (args_get_long(argv, n, ARG_PARALLEL, &v) && v > 0) {
        o->n_seq = (uint32_t)v;
        o->kv_unified = false;
    }
    static const char *const kvu[] = {"-kvu", "--kv-unified", NULL}, *const nokvu[] = {"-no-kvu", "--no-kv-unified", NULL};
    if (raw_flag(argv, n, kvu))
        o->kv_unified = true;
    if (raw_flag(argv, n, nokvu))
        o->kv_unified = false;
    if (args_get_long(argv, n, ARG_UBATCH, &v) && v > 0)
        o->n_ubatch = (uint32_t)v;
    if (args_get_long(argv, n, ARG_BATCH, &v) && v > 0)
        o->n_batch = (uint32_t)v;
    if (o->n_ubatch > o->n_batch)
        o->n_ubatch = o->n_batch; /* llama.cpp: ubatch <= batch */
    if (args_get_long(argv, n, ARG_N_CPU_MOE, &v))
        o->ncmoe = v > 0 ? v : 0;
    if (args_find(argv, n, ARG_CPU_MOE) >= 0)
        o->cpu_moe = true;
    if (args_get_long(argv, n, ARG_MAIN_GPU, &v) && v >= 0)
        o->main_gpu = (int)v;
    if ((s = args_get(argv, n, ARG_SPLIT_MODE))) {
        o->split_none = !strcmp(s, "none");
        o->split_row = !strcmp(s, "row");
    }
    if ((s = args_get(argv, n, ARG_CACHE_K)) && cache_type(s, &o->type_k)) {
        snprintf(err, errlen, "-ctk: '%s' is not a cache type", s);
        return -EINVAL;
    }
    if ((s = args_get(argv, n, ARG_CACHE_V)) && cache_type(s, &o->type_v)) {
        snprintf(err, errlen, "-ctv: '%s' is not a cache type", s);
        return -EINVAL;
    }
    if ((s = args_get(argv, n, ARG_FLASH_ATTN)))
        o->flash_attn = !strcmp(s, "on") ? 1 : !strcmp(s, "off") ? 0 : -1;
    if ((s = args_get(argv, n, ARG_FIT)))
        o->fit = !(!strcmp(s, "off") || !strcmp(s, "0") || !strcmp(s, "false"));
    if ((s = args_get(argv, n, ARG_TENSOR_SPLIT))) {
        /* "3,1" or "3/1" */
        char *copy = xstrdup(s), *p = copy;
        o->n_ts = 0;
        while (p && *p && o->n_ts < PLAN_MAX_GPU) {
            char *end = p + strcspn(p, ",/");
            char sep = *end;
            *end = 0;
            double d;
            if (!parse_f64(p, &d) || d < 0) {
                snprintf(err, errlen, "-ts: '%s' is not a non-negative number", p);
                free(copy);
                return -EINVAL;
            }
            o->ts[o->n_ts++] = d;
            p = sep ? end + 1 : NULL;
        }
        free(copy);
        bool any = false;
        for (int g = 0; g < o->n_ts; g++)
            any |= o->ts[g] > 0;
        if (!any)
            o->n_ts = 0; /* all zero: llama.cpp splits by free memory */
    }
    static const char *const fitc[] = {"-fitc", "--fit-ctx", NULL}, *const fitt[] = {"-fitt", "--fit-target", NULL};
    int64_t iv;
    if ((s = raw_opt(argv, n, fitc))) {
        if (!parse_i64(s, 0, UINT32_MAX, &iv)) {
            snprintf(err, errlen, "-fitc: '%s' is not a context size", s);
            return -EINVAL;
        }
        o->fit_ctx_min = (uint32_t)iv;
    }
    if ((s = raw_opt(argv, n, fitt))) {
        /* one value for every GPU, or one per GPU */
        char *copy = xstrdup(s), *save = NULL;
        int k = 0;
        for (char *t = strtok_r(copy, ",/", &save); t; t = strtok_r(NULL, ",/", &save), k++) {
            if (!parse_i64(t, 0, INT64_MAX / MIB, &iv) || k >= PLAN_MAX_GPU) {
                snprintf(err, errlen, "-fitt: '%s' is not a MiB value", t);
                free(copy);
                return -EINVAL;
            }
            o->fit_target_mib[k] = iv;
        }
        free(copy);
        if (k == 1)
            for (int g = 1; g < PLAN_MAX_GPU; g++)
                o->fit_target_mib[g] = o->fit_target_mib[0];
    }
    if (parse_ot(argv, n, o, err, errlen))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(argv[i], "-nkvo") || !strcmp(argv[i], "--no-kv-offload"))
            o->no_kv_offload = true;
    if (args_find(argv, n, ARG_NO_MMPROJ_OFFLOAD) >= 0)
        o->mmproj_offload = false;
    static const char *const imin[] = {"--image-min-tokens", NULL}, *const imax[] = {"--image-max-tokens", NULL};
    const char *const *lim[2] = {imin, imax};
    uint32_t *lim_out[2] = {&o->image_min_tokens, &o->image_max_tokens};
    for (int k = 0; k < 2; k++)
        if ((s = raw_opt(argv, n, lim[k]))) {
            if (!parse_i64(s, 0, UINT32_MAX, &iv)) {
                snprintf(err, errlen, "%s: '%s' is not a token count", lim[k][0], s);
                return -EINVAL;
            }
            *lim_out[k] = (uint32_t)iv;
        }

    /* the draft model's own settings */
    o->draft = args_get(argv, n, ARG_DRAFT_MODEL) != NULL;
    if ((s = args_get(argv, n, ARG_NGL_DRAFT))) {
        if (!strcmp(s, "auto") || !strcmp(s, "all"))
            o->draft_ngl = -1;
        else if (args_get_long(argv, n, ARG_NGL_DRAFT, &v))
            o->draft_ngl = v < 0 ? -1 : v;
    }
    if ((s = args_get(argv, n, ARG_CACHE_K_DRAFT)) && cache_type(s, &o->draft_type_k)) {
        snprintf(err, errlen, "-ctkd: '%s' is not a cache type", s);
        return -EINVAL;
    }
    if ((s = args_get(argv, n, ARG_CACHE_V_DRAFT)) && cache_type(s, &o->draft_type_v)) {
        snprintf(err, errlen, "-ctvd: '%s' is not a cache type", s);
        return -EINVAL;
    }
    if (args_get_long(argv, n, ARG_UBATCH_DRAFT, &v) && v > 0)
        o->draft_ubatch = (uint32_t)v;
    if (args_get_long(argv, n, ARG_CTX_DRAFT, &v) && v > 0)
        o->draft_ctx = (uint64_t)v;
    if (args_get_long(argv, n, ARG_N_CPU_MOE_DRAFT, &v))
        o->draft_ncmoe = v > 0 ? v : 0;
    if (args_find(argv, n, ARG_CPU_MOE_DRAFT) >= 0)
        o->draft_cpu_moe = true;
    if ((s = args_get(argv, n, ARG_DEVICE)) && strcmp(s, "none") &&
        dev_list("-dev", s, &o->dev_mask, NULL, err, errlen))
        return -EINVAL;
    if ((s = args_get(argv, n, ARG_DEVICE_DRAFT)) &&
        dev_list("-devd", s, &o->draft_dev_mask, &o->draft_dev_none, err, errlen))
        return -EINVAL;
    if ((s = args_get(argv, n, ARG_MMPROJ_DEVICE))) {
        uint32_t mask;
        bool none;
        if (dev_list("-mmdev", s, &mask, &none, err, errlen))
            return -EINVAL;
        o->mmproj_dev = none ? 0 : first_gpu(mask, PLAN_MAX_GPU);
    }
    return 0;
}

static uint64_t pad256(uint64_t v) { return (v + 255) / 256 * 256; }

static uint64_t ubatch(const plan_opts_t *o) { return o->n_ubatch ? o->n_ubatch : 512; }

/* KV cells one attention sees: one stream per sequence unless unified. */
static uint64_t kv_cells(const plan_opts_t *o, uint64_t n_ctx)
{
    return (!o->kv_unified && o->n_seq > 1) ? n_ctx / o->n_seq : n_ctx;
}

/* KQ mask: f16 with flash attention, f32 without. */
static uint64_t mask_bytes(const mi_t *m, const plan_opts_t *o, uint64_t n_ctx)
{
    if (m->n_layer_attn + m->n_layer_swa == 0)
        return 0;
    return kv_cells(o, n_ctx) * ubatch(o) * (o->flash_attn != 0 ? 2 : 4);
}

uint64_t plan_compute_bytes(const mi_t *m, const plan_opts_t *o, uint64_t n_ctx, bool holds_layers, bool host)
{
    uint64_t ub = ubatch(o);
    bool fa = o->flash_attn != 0;
    bool attn = m->n_layer_attn + m->n_layer_swa > 0;
    uint64_t mask = mask_bytes(m, o, n_ctx);
    if (!holds_layers)
        return mask + 8ull * m->n_embd * ub;
    uint64_t act = (uint64_t)((double)ub * 4.0 * (2.0 * m->n_embd + 3.7 * m->max_width));
    if (m->quantized && host) /* CPU: activations converted to the weights' dot-product type in the graph */
        act += (uint64_t)((double)ub * 2.2 * (m->n_embd + m->max_width));

    uint64_t kq = (!fa && attn) ? kv_cells(o, n_ctx) * ub * m->n_head * 4ull : 0;
    return mask + act + kq;
}

/* The projector's compute buffer: ggml-alloc's peak over the encoder graph
 * of the warmup image. With P the encoder positions (patches before
 * merging), I = P·patch²·3·4 the image as f32, Pe = 4·P·n_embd (one hidden
 * state), Pf = 4·P·n_ff and KQ = 4·P²·n_head (the attention matrix without
 * flash attention), the peak is the largest of the stages:
 *   qwen-VL mergers and others  image + patch embedding  1.5·I + Pe
 *                               FFN                      I + Pf
 *                               attention (FA)           6.5·Pe
 *                               attention (no FA)        KQ + max(I + Pe, 7.5·Pe)
 *   gemma4v (gated FFN)         image                    1.5·I
 *                               FFN                      I + 3·Pf + 2·Pe
 *                               attention (FA)           5.5·Pe
 *                               attention (no FA)        KQ + max(I, 5.5·Pe)
 * fitted on llama-server's own worst-case figures ("[mtmd] estimated
 * worst-case memory usage", its no-alloc reserve) on the CPU backend for 18
 * encoder shapes per projector type (n_embd 64-2048, n_ff 128-4304, 2-16
 * heads, 1-27 blocks, three warmup sizes), flash attention on and off:
 * within 7% or 6 MiB each (tests/test_plan.c; worst: the full-size gemma4v
 * encoder, -6.7%, and a small one at +33%, 5.6 MiB).
 * The number of blocks does not enter: the allocator reuses one layer's
 * buffers for the next. */
void plan_mmproj(const mi_t *proj, const plan_opts_t *o, plan_mmproj_t *out)
{
    memset(out, 0, sizeof *out);
    if (!proj || !proj->is_mmproj)
        return;
    out->weights = proj->weight_bytes;
    uint64_t patch = proj->v_patch_size ? proj->v_patch_size : 14;
    uint64_t merge = proj->v_merge ? proj->v_merge : 1;
    bool gemma = strstr(proj->projector, "gemma4") != NULL;
    uint64_t P;
    if (proj->v_dynamic) {
        /* clip's warmup: a fixed token budget per type, no larger than the
         * most tokens an image may take (--image-max-tokens, or the ubatch
         * for projectors decoded in one ubatch) */
        uint64_t per_side = gemma ? 16 : 46;
        uint64_t side = per_side * patch * merge;
        uint64_t tmax = o->image_max_tokens; /* 0: the projector's own */
        uint64_t ub = o->n_ubatch ? o->n_ubatch : 512;
        if (proj->v_non_causal && (tmax ? tmax : proj->v_max_tokens) > ub)
            tmax = ub; /* llama-server caps it: "cap image_max_tokens ... to n_ubatch" */
        if (tmax) {
            uint64_t lim = (uint64_t)sqrt((double)tmax * (double)(patch * merge * patch * merge));
            if (lim < side)
                side = lim;
        }
        mi_image_opts_t io = {.n_ubatch = o->n_ubatch, .max_tokens = o->image_max_tokens};
        out->warmup_px = (uint32_t)side;
        P = (uint64_t)mi_image_tokens_wh(proj, (uint32_t)side, (uint32_t)side, &io) * merge * merge;
    } else {
        uint64_t n = proj->v_image_size / patch;
        out->warmup_px = proj->v_image_size;
        P = n * n;
    }
    out->patches = P;
    double I = (double)P * (double)(patch * patch) * 12.0, Pe = 4.0 * (double)P * proj->v_n_embd,
           Pf = 4.0 * (double)P * proj->v_n_ff, KQ = 4.0 * (double)P * (double)P * proj->v_n_head;
    bool fa = o->flash_attn != 0;
    double c;
    if (gemma) {
        double ffn = I + 3 * Pf + 2 * Pe;
        c = fa ? fmax(fmax(1.5 * I, ffn), 5.5 * Pe) : fmax(KQ + fmax(I, 5.5 * Pe), ffn);
    } else {
        double ffn = I + Pf;
        c = fa ? fmax(fmax(1.5 * I + Pe, ffn), 6.5 * Pe) : fmax(KQ + fmax(I + Pe, 7.5 * Pe), ffn);
    }
    out->compute = (uint64_t)c;
}

static void predict_core(const mi_t *m, const plan_opts_t *o, const ovr_t *ovr_in, const plan_gpu_t *gpus, int n_gpu,
                         int64_t host_free_mib, uint64_t margin, plan_t *out);

int plan_mmproj_device(const plan_opts_t *o, int n_gpu)
{
    if (!o->mmproj_offload || n_gpu <= 0)
        return 0;
    int d = o->mmproj_dev >= 0 ? o->mmproj_dev : first_gpu(o->dev_mask, n_gpu);
    if (o->mmproj_dev < 0 && !d) /* no -dev (or none of its GPUs here): the first GPU */
        d = 1;
    return d <= n_gpu ? d : 1;
}

void plan_draft(const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, plan_t *out)
{
    memset(out, 0, sizeof *out);
    out->n_dev = 1 + n_gpu;
    if (!o->draft_mi)
        return;
    /* the draft's devices: -devd, else the model's -dev, else every GPU */
    uint32_t mask = o->draft_dev_mask ? o->draft_dev_mask : o->dev_mask;
    plan_gpu_t sub[PLAN_MAX_GPU];
    int idx[PLAN_MAX_GPU], n_sub = 0;
    for (int g = 0; g < n_gpu && !o->draft_dev_none; g++)
        if (!mask || (mask & (1u << g))) {
            sub[n_sub] = gpus[g];
            idx[n_sub++] = g;
        }
    plan_opts_t d;
    plan_opts_default(&d);
    d.fit = false; /* fit places the model, not its draft */
    d.ngl = o->draft_ngl;
    d.ngl_set = true;
    d.n_ctx = o->draft_ctx ? o->draft_ctx : o->n_ctx; /* 0: the draft's own trained context */
    d.ctx_full = o->ctx_full;
    d.n_seq = o->n_seq;
    d.kv_unified = o->kv_unified;
    d.n_batch = o->n_batch;
    d.n_ubatch = o->draft_ubatch ? o->draft_ubatch : o->n_ubatch;
    if (d.n_ubatch > d.n_batch)
        d.n_ubatch = d.n_batch;
    d.type_k = o->draft_type_k;
    d.type_v = o->draft_type_v;
    d.flash_attn = o->flash_attn;
    d.no_kv_offload = o->no_kv_offload;
    d.ncmoe = o->draft_ncmoe;
    d.cpu_moe = o->draft_cpu_moe;
    d.split_none = o->split_none;
    d.split_row = o->split_row;
    d.main_gpu = 0;
    for (int k = 0; k < n_sub; k++)
        if (idx[k] == o->main_gpu)
            d.main_gpu = k;
    if (n_sub == n_gpu) { /* the model's -ts is copied into the draft's params */
        d.n_ts = o->n_ts;
        memcpy(d.ts, o->ts, sizeof d.ts);
    }
    plan_t dp;
    predict_core(o->draft_mi, &d, NULL, sub, n_sub, -1, 0, &dp);
    out->n_ctx = dp.n_ctx;
    out->ngl = dp.ngl;
    out->dev[0] = dp.dev[0];
    for (int k = 0; k < n_sub; k++)
        out->dev[1 + idx[k]] = dp.dev[1 + k];
    for (int dv = 0; dv < out->n_dev; dv++)
        out->dev[dv].total = out->dev[dv].weights + out->dev[dv].kv + out->dev[dv].rs + out->dev[dv].compute +
                             out->dev[dv].output;
}

const char *plan_verdict_name(plan_verdict_t v)
{
    switch (v) {
    case PLAN_FITS: return "fits";
    case PLAN_FITS_WITHOUT_PP: return "fits only without pipeline parallelism";
    case PLAN_NO_FIT: return "does not fit";
    case PLAN_UNKNOWN: return "unknown (free memory not known)";
    }
    return "?";
}

const char *plan_fit_status_name(plan_fit_status_t s)
{
    switch (s) {
    case PLAN_FIT_OFF: return "off";
    case PLAN_FIT_UNCHANGED: return "no change needed";
    case PLAN_FIT_CTX: return "context reduced";
    case PLAN_FIT_PLACED: return "layers and experts placed";
    case PLAN_FIT_ABORTED: return "aborted";
    case PLAN_FIT_UNKNOWN: return "not replayed (free memory unknown)";
    }
    return "?";
}

/* First index whose cumulative share exceeds x (std::upper_bound). */
static int upper_bound(const double *cum, int n, double x)
{
    for (int i = 0; i < n; i++)
        if (cum[i] > x)
            return i;
    return n - 1;
}

/* Device index in out->dev (0 = host) for layer il (il == N: output layer). */
static int layer_device(const mi_t *m, const plan_opts_t *o, const double *cum, int n_gpu, uint32_t il)
{
    uint32_t N = m->n_layer;
    if (n_gpu == 0)
        return 0;
    int64_t ngl = o->ngl < 0 ? (int64_t)N + 1 : o->ngl;
    int64_t start = (int64_t)N + 1 - ngl;
    if (start < 0)
        start = 0;
    int64_t act = ngl < (int64_t)N + 1 ? ngl : (int64_t)N + 1;
    if ((int64_t)il < start || (int64_t)il - start >= act)
        return 0;
    if (o->split_none)
        return 1 + (o->main_gpu < n_gpu ? o->main_gpu : 0);
    return 1 + upper_bound(cum, n_gpu, (double)((int64_t)il - start) / (double)act);
}

/* llama-server's -ot patterns are ECMAScript regexes; POSIX ERE lacks the
 * class escapes, so \d \w \s become bracket expressions. */
static bool ot_match(const char *pattern, const char *name)
{
    char re[512];
    size_t k = 0;
    for (const char *p = pattern; *p && k + 16 < sizeof re; p++) {
        if (p[0] == '\\' && (p[1] == 'd' || p[1] == 'w' || p[1] == 's')) {
            const char *cls = p[1] == 'd' ? "[0-9]" : p[1] == 'w' ? "[A-Za-z0-9_]" : "[[:space:]]";
            k += (size_t)snprintf(re + k, sizeof re - k, "%s", cls);
            p++;
        } else {
            re[k++] = *p;
        }
    }
    re[k] = 0;
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB))
        return false;
    bool hit = regexec(&r, name, 0, NULL, 0) == 0;
    regfree(&r);
    return hit;
}

/* The overrides the args ask for: -ot (first match wins, per class, with a
 * representative tensor name), then -ncmoe / --cpu-moe for the experts. */
static void ovr_from_opts(const mi_t *m, const plan_opts_t *o, ovr_t *ov)
{
    static const char *const names[C_N] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight",
                                           "ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight"};
    for (uint32_t il = 0; il < m->n_layer; il++) {
        ov[il].cls = 0;
        ov[il].dev = 0;
        uint8_t done = 0;
        for (int k = 0; k < o->n_ot; k++)
            for (int c = 0; c < C_N; c++) {
                if (done & CB(c))
                    continue;
                char name[64];
                snprintf(name, sizeof name, "blk.%u.%s", il, names[c]);
                bool hit = ot_match(o->ot[k].pattern, name);
                if (!hit && c == C_OTH_GATE) { /* the router is a gate-class tensor too */
                    snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", il);
                    hit = ot_match(o->ot[k].pattern, name);
                }
                if (hit) {
                    done |= CB(c);
                    if (o->ot[k].dev == 0) { /* only host overrides are modelled */
                        ov[il].cls |= CB(c);
                        ov[il].dev = 0;
                    }
                }
            }
        if (o->cpu_moe || (int64_t)il < o->ncmoe)
            ov[il].cls |= C_EXPS & ~done;
    }
}

/* The expert block's outputs beside the mask: down [n_embd, n_used]; gate,
 * up, swiglu [n_ff_exp, n_used]; three hidden states (f32, per ubatch token). */
static uint64_t moe_block_bytes(const mi_t *m, uint64_t ub, uint64_t mask)
{
    return mask + ub * 4ull *
                      ((uint64_t)m->n_embd * m->n_expert_used + 3ull * m->n_ff_exp * m->n_expert_used +
                       3ull * m->n_embd);
}

typedef struct {
    bool any;          /* host weights offloaded to the first GPU */
    bool cpu_layers;   /* whole layers on the host */
    bool cpu_attn;     /* ... one of them with KV */
    uint64_t e_max;    /* largest host expert tensor */
    int64_t first, last, first_max; /* host-expert layers */
    int kind_first;    /* 0 all experts, 1 gate+down (UP), 2 down only (GATE) */
    uint64_t e_first;  /* largest host expert tensor of the first layer */
    int n_layers;
} offload_t;

/* Peak of the first GPU's compute buffer from copies of host weights (see
 * the top of this file), 0 when none are copied. */
static uint64_t offload_peak(const mi_t *m, const plan_opts_t *o, const offload_t *h, uint64_t mask, uint64_t n_ctx)
{
    if (!h->any || ubatch(o) < 32)
        return 0;
    uint64_t ub = ubatch(o);
    double X = 4.0 * ub * m->n_embd, G = 4.0 * ub * m->n_ff_exp * m->n_expert_used,
           D = 4.0 * ub * m->n_embd * m->n_expert_used, R = 4.0 * ub * m->n_expert;
    double E = (double)h->e_max, Mk = (double)mask;
    int64_t a = -1, z = -1;
    for (uint32_t il = 0; il < m->n_layer; il++)
        if (m->layers[il].kind != MI_LAYER_RECURRENT) {
            if (a < 0)
                a = il;
            z = il;
        }
    double p;
    if (h->cpu_layers) {
        p = E + D + 2 * X + G + 2 * R;
        if (h->cpu_attn) /* a host layer's K and V, converted to f16, and the mask */
            p += (double)n_ctx * m->n_head_kv * (m->head_dim_k + m->head_dim_v) * 2.0 + Mk;
    } else if (a >= 0 && h->first < a && h->last >= a) {
        p = Mk + 2 * E + 2 * X + G + 2 * R;
        /* an attention layer's big tensor (the f16 copy of a quantized cache
         * in the flash-attention output, or the KQ matrix without flash
         * attention) then lands above a copy too */
        bool fa = o->flash_attn != 0;
        bool quant = gguf_type_block(o->type_k) > 1 || gguf_type_block(o->type_v) > 1;
        double big = fa ? (quant ? (double)n_ctx * m->n_head_kv * (m->head_dim_k + m->head_dim_v) * 2.0 : 0)
                        : (double)kv_cells(o, n_ctx) * ub * m->n_head * 4.0;
        double pa = Mk + E + big + (fa ? 6.0 : 4.75) * X;
        if (big > 0 && pa > p)
            p = pa;
    } else if (a < 0 || h->last < a) {
        p = Mk + E + D + 2 * X + G + 2 * R + (h->n_layers > 1 ? 0.75 * X : 0);
    } else {
        double base = D + 2 * G + X;
        double kind_extra = h->kind_first == 2 ? 1.625 * G : h->kind_first == 1 ? 0.5625 * G : 0;
        double p_first = (double)h->e_first + base + (h->first < z ? Mk : -0.75 * X) + kind_extra;
        double p_max = E + base + (h->first_max < z ? Mk : -0.75 * X);
        p = p_first > p_max ? p_first : p_max;
    }
    if (o->flash_attn != 0 && m->n_expert_used) {
        /* at a large ubatch the expert block's outputs (see predict_core)
         * outgrow the copies, and a host expert's copy lies beside them
         * (H200, -ncmoe 18 -ub 4096: 936 MiB; 8 MiB over) */
        double moe = (double)moe_block_bytes(m, ub, mask);
        if (moe > p)
            p = moe + E;
    }
    return p > 0 ? (uint64_t)p : 0;
}

static void predict_core(const mi_t *m, const plan_opts_t *o, const ovr_t *ovr_in, const plan_gpu_t *gpus, int n_gpu,
                         int64_t host_free_mib, uint64_t margin, plan_t *out)
{
    memset(out, 0, sizeof *out);
    out->over_dev = -1;
    out->n_dev = 1 + n_gpu;
    snprintf(out->dev[0].name, sizeof out->dev[0].name, "CPU");
    out->dev[0].free_mib = host_free_mib;
    for (int g = 0; g < n_gpu; g++) {
        snprintf(out->dev[1 + g].name, sizeof out->dev[1 + g].name, "%s", gpus[g].name);
        out->dev[1 + g].free_mib = gpus[g].free_mib;
    }
    uint64_t n_ctx = pad256(o->n_ctx ? o->n_ctx : (m->n_ctx_train ? m->n_ctx_train : 4096));
    out->n_ctx = n_ctx;

    /* cumulative split: -ts, else free memory (equal when unknown) */
    double cum[PLAN_MAX_GPU], tot = 0, w[PLAN_MAX_GPU];
    for (int g = 0; g < n_gpu; g++) {
        w[g] = o->n_ts ? (g < o->n_ts ? o->ts[g] : 0) : (gpus[g].free_mib > 0 ? (double)gpus[g].free_mib : 1);
        tot += w[g];
    }
    if (tot <= 0)
        for (int g = 0; g < n_gpu; g++)
            w[g] = 1, tot += 1;
    double acc = 0;
    for (int g = 0; g < n_gpu; g++) {
        acc += w[g];
        cum[g] = acc / tot;
    }

    ovr_t *own = NULL;
    const ovr_t *ovr = ovr_in;
    if (!ovr) {
        own = xcalloc(m->n_layer ? m->n_layer : 1, sizeof *own);
        ovr_from_opts(m, o, own);
        ovr = own;
    }

    /* weights, KV, recurrent state by layer */
    offload_t h = {.first = -1, .last = -1, .first_max = -1};
    for (uint32_t il = 0; il < m->n_layer; il++) {
        const mi_layer_t *L = &m->layers[il];
        int d = layer_device(m, o, cum, n_gpu, il);
        plan_dev_t *D = &out->dev[d];
        D->layers++;
        uint8_t cls = d > 0 ? ovr[il].cls : 0;
        int od = ovr[il].dev < out->n_dev ? ovr[il].dev : 0;
        uint64_t moved = 0, e_host = 0;
        int kind = 0;
        for (int c = 0; c < C_N; c++)
            if (cls & CB(c)) {
                uint64_t b = class_bytes(L, c);
                moved += b;
                out->dev[od].weights += b;
                if (od == 0 && c <= C_EXP_DOWN && b > e_host)
                    e_host = b;
            }
        D->weights += L->bytes - moved;
        if (d == 0 && n_gpu > 0) { /* a host layer: its weights are copied in for prompt batches */
            h.cpu_layers = true;
            h.cpu_attn |= L->kind != MI_LAYER_RECURRENT;
            e_host = 0;
            for (int c = 0; c < C_N; c++) /* the largest FFN matrix (experts, or a dense FFN's) */
                if (class_bytes(L, c) > e_host)
                    e_host = class_bytes(L, c);
        } else if (od == 0 && e_host) {
            bool up_gpu = !(cls & CB(C_EXP_UP)), gate_gpu = !(cls & CB(C_EXP_GATE));
            kind = up_gpu && gate_gpu ? 2 : up_gpu ? 1 : 0;
        }
        if (e_host) {
            h.any = true;
            if (h.first < 0) {
                h.first = il;
                h.kind_first = kind;
                h.e_first = e_host;
            }
            h.last = il;
            h.n_layers++;
            if (e_host > h.e_max) {
                h.e_max = e_host;
                h.first_max = il;
            }
        }
        plan_dev_t *K = o->no_kv_offload ? &out->dev[0] : D;
        if (L->kind != MI_LAYER_RECURRENT) {
            mi_t one = *m; /* KV of this layer alone */
            one.n_layer = 1;
            one.layers = (mi_layer_t *)L;
            mi_kv_opts_t ko = {.n_ubatch = (uint32_t)ubatch(o)};
            K->kv += mi_kv_bytes_ex(&one, n_ctx, o->type_k, o->type_v, &ko);
        } else {
            K->rs += (m->rs_r_elems + m->rs_s_elems) * 4ull * (o->n_seq ? o->n_seq : 1);
        }
    }
    free(own);
    int od = layer_device(m, o, cum, n_gpu, m->n_layer);
    out->dev[od].weights += m->bytes_output;
    out->dev[od].output_layer = true;
    out->ngl = n_gpu ? (o->ngl < 0 || o->ngl > (int64_t)m->n_layer + 1 ? (int64_t)m->n_layer + 1 : o->ngl) : 0;
    uint64_t other = m->weight_bytes > 0 ? m->weight_bytes : 0;
    /* token_embd and anything outside blk.N / output stays on the host */
    uint64_t placed = 0;
    for (int d = 0; d < out->n_dev; d++)
        placed += out->dev[d].weights;
    if (other > placed)
        out->dev[0].weights += other - placed;

    /* output (logits) buffer: host */
    out->dev[0].output = (uint64_t)m->n_vocab * (o->n_seq ? o->n_seq : 1) * 4ull;

    /* compute buffers */
    uint64_t mask = mask_bytes(m, o, n_ctx);
    bool host_layers = out->dev[0].layers > 0 || n_gpu == 0;
    if (host_layers && n_gpu > 0 && ubatch(o) >= 32) /* host layers' mat-muls run on the GPU */
        out->dev[0].compute = mask + 20ull * m->n_embd * ubatch(o);
    else
        out->dev[0].compute = plan_compute_bytes(m, o, n_ctx, host_layers, true);
    uint64_t peak = n_gpu ? offload_peak(m, o, &h, mask, n_ctx) : 0;
    for (int d = 1; d < out->n_dev; d++) {
        plan_dev_t *D = &out->dev[d];
        if (D->layers || D->output_layer) {
            D->compute = plan_compute_bytes(m, o, n_ctx, true, false);
            bool fa = o->flash_attn != 0;
            if (m->n_expert && m->n_expert_used && D->layers && fa) {
                /* MoE: the expert block's outputs can be the peak */
                uint64_t moe = moe_block_bytes(m, ubatch(o), mask);
                if (moe > D->compute)
                    D->compute = moe;
            }
            if (fa && D->layers && (gguf_type_block(o->type_k) > 1 || gguf_type_block(o->type_v) > 1)) {
                /* quantized cache: one layer's K and V converted to f16 live
                 * beside the mask and the attention's activations, ub × 4 B
                 * × (n_embd + 3·max_width); the peak is the larger of that
                 * and the rest of the graph's, not their sum (H200 loads at
                 * 47,872 tokens: +62, +30 and +0 MiB over f16 at ub 1024,
                 * 2048, 4096; at 256K the conversion is the peak) */
                uint64_t conv = n_ctx * (uint64_t)m->n_head_kv * (m->head_dim_k + m->head_dim_v) * 2ull;
                uint64_t att = conv + mask + ubatch(o) * 4ull * ((uint64_t)m->n_embd + 3ull * m->max_width);
                if (att > D->compute)
                    D->compute = att;
            }
        }
        if (d == 1 && peak > D->compute) /* host weights are copied to the first GPU */
            D->compute = peak;
    }
    /* pipeline parallelism: several GPUs, everything offloaded, KV with it */
    int gpus_used = 0;
    bool any_host_ffn = h.any;
    for (int d = 1; d < out->n_dev; d++)
        gpus_used += out->dev[d].layers > 0;
    out->pp = gpus_used > 1 && out->dev[0].layers == 0 && !o->no_kv_offload && !any_host_ffn && !o->split_none;
    if (out->pp) /* 4 copies of the graph inputs (GGML_SCHED_MAX_COPIES); estimate */
        out->pp_extra = 3ull * (mask + (uint64_t)m->n_embd * ubatch(o) * 4ull);

    /* the projector: weights and compute buffer on its device (-mmdev, else
     * the first of -dev's GPUs), the host with --no-mmproj-offload */
    if (o->mmproj_mi || o->mmproj_bytes) {
        int d = plan_mmproj_device(o, n_gpu);
        /* without the projector's facts, its file size and a third of it
         * for the compute buffer (a rough estimate; plan_mmproj is the model) */
        plan_mmproj_t mp = {.weights = o->mmproj_bytes, .compute = o->mmproj_bytes / 3};
        if (o->mmproj_mi)
            plan_mmproj(o->mmproj_mi, o, &mp);
        out->dev[d].mmproj = mp.weights + mp.compute;
    }
    /* the draft model beside this one */
    if (o->draft_mi) {
        plan_t dp;
        plan_draft(o, gpus, n_gpu, &dp);
        for (int d = 0; d < out->n_dev; d++)
            out->dev[d].draft = dp.dev[d].total;
    }

    /* verdict */
    out->verdict = PLAN_FITS;
    bool unknown = false;
    for (int d = 0; d < out->n_dev; d++) {
        plan_dev_t *D = &out->dev[d];
        D->total = D->weights + D->kv + D->rs + D->compute + D->output + D->mmproj + D->draft;
        if (D->free_mib < 0) {
            unknown = true;
            continue;
        }
        uint64_t free_b = (uint64_t)D->free_mib * MIB;
        uint64_t need = D->total + (d > 0 ? margin : 0);
        if (need > free_b) {
            out->verdict = PLAN_NO_FIT;
            if (out->over_dev < 0) {
                out->over_dev = d;
                uint64_t parts[7] = {D->weights, D->kv, D->rs, D->compute, D->output, D->mmproj, D->draft};
                static const char *const names[7] = {"weights", "KV cache", "recurrent state", "compute buffer",
                                                     "output buffer", "mmproj", "draft model"};
                int best = 0;
                for (int k = 1; k < 7; k++)
                    if (parts[k] > parts[best])
                        best = k;
                out->over_what = names[best];
            }
        } else if (out->pp && d > 0 && need + out->pp_extra > free_b && out->verdict == PLAN_FITS) {
            out->verdict = PLAN_FITS_WITHOUT_PP;
        }
    }
    if (unknown && out->verdict == PLAN_FITS && n_gpu == 0 && host_free_mib < 0)
        out->verdict = PLAN_UNKNOWN;
}

static bool fits(const plan_t *p) { return p->verdict == PLAN_FITS || p->verdict == PLAN_FITS_WITHOUT_PP; }

/* ---------------------------------------------------------------- --fit */

/* What fit measures per GPU (llama_memory_breakdown: model + context + compute). */
static int64_t dev_mem(const plan_t *p, int g)
{
    const plan_dev_t *D = &p->dev[1 + g];
    return (int64_t)(D->weights + D->kv + D->rs + D->compute);
}

typedef struct {
    uint32_t n_layer, n_part;
    plan_lf_t overflow;
} fit_ngl_t;

typedef struct {
    const mi_t *m;
    plan_opts_t x; /* current params (fit changes n_ctx) */
    const plan_gpu_t *gpus;
    int nd;
    ovr_t *ovr;
} fit_ctx_t;

static uint8_t lf_classes(plan_lf_t lf)
{
    switch (lf) {
    case PLAN_LF_ATTN: return C_ALL; /* ffn_(gate|up|gate_up|down).* */
    case PLAN_LF_UP: return CB(C_EXP_GATE) | CB(C_EXP_DOWN) | CB(C_OTH_GATE) | CB(C_OTH_DOWN); /* ffn_(gate|gate_up|down).* */
    case PLAN_LF_GATE: return CB(C_EXP_DOWN) | CB(C_OTH_DOWN);                                 /* ffn_down.* */
    case PLAN_LF_MOE: return C_EXPS;                                                           /* *_exps */
    default: return 0;
    }
}

/* set_ngl_tensor_split_tbo: n_gpu_layers, tensor split and overrides for a
 * per-device layer count; overflow_dev[id]: 0 host or 1 + the next GPU. */
static void fit_apply(fit_ctx_t *f, const fit_ngl_t *npd, const int *overflow_dev, plan_opts_t *x)
{
    uint32_t N = f->m->n_layer;
    uint32_t ngl = 0;
    for (int id = 0; id < f->nd; id++)
        ngl += npd[id].n_layer;
    x->ngl = ngl;
    if (f->nd > 1) {
        x->n_ts = f->nd;
        for (int id = 0; id < f->nd; id++)
            x->ts[id] = npd[id].n_layer;
        bool any = false;
        for (int id = 0; id < f->nd; id++)
            any |= npd[id].n_layer > 0;
        if (!any)
            x->n_ts = 0;
    }
    for (uint32_t il = 0; il < N; il++)
        f->ovr[il] = (ovr_t){0, 0};
    uint32_t il0 = N + 1 - ngl;
    for (int id = 0; id < f->nd; id++) {
        il0 += npd[id].n_layer - npd[id].n_part;
        for (uint32_t il = il0; il < il0 + npd[id].n_part; il++) {
            if (il >= N)
                continue; /* the output layer has no FFN */
            bool first = il == il0;
            f->ovr[il].cls = lf_classes(first ? npd[id].overflow : PLAN_LF_MOE);
            f->ovr[il].dev = (int8_t)(first ? overflow_dev[id] : 0);
        }
        il0 += npd[id].n_part;
    }
}

static void fit_memory(fit_ctx_t *f, const fit_ngl_t *npd, const int *overflow_dev, int64_t *mem)
{
    plan_opts_t x = f->x;
    fit_apply(f, npd, overflow_dev, &x);
    plan_t p;
    predict_core(f->m, &x, f->ovr, f->gpus, f->nd, -1, 0, &p);
    for (int id = 0; id < f->nd; id++)
        mem[id] = dev_mem(&p, id);
}

/* Layers lo..hi as a regex alternation by decades: 19|2[0-9]|3[0-9]. */
static size_t layer_range_re(char *a, size_t cap, uint32_t lo, uint32_t hi)
{
    size_t l = 0;
    for (uint32_t x = lo; x <= hi && l < cap;) {
        uint32_t top = x - x % 10 + 9 < hi ? x - x % 10 + 9 : hi;
        char pre[16] = "";
        if (x / 10)
            snprintf(pre, sizeof pre, "%u", x / 10);
        if (top > x)
            l += (size_t)snprintf(a + l, cap - l, "%s%s[%u-%u]", l ? "|" : "", pre, x % 10, top % 10);
        else
            l += (size_t)snprintf(a + l, cap - l, "%s%u", l ? "|" : "", x);
        x = top + 1;
    }
    return l;
}

static void fit_args(const mi_t *m, const fit_ngl_t *npd, const int *overflow_dev, int nd, plan_fit_t *out)
{
    size_t l = 0;
    char *a = out->args;
    size_t cap = sizeof out->args;
    if (out->ctx_cut)
        l += (size_t)snprintf(a + l, cap - l, "-c %llu ", (unsigned long long)out->n_ctx);
    if (out->status != PLAN_FIT_PLACED)
        goto done;
    uint32_t ngl = 0;
    for (int id = 0; id < nd; id++)
        ngl += npd[id].n_layer;
    l += (size_t)snprintf(a + l, cap - l, "-ngl %u ", ngl);
    if (nd > 1) {
        l += (size_t)snprintf(a + l, cap - l, "-ts ");
        for (int id = 0; id < nd && l < cap; id++)
            l += (size_t)snprintf(a + l, cap - l, "%s%u", id ? "," : "", npd[id].n_layer);
        l += (size_t)snprintf(a + l, cap - l, " ");
    }
    uint32_t il0 = m->n_layer + 1 - ngl;
    for (int id = 0; id < nd && l < cap; id++) {
        il0 += npd[id].n_layer - npd[id].n_part;
        uint32_t lo = il0, hi = il0 + npd[id].n_part; /* [lo, hi) */
        if (hi > m->n_layer)
            hi = m->n_layer;
        if (lo < hi) {
            static const char *const part[] = {"", "(gate|up|gate_up|down).*", "(gate|gate_up|down).*", "down.*",
                                               "(up|down|gate_up|gate)_(ch|)exps"};
            const char *buf = overflow_dev[id] ? "CUDA" : "CPU";
            if (npd[id].overflow != PLAN_LF_MOE) {
                l += (size_t)snprintf(a + l, cap - l, "-ot 'blk\\.%u\\.ffn_%s=%s", lo, part[npd[id].overflow], buf);
                if (overflow_dev[id] && l < cap)
                    l += (size_t)snprintf(a + l, cap - l, "%d", overflow_dev[id] - 1);
                l += (size_t)snprintf(a + l, cap - l, "' ");
                lo++;
            }
            if (lo < hi && l < cap) {
                char re[96];
                layer_range_re(re, sizeof re, lo, hi - 1);
                l += (size_t)snprintf(a + l, cap - l, "-ot 'blk\\.(%s)\\.ffn_%s=CPU' ", re, part[PLAN_LF_MOE]);
            }
        }
        il0 += npd[id].n_part;
    }
done:
    while (l > 0 && l <= cap && a[l - 1] == ' ')
        a[--l] = 0;
}

/* fit.cpp's interpolation between a placement that fits (lo MiB) and one
 * that does not (hi): how many of the delta layers between them to try
 * next, at least 1 and at most delta - 1. */
static uint32_t fit_step(uint32_t delta, int64_t target, int64_t lo, int64_t hi)
{
    uint32_t step = (uint32_t)((int64_t)delta * (target - lo) / (hi - lo));
    if (step < 1)
        step = 1;
    if (step > delta - 1)
        step = delta - 1;
    return step;
}

/* llama-server builds the draft's params from the ones fit did not touch
 * (fit changes its own copies): the draft keeps the context the args gave,
 * whatever fit cuts the model's to. */
static void pin_draft_ctx(plan_opts_t *x)
{
    if (x->draft_mi && !x->draft_ctx)
        x->draft_ctx = x->n_ctx ? x->n_ctx : x->draft_mi->n_ctx_train;
}

/* common_params_fit_impl, step by step, on predicted memory. */
void plan_fit(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, plan_fit_t *out)
{
    memset(out, 0, sizeof *out);
    out->n_ctx = pad256(o->n_ctx ? o->n_ctx : (m->n_ctx_train ? m->n_ctx_train : 4096));
    if (!o->fit || n_gpu <= 0) {
        out->status = PLAN_FIT_OFF;
        return;
    }
    for (int g = 0; g < n_gpu; g++)
        if (gpus[g].free_mib < 0) {
            out->status = PLAN_FIT_UNKNOWN;
            return;
        }
    int nd = o->split_none ? 1 : n_gpu;
    const plan_gpu_t *gd = o->split_none ? &gpus[o->main_gpu < n_gpu ? o->main_gpu : 0] : gpus;
    out->n_dev = nd;
    fit_ctx_t f = {.m = m, .x = *o, .gpus = gd, .nd = nd};
    f.x.split_none = false;
    pin_draft_ctx(&f.x);
    f.ovr = xcalloc(m->n_layer ? m->n_layer : 1, sizeof *f.ovr);
    uint32_t hp_ngl = m->n_layer, hp_nct = m->n_ctx_train ? m->n_ctx_train : 4096;
    bool moe = m->n_expert > 0;
    uint32_t n_ctx_min = o->ctx_full ? UINT32_MAX : o->fit_ctx_min;

    /* step 1: projected use with the args as given */
    plan_t full;
    predict_core(m, &f.x, NULL, gd, nd, -1, 0, &full);
    int64_t free_b[PLAN_MAX_GPU], margin[PLAN_MAX_GPU], used[PLAN_MAX_GPU];
    int64_t sum_free = 0, sum_used = 0, sum_model = 0;
    bool change = false;
    for (int id = 0; id < nd; id++) {
        /* fit measures after its dry run allocated the recurrent state (and
         * ~2.5 MiB of handles) next to llama-server's CUDA context */
        free_b[id] = (gd[id].free_mib - PLAN_CUDA_CTX_MIB) * (int64_t)MIB - (int64_t)full.dev[1 + id].rs -
                     (int64_t)(MIB * 5 / 2);
        out->free_mib[id] = free_b[id] / (int64_t)MIB;
        /* llama-server adds the projector's and the draft's memory on each
         * GPU to fit's target before fitting the model (server-context.cpp:
         * mtmd_get_memory_usage, and the draft's model + context + compute) */
        margin[id] = o->fit_target_mib[id < PLAN_MAX_GPU ? id : 0] * (int64_t)MIB +
                     (int64_t)(full.dev[1 + id].mmproj + full.dev[1 + id].draft);
        used[id] = dev_mem(&full, id);
        sum_free += free_b[id];
        sum_used += used[id];
        sum_model += (int64_t)full.dev[1 + id].weights;
        change |= free_b[id] - used[id] < margin[id];
    }
    fit_ngl_t npd[PLAN_MAX_GPU];
    int ovf_dev[PLAN_MAX_GPU];
    for (int id = 0; id < PLAN_MAX_GPU; id++)
        npd[id] = (fit_ngl_t){0, 0, PLAN_LF_MOE};
    memset(ovf_dev, 0, sizeof ovf_dev);
    if (!change) {
        out->status = PLAN_FIT_UNCHANGED;
        goto done;
    }

    /* step 2: a smaller context */
    int64_t surplus = sum_free - sum_used;
    for (int id = 0; id < nd; id++)
        surplus -= margin[id];
    if (surplus < 0 && !o->n_ctx && hp_nct > n_ctx_min) {
        int64_t target = sum_free;
        for (int id = 0; id < nd; id++)
            target -= margin[id];
        if (nd > 1) {
            uint32_t ngl = o->ngl < 0 ? UINT32_MAX : (uint32_t)o->ngl;
            int64_t per_layer = sum_model / (ngl < hp_ngl ? ngl : hp_ngl);
            target -= (nd + 1) * per_layer / (moe ? 6 : 2);
        }
        f.x.n_ctx = n_ctx_min;
        plan_t lo;
        predict_core(m, &f.x, NULL, gd, nd, -1, 0, &lo);
        int64_t used_min = 0;
        for (int id = 0; id < nd; id++)
            used_min += dev_mem(&lo, id);
        out->ctx_cut = true;
        if (target > used_min) {
            uint64_t c = n_ctx_min + (uint64_t)((int64_t)(hp_nct - n_ctx_min) * (target - used_min) / (sum_used - used_min));
            c -= c % 256;
            f.x.n_ctx = c > n_ctx_min ? c : n_ctx_min;
            out->n_ctx = f.x.n_ctx;
            if (nd <= 1) {
                out->status = PLAN_FIT_CTX;
                goto done;
            }
        }
        out->n_ctx = f.x.n_ctx;
    }

    /* the rest changes placement: only params left at their defaults */
    const char *why = NULL;
    if (o->ngl_set)
        why = "n_gpu_layers already set by user";
    else if (nd > 1 && o->n_ts)
        why = "model_params::tensor_split already set by user";
    else if (nd > 1 && o->split_row)
        why = "changing weight allocation for LLAMA_SPLIT_MODE_ROW not implemented";
    else if (o->n_ot || o->ncmoe || o->cpu_moe)
        why = "model_params::tensor_buft_overrides already set by user";
    if (why) {
        out->status = PLAN_FIT_ABORTED;
        snprintf(out->reason, sizeof out->reason, "%s", why);
        goto done;
    }

    /* step 3: dense(-only) layers back to front */
    int64_t surplus_cpu_moe = 0;
    if (moe) {
        plan_opts_t y = f.x;
        y.cpu_moe = true;
        plan_t p;
        predict_core(m, &y, NULL, gd, nd, -1, 0, &p);
        for (int id = 0; id < nd; id++)
            surplus_cpu_moe += free_b[id] - dev_mem(&p, id) - margin[id];
    }
    int64_t targets[PLAN_MAX_GPU], mem[PLAN_MAX_GPU], mem_high[PLAN_MAX_GPU], mem_test[PLAN_MAX_GPU];
    for (int id = 0; id < nd; id++)
        targets[id] = free_b[id] - margin[id];
    fit_memory(&f, npd, ovf_dev, mem);
    for (int id = nd - 1; id >= 0; id--) {
        uint32_t unassigned = hp_ngl + 1;
        for (int jd = id + 1; jd < nd; jd++)
            unassigned -= npd[jd].n_layer;
        fit_ngl_t high[PLAN_MAX_GPU];
        memcpy(high, npd, sizeof high);
        high[id].n_layer = unassigned;
        if (moe)
            high[id].n_part = id < nd - 1 ? high[id].n_layer : high[id].n_layer - 1;
        if (high[id].n_layer == 0)
            continue;
        fit_memory(&f, high, ovf_dev, mem_high);
        if (mem_high[id] > targets[id]) {
            uint32_t delta = high[id].n_layer - npd[id].n_layer;
            while (delta > 1) {
                uint32_t step = fit_step(delta, targets[id], mem[id], mem_high[id]);
                fit_ngl_t test[PLAN_MAX_GPU];
                memcpy(test, npd, sizeof test);
                test[id].n_layer += step;
                if (moe)
                    test[id].n_part += (id == nd - 1 && test[id].n_part == 0) ? step - 1 : step;
                fit_memory(&f, test, ovf_dev, mem_test);
                if (mem_test[id] <= targets[id]) {
                    memcpy(npd, test, sizeof test);
                    memcpy(mem, mem_test, sizeof mem);
                } else {
                    memcpy(high, test, sizeof test);
                    memcpy(mem_high, mem_test, sizeof mem);
                }
                delta = high[id].n_layer - npd[id].n_layer;
            }
        } else {
            memcpy(npd, high, sizeof high);
            memcpy(mem, mem_high, sizeof mem);
        }
    }
    out->status = PLAN_FIT_PLACED;
    if (!moe || surplus_cpu_moe <= 0)
        goto placed;

    /* step 4: dense-only layers back to full layers, front to back, and
     * part of one more layer */
    int id_dense_start = nd;
    for (int id = nd - 1; id >= 0; id--) {
        if (npd[id].n_layer > 0) {
            id_dense_start = id;
            continue;
        }
        break;
    }
    for (int id = 0; id <= id_dense_start && id_dense_start < nd; id++) {
        fit_ngl_t high[PLAN_MAX_GPU];
        memcpy(high, npd, sizeof high);
        for (int jd = id_dense_start; jd < nd; jd++) {
            uint32_t mv = jd < nd - 1 ? high[jd].n_layer : high[jd].n_layer - 1;
            high[id].n_layer += mv;
            high[jd].n_layer -= mv;
            high[jd].n_part = 0;
        }
        int id_dense_start_high = nd - 1;
        fit_memory(&f, high, ovf_dev, mem_high);
        if (mem_high[id] > targets[id]) {
            uint32_t delta = (high[id].n_layer - high[id].n_part) - (npd[id].n_layer - npd[id].n_part);
            while (delta > 1) {
                uint32_t step = fit_step(delta, targets[id], mem[id], mem_high[id]);
                fit_ngl_t test[PLAN_MAX_GPU];
                memcpy(test, npd, sizeof test);
                int ids = id_dense_start;
                uint32_t conv = 0;
                for (; ids < nd; ids++) {
                    uint32_t c = step - conv < test[ids].n_part ? step - conv : test[ids].n_part;
                    test[ids].n_layer -= c;
                    test[ids].n_part -= c;
                    test[id].n_layer += c;
                    conv += c;
                    if (test[ids].n_part > 0)
                        break;
                }
                fit_memory(&f, test, ovf_dev, mem_test);
                if (mem_test[id] <= targets[id]) {
                    memcpy(npd, test, sizeof test);
                    memcpy(mem, mem_test, sizeof mem);
                    id_dense_start = ids;
                } else {
                    memcpy(high, test, sizeof test);
                    memcpy(mem_high, mem_test, sizeof mem);
                    id_dense_start_high = ids;
                }
                delta = (high[id].n_layer - high[id].n_part) - (npd[id].n_layer - npd[id].n_part);
            }
        } else {
            memcpy(npd, high, sizeof high);
            memcpy(mem, mem_high, sizeof mem);
            id_dense_start = id_dense_start_high;
        }
        /* part of one more layer */
        if (id_dense_start < nd && npd[id_dense_start].n_layer > (uint32_t)(id < nd - 1 ? 0 : 1)) {
            fit_ngl_t test[PLAN_MAX_GPU];
            memcpy(test, npd, sizeof test);
            int ids = id_dense_start;
            test[ids].n_layer--;
            test[ids].n_part--;
            test[id].n_layer++;
            test[id].n_part++;
            if (test[ids].n_part == 0)
                ids++;
            test[id].overflow = PLAN_LF_UP;
            int ovf_test[PLAN_MAX_GPU];
            memcpy(ovf_test, ovf_dev, sizeof ovf_test);
            if (id < nd - 1)
                ovf_test[id] = 1 + id + 1;
            fit_memory(&f, test, ovf_test, mem_test);
            if (mem_test[id] < targets[id] && (id + 1 == nd || mem_test[id + 1] < targets[id + 1])) {
                memcpy(npd, test, sizeof test);
                memcpy(ovf_dev, ovf_test, sizeof ovf_test);
                memcpy(mem, mem_test, sizeof mem);
                id_dense_start = ids;
                test[id].overflow = PLAN_LF_GATE;
                fit_memory(&f, test, ovf_test, mem_test);
                if (mem_test[id] < targets[id] && (id + 1 == nd || mem_test[id + 1] < targets[id + 1])) {
                    memcpy(npd, test, sizeof test);
                    memcpy(mem, mem_test, sizeof mem);
                }
            } else {
                test[id].overflow = PLAN_LF_ATTN;
                fit_memory(&f, test, ovf_test, mem_test);
                if (mem_test[id] < targets[id] && (id + 1 == nd || mem_test[id + 1] < targets[id + 1])) {
                    memcpy(npd, test, sizeof test);
                    memcpy(ovf_dev, ovf_test, sizeof ovf_test);
                    memcpy(mem, mem_test, sizeof mem);
                    id_dense_start = ids;
                }
            }
        }
    }
placed:
    for (int id = 0; id < nd; id++) {
        out->n_layer[id] = npd[id].n_layer;
        out->n_part[id] = npd[id].n_part;
        out->overflow[id] = npd[id].n_part ? npd[id].overflow : PLAN_LF_NONE;
    }
done:
    if (out->status == PLAN_FIT_ABORTED || out->status == PLAN_FIT_UNCHANGED) {
        if (out->ctx_cut && out->status == PLAN_FIT_UNCHANGED)
            out->status = PLAN_FIT_CTX;
    }
    fit_args(m, npd, ovf_dev, nd, out);
    free(f.ovr);
}

/* The prediction for what fit loads. */
static void predict_fitted(const mi_t *m, const plan_opts_t *o, const plan_fit_t *fit, const plan_gpu_t *gpus,
                           int n_gpu, int64_t host_free_mib, uint64_t margin, plan_t *out)
{
    plan_opts_t x = *o;
    pin_draft_ctx(&x);
    if (fit->ctx_cut)
        x.n_ctx = fit->n_ctx;
    if (fit->status != PLAN_FIT_PLACED) {
        predict_core(m, &x, NULL, gpus, n_gpu, host_free_mib, margin, out);
        return;
    }
    /* rebuild the placement on all GPUs (fit may have placed on main_gpu only) */
    fit_ctx_t f = {.m = m, .x = x, .gpus = gpus, .nd = fit->n_dev};
    f.ovr = xcalloc(m->n_layer ? m->n_layer : 1, sizeof *f.ovr);
    fit_ngl_t npd[PLAN_MAX_GPU];
    int ovf_dev[PLAN_MAX_GPU] = {0};
    for (int id = 0; id < fit->n_dev; id++) {
        npd[id] = (fit_ngl_t){fit->n_layer[id], fit->n_part[id], fit->overflow[id] ? fit->overflow[id] : PLAN_LF_MOE};
        if (fit->overflow[id] != PLAN_LF_MOE && fit->overflow[id] != PLAN_LF_NONE && id < fit->n_dev - 1)
            ovf_dev[id] = 1 + id + 1;
    }
    fit_apply(&f, npd, ovf_dev, &x);
    predict_core(m, &x, f.ovr, gpus, n_gpu, host_free_mib, margin, out);
    free(f.ovr);
}

void plan_predict(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, int64_t host_free_mib,
                  uint64_t margin, plan_t *out)
{
    plan_fit_t fit;
    plan_fit(m, o, gpus, n_gpu, &fit);
    predict_fitted(m, o, &fit, gpus, n_gpu, host_free_mib, margin, out);
    out->fit = fit;
    if (fit.status == PLAN_FIT_OFF || fit.status == PLAN_FIT_UNKNOWN)
        out->fit.n_ctx = out->n_ctx;
    if (out->verdict != PLAN_NO_FIT)
        return;
    /* the suggestions are explicit args: what fits without fit's help */
    plan_t t;
    plan_opts_t x;
    plan_opts_t base = *o;
    base.fit = false;
    /* 1. smaller context (multiples of 4096, not below 4096) */
    for (uint64_t c = (out->n_ctx / 4096) * 4096; c >= 4096 && out->n_suggest < PLAN_MAX_SUGGEST; c -= 4096) {
        if (c >= out->n_ctx)
            continue;
        x = base;
        x.n_ctx = c;
        predict_core(m, &x, NULL, gpus, n_gpu, host_free_mib, margin, &t);
        if (fits(&t)) {
            snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0], "-c %llu (context %llu → %llu)",
                     (unsigned long long)c, (unsigned long long)out->n_ctx, (unsigned long long)c);
            break;
        }
    }
    /* 2. quantized KV cache */
    static const uint32_t kvq[2] = {GGUF_TT_Q8_0, GGUF_TT_Q4_0};
    for (int k = 0; k < 2 && out->n_suggest < PLAN_MAX_SUGGEST; k++) {
        if (gguf_type_bytes(o->type_k) * gguf_type_block(kvq[k]) <= gguf_type_bytes(kvq[k]) * gguf_type_block(o->type_k))
            continue; /* not smaller than what is set */
        x = base;
        x.type_k = x.type_v = kvq[k];
        if (x.flash_attn == 0)
            x.flash_attn = 1; /* llama.cpp needs flash attention for a quantized V cache */
        predict_core(m, &x, NULL, gpus, n_gpu, host_free_mib, margin, &t);
        if (fits(&t)) {
            snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0], "-ctk %s -ctv %s%s", gguf_type_name(kvq[k]),
                     gguf_type_name(kvq[k]), o->flash_attn == 0 ? " -fa on" : "");
            break;
        }
    }
    /* 3. experts of more layers on the host */
    if (m->n_expert && !o->cpu_moe && n_gpu && out->n_suggest < PLAN_MAX_SUGGEST) {
        int64_t nc = plan_min_ncmoe(m, &base, gpus, n_gpu, margin);
        if (nc > o->ncmoe)
            snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0],
                     "-ncmoe %lld (experts of the first %lld layers on the host)", (long long)nc, (long long)nc);
    }
    /* 4. fewer layers on the GPUs */
    if (n_gpu && out->n_suggest < PLAN_MAX_SUGGEST) {
        int64_t full = (int64_t)m->n_layer + 1;
        int64_t ngl = plan_max_ngl(m, &base, gpus, n_gpu, margin);
        if (ngl >= 0 && ngl < (o->ngl < 0 ? full : o->ngl))
            snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0], "-ngl %lld (%lld of %lld layers on GPUs)",
                     (long long)ngl, (long long)ngl, (long long)full);
    }
    /* 5. move the split toward free memory */
    if (n_gpu > 1 && o->n_ts && out->n_suggest < PLAN_MAX_SUGGEST) {
        x = base;
        x.n_ts = 0;
        predict_core(m, &x, NULL, gpus, n_gpu, host_free_mib, margin, &t);
        if (fits(&t)) {
            char ts[128] = "";
            size_t l = 0;
            for (int g = 0; g < n_gpu && l < sizeof ts; g++)
                l += (size_t)snprintf(ts + l, sizeof ts - l, "%s%lld", g ? "," : "", (long long)gpus[g].free_mib);
            snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0], "-ts %s (split by free memory)", ts);
        }
    }
}

/* GPU verdict only: the host is not the tuner's constraint here. */
static bool gpus_fit(const mi_t *m, const plan_opts_t *x, const plan_gpu_t *gpus, int n_gpu, uint64_t margin)
{
    plan_t t;
    predict_core(m, x, NULL, gpus, n_gpu, -1, margin, &t);
    return fits(&t);
}

int64_t plan_min_ncmoe(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, uint64_t margin)
{
    if (!m->n_expert || n_gpu <= 0)
        return -1;
    for (int g = 0; g < n_gpu; g++)
        if (gpus[g].free_mib < 0)
            return -1;
    plan_opts_t x = *o;
    x.fit = false;
    x.cpu_moe = false;
    /* more host layers never need more GPU memory: bisect */
    x.ncmoe = m->n_layer;
    if (!gpus_fit(m, &x, gpus, n_gpu, margin))
        return -1;
    int64_t lo = -1, hi = m->n_layer; /* lo does not fit (or -1), hi fits */
    x.ncmoe = 0;
    if (gpus_fit(m, &x, gpus, n_gpu, margin))
        return 0;
    lo = 0;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        x.ncmoe = mid;
        if (gpus_fit(m, &x, gpus, n_gpu, margin))
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

int64_t plan_max_ngl(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, uint64_t margin)
{
    if (n_gpu <= 0)
        return -1;
    for (int g = 0; g < n_gpu; g++)
        if (gpus[g].free_mib < 0)
            return -1;
    plan_opts_t x = *o;
    x.fit = false;
    /* not monotonic near the top (host layers add weight copies), so scan */
    for (int64_t ngl = (int64_t)m->n_layer + 1; ngl >= 0; ngl--) {
        x.ngl = ngl;
        if (gpus_fit(m, &x, gpus, n_gpu, margin))
            return ngl;
    }
    return -1;
}
