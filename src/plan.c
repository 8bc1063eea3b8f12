/*
 * plan.c — memory prediction per device (see plan.h for the rules and
 * which parts are exact, fitted or estimated).
 *
 * Compute-buffer fit (llama.cpp b11669, ggml allocator peak per graph):
 *   mask      = n_ctx × n_ubatch × 2 B (flash attention) or 4 B (without)
 *   act       = n_ubatch × 4 B × (2·n_embd + 3.7·max_width)
 *               + n_ubatch × 2.2 B × (n_embd + max_width) with quantized weights on the CPU
 *   no FA     + n_ctx × n_ubatch × n_head × 4 B (the KQ matrix)
 *   device holding layers:   mask + act
 *   host when all offloaded: mask + 8 B × n_embd × n_ubatch
 * fitted on the H100 qwen35moe logs (72.02 / 324.02 / 528.06 MiB GPU,
 * 12.02 / 264.02 / 288.07 MiB host) and on CPU runs of the tiny presets
 * (tests/test_e2e_plan.c keeps checking it).
 */
#include "plan.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "gguf.h"
#include "util.h"

#define MIB (1024ull * 1024ull)

void plan_opts_default(plan_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->ngl = -1;
    o->n_seq = 4;
    o->n_ubatch = 512;
    o->n_batch = 2048;
    o->type_k = o->type_v = GGUF_TT_F16;
    o->flash_attn = -1;
    o->mmproj_offload = true;
}

static int cache_type(const char *v, uint32_t *out)
{
    int t = gguf_type_from_name(v);
    if (t < 0)
        return -1;
    *out = (uint32_t)t;
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
        if (!strcmp(s, "auto") || !strcmp(s, "all"))
            o->ngl = -1;
        else if (args_get_long(argv, n, ARG_NGL, &v))
            o->ngl = v < 0 ? -1 : v;
    }
    if (args_get_long(argv, n, ARG_CTX_SIZE, &v))
        o->n_ctx = v > 0 ? (uint64_t)v : 0;
    if (args_get_long(argv, n, ARG_PARALLEL, &v))
        o->n_seq = v > 0 ? (uint32_t)v : 4;
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
    if ((s = args_get(argv, n, ARG_SPLIT_MODE)) && !strcmp(s, "none"))
        o->split_none = true;
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
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(argv[i], "-nkvo") || !strcmp(argv[i], "--no-kv-offload"))
            o->no_kv_offload = true;
    if (args_find(argv, n, ARG_NO_MMPROJ_OFFLOAD) >= 0)
        o->mmproj_offload = false;
    return 0;
}

static uint64_t pad256(uint64_t v) { return (v + 255) / 256 * 256; }

uint64_t plan_compute_bytes(const mi_t *m, const plan_opts_t *o, uint64_t n_ctx, bool holds_layers, bool host)
{
    uint64_t ub = o->n_ubatch ? o->n_ubatch : 512;
    bool fa = o->flash_attn != 0;
    bool attn = m->n_layer_attn + m->n_layer_swa > 0;
    uint64_t mask = attn ? n_ctx * ub * (fa ? 2 : 4) : 0;
    if (!holds_layers)
        return mask + 8ull * m->n_embd * ub;
    uint64_t act = (uint64_t)((double)ub * 4.0 * (2.0 * m->n_embd + 3.7 * m->max_width));
    if (m->quantized && host) /* CPU: activations converted to the weights' dot-product type in the graph */
        act += (uint64_t)((double)ub * 2.2 * (m->n_embd + m->max_width));
    uint64_t kq = (!fa && attn) ? n_ctx * ub * m->n_head * 4ull : 0;
    return mask + act + kq;
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

static void predict_core(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu,
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

    /* weights, KV, recurrent state by layer */
    uint64_t biggest_host_expert = 0;
    bool any_layer_gpu = false;
    for (uint32_t il = 0; il < m->n_layer; il++) {
        const mi_layer_t *L = &m->layers[il];
        int d = layer_device(m, o, cum, n_gpu, il);
        plan_dev_t *D = &out->dev[d];
        D->layers++;
        any_layer_gpu |= d > 0;
        bool exp_host = d > 0 && (o->cpu_moe || (int64_t)il < o->ncmoe);
        if (exp_host) {
            D->weights += L->bytes - L->exp_bytes;
            out->dev[0].weights += L->exp_bytes;
            if (L->exp_bytes > biggest_host_expert)
                biggest_host_expert = L->exp_bytes;
        } else {
            D->weights += L->bytes;
        }
        plan_dev_t *K = o->no_kv_offload ? &out->dev[0] : D;
        if (L->kind != MI_LAYER_RECURRENT) {
            mi_t one = *m; /* KV of this layer alone */
            one.n_layer = 1;
            one.layers = (mi_layer_t *)L;
            K->kv += mi_kv_bytes(&one, n_ctx, o->type_k, o->type_v);
        } else {
            K->rs += (m->rs_r_elems + m->rs_s_elems) * 4ull * (o->n_seq ? o->n_seq : 1);
        }
    }
    int od = layer_device(m, o, cum, n_gpu, m->n_layer);
    out->dev[od].weights += m->bytes_output;
    out->dev[od].output_layer = true;
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
    bool host_layers = out->dev[0].layers > 0 || n_gpu == 0;
    out->dev[0].compute = plan_compute_bytes(m, o, n_ctx, host_layers, true);
    for (int d = 1; d < out->n_dev; d++) {
        plan_dev_t *D = &out->dev[d];
        if (!D->layers && !D->output_layer)
            continue;
        D->compute = plan_compute_bytes(m, o, n_ctx, true, false);
        if (biggest_host_expert) /* host experts are copied in for prompt batches */
            D->compute += biggest_host_expert * 2 / 3;
        bool fa = o->flash_attn != 0;
        if (fa && D->layers && (gguf_type_block(o->type_k) > 1 || gguf_type_block(o->type_v) > 1))
            /* quantized cache: one layer's K and V converted to f16 */
            D->compute += n_ctx * (uint64_t)m->n_head_kv * (m->head_dim_k + m->head_dim_v) * 2ull;
    }
    /* pipeline parallelism: several GPUs, everything offloaded, KV with it */
    int gpus_used = 0;
    for (int d = 1; d < out->n_dev; d++)
        gpus_used += out->dev[d].layers > 0;
    out->pp = gpus_used > 1 && out->dev[0].layers == 0 && !o->no_kv_offload && !o->ncmoe && !o->cpu_moe &&
              !o->split_none;
    if (out->pp) /* 4 copies of the graph inputs (GGML_SCHED_MAX_COPIES); estimate */
        out->pp_extra = 3ull * (n_ctx * (o->n_ubatch ? o->n_ubatch : 512) * 2ull +
                                (uint64_t)m->n_embd * (o->n_ubatch ? o->n_ubatch : 512) * 4ull);

    /* mmproj: first GPU unless --no-mmproj-offload */
    if (o->mmproj_bytes) {
        int d = (o->mmproj_offload && n_gpu) ? 1 : 0;
        out->dev[d].mmproj = o->mmproj_bytes + o->mmproj_bytes / 3; /* weights + compute (estimate) */
    }

    /* verdict */
    out->verdict = PLAN_FITS;
    bool unknown = false;
    for (int d = 0; d < out->n_dev; d++) {
        plan_dev_t *D = &out->dev[d];
        D->total = D->weights + D->kv + D->rs + D->compute + D->output + D->mmproj;
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
                uint64_t parts[6] = {D->weights, D->kv, D->rs, D->compute, D->output, D->mmproj};
                static const char *const names[6] = {"weights", "KV cache", "recurrent state",
                                                     "compute buffer", "output buffer", "mmproj"};
                int best = 0;
                for (int k = 1; k < 6; k++)
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

void plan_predict(const mi_t *m, const plan_opts_t *o, const plan_gpu_t *gpus, int n_gpu, int64_t host_free_mib,
                  uint64_t margin, plan_t *out)
{
    predict_core(m, o, gpus, n_gpu, host_free_mib, margin, out);
    if (out->verdict != PLAN_NO_FIT)
        return;
    plan_t t;
    plan_opts_t x;
    /* 1. smaller context (multiples of 4096, not below 4096) */
    for (uint64_t c = (out->n_ctx / 4096) * 4096; c >= 4096 && out->n_suggest < PLAN_MAX_SUGGEST; c -= 4096) {
        if (c >= out->n_ctx)
            continue;
        x = *o;
        x.n_ctx = c;
        predict_core(m, &x, gpus, n_gpu, host_free_mib, margin, &t);
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
        x = *o;
        x.type_k = x.type_v = kvq[k];
        if (x.flash_attn == 0)
            x.flash_attn = 1; /* llama.cpp needs flash attention for a quantized V cache */
        predict_core(m, &x, gpus, n_gpu, host_free_mib, margin, &t);
        if (fits(&t)) {
            snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0], "-ctk %s -ctv %s%s", gguf_type_name(kvq[k]),
                     gguf_type_name(kvq[k]), o->flash_attn == 0 ? " -fa on" : "");
            break;
        }
    }
    /* 3. experts of more layers on the host */
    if (m->n_expert && !o->cpu_moe && n_gpu) {
        for (int64_t nc = o->ncmoe + 1; nc <= (int64_t)m->n_layer && out->n_suggest < PLAN_MAX_SUGGEST; nc++) {
            x = *o;
            x.ncmoe = nc;
            predict_core(m, &x, gpus, n_gpu, host_free_mib, margin, &t);
            if (fits(&t)) {
                snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0],
                         "-ncmoe %lld (experts of the first %lld layers on the host)", (long long)nc, (long long)nc);
                break;
            }
        }
    }
    /* 4. fewer layers on the GPUs */
    if (n_gpu) {
        int64_t full = (int64_t)m->n_layer + 1;
        for (int64_t ngl = (o->ngl < 0 ? full : o->ngl) - 1; ngl >= 0 && out->n_suggest < PLAN_MAX_SUGGEST; ngl--) {
            x = *o;
            x.ngl = ngl;
            predict_core(m, &x, gpus, n_gpu, host_free_mib, margin, &t);
            if (fits(&t)) {
                snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0], "-ngl %lld (%lld of %lld layers on GPUs)",
                         (long long)ngl, (long long)ngl, (long long)full);
                break;
            }
        }
    }
    /* 5. move the split toward free memory */
    if (n_gpu > 1 && o->n_ts && out->n_suggest < PLAN_MAX_SUGGEST) {
        x = *o;
        x.n_ts = 0;
        predict_core(m, &x, gpus, n_gpu, host_free_mib, margin, &t);
        if (fits(&t)) {
            char ts[128] = "";
            size_t l = 0;
            for (int g = 0; g < n_gpu; g++)
                l += (size_t)snprintf(ts + l, sizeof ts - l, "%s%lld", g ? "," : "", (long long)gpus[g].free_mib);
            snprintf(out->suggest[out->n_suggest++], sizeof out->suggest[0], "-ts %s (split by free memory)", ts);
        }
    }
}
