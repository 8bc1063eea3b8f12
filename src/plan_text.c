/*
 * plan_text.c — the planner's results as people read them: the per-device
 * table `variet plan` prints (and `variet init` beside each role it writes),
 * and the "--gpus 24000,24000" notation for the free memory to plan for.
 * Pure: text goes into a caller's buffer.
 */
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "plan.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

static double mib(uint64_t b) { return (double)b / MIB; }

void plan_format(buf_t *b, const mi_t *m, const plan_opts_t *o, const plan_t *p, int64_t margin_mib)
{
    uint64_t margin = (uint64_t)margin_mib << 20;
    buf_printf(b,
               "  %s, %u layers (%u attention, %u recurrent), context %llu, %u sequences, ubatch %u, KV %s/%s, "
               "flash attention %s\n",
               m->arch, m->n_layer, m->n_layer_attn + m->n_layer_swa, m->n_layer_recurrent,
               (unsigned long long)p->n_ctx, o->n_seq, o->n_ubatch, gguf_type_name(o->type_k),
               gguf_type_name(o->type_v), o->flash_attn == 1 ? "on" : o->flash_attn == 0 ? "off" : "auto");
    if (m->warn[0])
        buf_printf(b, "  warning: %s\n", m->warn);
    /* the companions the prediction counts */
    if (o->mmproj_mi) {
        plan_mmproj_t mp;
        plan_mmproj(o->mmproj_mi, o, &mp);
        buf_printf(b, "  projector: %s, %.2f MiB weights + %.2f MiB compute (warmup image %u px, %llu patches), on %s\n",
                   o->mmproj_mi->projector, mib(mp.weights), mib(mp.compute), mp.warmup_px,
                   (unsigned long long)mp.patches, p->dev[plan_mmproj_device(o, p->n_dev - 1)].name);
    }
    if (o->draft_mi) {
        plan_gpu_t gpus[PLAN_MAX_GPU];
        int n_gpu = 0;
        for (int d = 1; d < p->n_dev && n_gpu < PLAN_MAX_GPU; d++, n_gpu++) {
            snprintf(gpus[n_gpu].name, sizeof gpus[n_gpu].name, "%s", p->dev[d].name);
            gpus[n_gpu].free_mib = p->dev[d].free_mib;
        }
        plan_t dp;
        plan_draft(o, gpus, n_gpu, &dp);
        buf_printf(b, "  draft: %s, %u layers, context %llu, KV %s/%s, %lld of %u layers on GPUs\n", o->draft_mi->arch,
                   o->draft_mi->n_layer, (unsigned long long)dp.n_ctx, gguf_type_name(o->draft_type_k),
                   gguf_type_name(o->draft_type_v), (long long)dp.ngl, o->draft_mi->n_layer + 1);
    }
    if (p->fit.status != PLAN_FIT_OFF)
        buf_printf(b, "  llama-server --fit: %s%s%s%s%s%s\n", plan_fit_status_name(p->fit.status),
                   p->fit.reason[0] ? " (" : "", p->fit.reason, p->fit.reason[0] ? ")" : "",
                   p->fit.args[0] ? ", loads as: " : "", p->fit.args);
    buf_printf(b, "  %-8s %6s %10s %10s %9s %9s %9s %8s %8s %10s %10s %10s\n", "device", "layers", "weights", "KV",
               "RS", "compute", "output", "mmproj", "draft", "total", "free", "headroom");
    for (int d = 0; d < p->n_dev; d++) {
        const plan_dev_t *D = &p->dev[d];
        char fr[32] = "?", hr[32] = "?";
        if (D->free_mib >= 0) {
            snprintf(fr, sizeof fr, "%lld", (long long)D->free_mib);
            snprintf(hr, sizeof hr, "%.0f", (double)D->free_mib - mib(D->total) - (d ? mib(margin) : 0));
        }
        buf_printf(b, "  %-8s %4d%s %10.2f %10.2f %9.2f %9.2f %9.2f %8.2f %8.2f %10.2f %10s %10s\n", D->name,
                   D->layers, D->output_layer ? "+o" : "  ", mib(D->weights), mib(D->kv), mib(D->rs),
                   mib(D->compute), mib(D->output), mib(D->mmproj), mib(D->draft), mib(D->total), fr, hr);
    }
    buf_printf(b, "  (MiB; +o: holds the output layer; GPU headroom after a %lld MiB margin)\n",
               (long long)margin_mib);
    if (p->pp)
        buf_printf(b, "  pipeline parallelism expected: about %.0f MiB more compute per GPU (estimate)\n",
                   mib(p->pp_extra));
    buf_printf(b, "verdict: %s", plan_verdict_name(p->verdict));
    if (p->over_dev >= 0)
        buf_printf(b, " — %s needs %.0f MiB, %lld MiB free; largest part: %s", p->dev[p->over_dev].name,
                   mib(p->dev[p->over_dev].total) + (p->over_dev ? (double)margin_mib : 0),
                   (long long)p->dev[p->over_dev].free_mib, p->over_what);
    buf_printf(b, "\n");
    for (int k = 0; k < p->n_suggest; k++)
        buf_printf(b, "  would fit with: %s\n", p->suggest[k]);
}

int plan_parse_gpus(const char *s, plan_gpu_t *gpus, int *n_gpu, char *err, size_t errlen)
{
    *n_gpu = 0;
    const char *p = s;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        int64_t v;
        if (*n_gpu == PLAN_MAX_GPU) {
            snprintf(err, errlen, "at most %d GPUs", PLAN_MAX_GPU);
            return -1;
        }
        snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item ? len : sizeof item - 1), p);
        if (len >= sizeof item || !parse_i64(item, 0, 1 << 30, &v)) {
            snprintf(err, errlen, "wants free MiB per GPU like 24000,24000; got '%.*s'", (int)(len > 40 ? 40 : len),
                     p);
            return -1;
        }
        snprintf(gpus[*n_gpu].name, sizeof gpus[*n_gpu].name, "CUDA%d", *n_gpu);
        gpus[(*n_gpu)++].free_mib = v;
        p = comma ? comma + 1 : NULL;
    }
    if (!*n_gpu) {
        snprintf(err, errlen, "wants free MiB per GPU like 24000,24000; got nothing");
        return -1;
    }
    return 0;
}
