/*
 * tune_report.c — the Markdown retuning log of a tuning run, from its
 * history: motivation and baseline, hardware, model, the search (space and
 * order), every trial with both scenarios, the context frontier, the
 * draft model's trade-off (generation against cold start, with and
 * without it), the interleaved decisions, removed flags, and the result;
 * tune_report_write stores it with its two plots (tune_plot.h) beside it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "gguf.h"
#include "tune_int.h"
#include "tune_plot.h"
#include "util.h"

static double num(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void cell(buf_t *md, double v, int decimals)
{
    if (isnan(v))
        buf_printf(md, " – |");
    else
        buf_printf(md, " %.*f |", decimals, v);
}

/* A recurrent or sliding-window model makes llama-server take context
 * checkpoints near the end of every prompt: they cost prefill (1.29× with
 * -ctxcp 0 on the H200, tests/fixtures/gpu/h200-tune-4) and buy prompt
 * reuse when a later request diverges inside a cached one, which fresh
 * benchmark prompts cannot show; so the tuner says so rather than
 * deciding it. */
static void md_checkpoints(const tune_setup_t *s, buf_t *md)
{
    if (!s->mi->n_layer_recurrent && !s->mi->n_layer_swa)
        return;
    const char *cp = args_get(s->args, s->n_args, ARG_CTX_CHECKPOINTS);
    buf_printf(md, "Context checkpoints: with %s layers, llama-server takes context checkpoints near the end of "
                   "every prompt (`-ctxcp`). They let it reuse a cached prompt when a later request diverges "
                   "inside it (a chat turn that re-renders the previous answer) and cost prefill: on an H200, a "
                   "~3,100-token prompt on Qwen3.5-35B-A3B's shape prefilled 1.29× faster with `-ctxcp 0`. ",
               s->mi->n_layer_recurrent ? "recurrent" : "sliding-window");
    bool dim = false;
    for (int d = 0; d < s->space.n_dims; d++)
        dim |= s->space.dims[d].kind == TUNE_DIM_CTXCP;
    if (s->obj.turn > 0)
        buf_printf(md, "This search weighed a chat's second turn (turn=%.2g: the tokens kept from the first turn and "
                       "the prefill of the rest, see *Second turn*)%s.\n\n",
                   s->obj.turn, dim ? ", and checkpoints were a dimension (`ctxcp`)" : "; `ctxcp` was not in the space");
    else
        buf_printf(md, "The scenarios here are fresh prompts, which cannot show what checkpoints save, so the "
                       "search leaves them as the role has them; `variet bench ROLE --scenario turn` measures it (a "
                       "chat's second turn: without checkpoints the whole conversation is prefilled again), and "
                       "`--objective ...,turn=W` weighs it in the search, with `ctxcp` a dimension. For a role "
                       "that serves single-shot prompts, add `-ctxcp 0` to its args and retune (the prune phase "
                       "keeps it only if it pays).\n\n");
    if (cp)
        buf_printf(md, "This role sets `-ctxcp %s`.\n\n", cp);
}

static void md_model(const tune_setup_t *s, const char *model_path, buf_t *md)
{
    const mi_t *m = s->mi;
    char a[32];
    /* parameters in B, or M for the tiny models (never "0.000 B") */
    double div = m->n_params >= 1000000000ull ? 1e9 : 1e6;
    const char *unit = div == 1e9 ? "B" : "M";
    buf_printf(md, "## Model\n\n`%s`: %s, %s, %.2f %s parameters (%.2f %s active), %u layers (%u full attention, %u "
                   "recurrent, %u sliding window), %u experts (%u used).\n\n",
               model_path, m->arch, fmt_bytes(m->file_size, a, sizeof a), (double)m->n_params / div, unit,
               (double)m->n_params_active / div, unit, m->n_layer, m->n_layer_attn, m->n_layer_recurrent,
               m->n_layer_swa, m->n_expert, m->n_expert_used);
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
    md_checkpoints(s, md);
}

static const char *sit_name(tune_situation_t s)
{
    return s == TUNE_SIT_HOST_EXPERTS ? "experts on the host (partial offload)"
           : s == TUNE_SIT_FULL_GPU   ? "everything on the GPUs"
                                      : "CPU only";
}

static void md_trials(const json_t *history, buf_t *md)
{
    json_t *tr = json_object_get(history, "trials"), *e;
    size_t i;
    buf_printf(md, "## Trials\n\nEvery load, in order. *gen*: short scenario (~%d-token prompt, 300 generated), median "
                   "(range) of its runs; *long prompt*: prefill of the long scenario (~3,100 tokens), the figure that "
                   "shows what ubatch and expert placement do to prompts; *short prompt*: the short scenario's prefill "
                   "(latency-dominated, for reference).\n\n"
                   "| # | phase | configuration | status | gen t/s | long prompt t/s | short prompt t/s | cold s | free "
                   "MiB | PP | planner headroom MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
               188);
    json_array_foreach(tr, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status")) ?: "?";
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
        const char *fp = json_string_value(json_object_get(json_object_get(e, "load"), "fit_placement"));
        buf_printf(md, "| %zu | %s | %s%s%s%s |", i + 1, json_string_value(json_object_get(e, "phase")) ?: "",
                   json_string_value(json_object_get(e, "label")) ?: "", fp ? " (fit: " : "", fp ? fp : "",
                   fp ? ")" : "");
        if (!strcmp(st, "ok") || !strcmp(st, "tight")) {
            buf_printf(md, " %s |", st);
            double g = num(e, "gen_tps");
            if (json_integer_value(json_object_get(e, "runs")) > 1)
                buf_printf(md, " %.2f (%.2f–%.2f) |", g, num(e, "gen_tps_min"), num(e, "gen_tps_max"));
            else
                buf_printf(md, isnan(g) ? " – |" : " %.2f (1 run, noise unknown) |", g);
            cell(md, num(e, "long_prompt_tps"), 0);
            cell(md, num(e, "prompt_tps"), 0);
        } else {
            buf_printf(md, " %s: %s | – | – | – |", st, json_string_value(json_object_get(e, "error")) ?: "");
        }
        double cold = num(e, "cold_start_s");
        cell(md, cold, 2);
        double fr = num(e, "free_mib");
        cell(md, fr, 0);
        json_t *pp = json_object_get(e, "pipeline_parallel");
        buf_printf(md, " %s | %s |\n", json_is_boolean(pp) ? (json_is_true(pp) ? "on" : "fell back") : "–", head);
    }
    buf_printf(md, "\n");
}

/* The picture each configuration with a projector encoded (the vision weight). */
static void md_vision(const json_t *history, buf_t *md)
{
    json_t *tr = json_object_get(history, "trials"), *e;
    size_t i, n = 0;
    json_array_foreach(tr, i, e) n += json_object_get(e, "vision") != NULL;
    if (!n)
        return;
    buf_printf(md, "## Vision\n\nOne chat with a generated picture per load: the projector's encode time "
                   "(llama-server's log), the image tokens and the time to the first token.\n\n"
                   "| # | configuration | picture px | image tokens | encode ms | TTFT ms |\n|---|---|---|---|---|---|\n");
    json_array_foreach(tr, i, e)
    {
        json_t *v = json_object_get(e, "vision");
        if (!v)
            continue;
        buf_printf(md, "| %zu | %s | %lld | %lld |", i + 1, json_string_value(json_object_get(e, "label")) ?: "",
                   (long long)json_integer_value(json_object_get(v, "image_px")),
                   (long long)json_integer_value(json_object_get(v, "image_tokens")));
        cell(md, num(e, "encode_ms"), 1);
        cell(md, num(v, "ttft_ms"), 1);
        buf_printf(md, "\n");
    }
    buf_printf(md, "\n");
}

/* A chat's second turn per load (the turn weight). */
static void md_turn(const json_t *history, buf_t *md)
{
    json_t *tr = json_object_get(history, "trials"), *e;
    size_t i, n = 0;
    json_array_foreach(tr, i, e) n += json_object_get(e, "turn") != NULL;
    if (!n)
        return;
    buf_printf(md, "## Second turn\n\nPer load, a chat's second turn after the long prompt with the prompt cache on "
                   "(`variet bench --scenario turn`): the tokens kept from the first turn and the prefill of the "
                   "rest. Without context checkpoints a recurrent or sliding-window model keeps none.\n\n"
                   "| # | configuration | kept tokens | prefill s |\n|---|---|---|---|\n");
    json_array_foreach(tr, i, e)
    {
        json_t *v = json_object_get(e, "turn");
        if (!v)
            continue;
        buf_printf(md, "| %zu | %s | %lld |", i + 1, json_string_value(json_object_get(e, "label")) ?: "",
                   (long long)json_integer_value(json_object_get(v, "cached")));
        cell(md, num(v, "prefill_s"), 3);
        buf_printf(md, "\n");
    }
    buf_printf(md, "\n");
}

/* Context frontier: for each context value, the best generation and long
 * prompt seen (screened configurations). */
static void md_frontier(const tune_setup_t *s, const json_t *history, buf_t *md)
{
    int cd = -1;
    for (int d = 0; d < s->space.n_dims; d++)
        if (s->space.dims[d].kind == TUNE_DIM_CTX)
            cd = d;
    if (cd < 0)
        return;
    buf_printf(md, "## Context ↔ prefill ↔ generation\n\nBest figures seen at each context (one slot each; larger "
                   "contexts take memory that experts or ubatch could have had):\n\n| context | best gen t/s | its "
                   "long prompt t/s | best long prompt t/s | configurations |\n|---|---|---|---|---|\n");
    const tune_dim_t *D = &s->space.dims[cd];
    for (int v = 0; v < D->n_values; v++) {
        char want[48];
        snprintf(want, sizeof want, "ctx=%s", D->values[v]);
        double bg = NAN, bgl = NAN, bl = NAN;
        int nc = 0;
        json_t *tr = json_object_get(history, "trials"), *e;
        size_t i;
        json_array_foreach(tr, i, e)
        {
            const char *lab = json_string_value(json_object_get(e, "label")) ?: "";
            const char *st = json_string_value(json_object_get(e, "status")) ?: "";
            const char *at = strstr(lab, want);
            if (!at || (at[strlen(want)] && at[strlen(want)] != ' ') || strcmp(st, "ok"))
                continue;
            nc++;
            double g = num(e, "gen_tps"), l = num(e, "long_prompt_tps");
            if (isnan(bg) || g > bg) {
                bg = g;
                bgl = l;
            }
            if (!isnan(l) && (isnan(bl) || l > bl))
                bl = l;
        }
        buf_printf(md, "| %s |", D->values[v]);
        cell(md, bg, 2);
        cell(md, bgl, 0);
        cell(md, bl, 0);
        buf_printf(md, " %d |\n", nc);
    }
    buf_printf(md, "\n");
}

/* A command line without the draft (-md, --spec-type, the draft length)
 * and without -fit off (what pins a varied point): what two configurations
 * that differ only in the draft share. */
static void strip_draft(const tune_setup_t *s, const char *key, char *out, size_t cap)
{
    static const char *const pairs[] = {"-md", "--spec-draft-model", "--model-draft", "--spec-type", "-fit", "--fit",
                                        "--spec-draft-n-max", "--draft-max", "--draft-n", "--draft", NULL};
    size_t k = 0;
    bool skip_next = false;
    for (const char *p = key; *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool drop = skip_next;
        skip_next = false;
        if (!drop)
            for (int i = 0; pairs[i]; i++)
                if (strlen(pairs[i]) == len && !memcmp(p, pairs[i], len))
                    drop = skip_next = true;
        if (!drop && s->draft_max_opt[0] && strlen(s->draft_max_opt) == len && !memcmp(p, s->draft_max_opt, len))
            drop = skip_next = true;
        if (!drop && k + len + 2 < cap) {
            if (k)
                out[k++] = ' ';
            memcpy(out + k, p, len);
            k += len;
        }
        p += len;
        while (*p == ' ')
            p++;
    }
    out[k < cap ? k : cap - 1] = 0;
}

/* One configuration's loads, by command line (at most 16). */
typedef struct {
    const char *key, *label;
    double gen[16], lp[16], cold[16];
    int n;
    tune_meas_t est; /* medians */
    bool draft;
} dcfg_t;

static void dcfg_estimate(dcfg_t *c)
{
    tune_meas_t *m = &c->est;
    memset(m, 0, sizeof *m);
    m->status = TUNE_OK;
    double v[16];
    int k = 0;
    memcpy(v, c->gen, sizeof v);
    m->gen = c->n ? tune__median(v, c->n) : NAN;
    for (int i = 0; i < c->n; i++)
        if (!isnan(c->lp[i]))
            v[k++] = c->lp[i];
    m->lprompt = k ? tune__median(v, k) : NAN;
    memcpy(v, c->cold, sizeof v);
    m->cold_s = c->n ? tune__median(v, c->n) : NAN;
}

/* The draft model's trade-off: every configuration measured both with and
 * without it, side by side (generation, long prompt, cold start, the
 * objective's score), and the best of each side, so that a faster
 * generation bought with a slower start is decided by the stated
 * objective and can be read off here. */
static void md_draft(const tune_setup_t *s, const json_t *history, buf_t *md)
{
    bool dim = false;
    for (int d = 0; d < s->space.n_dims; d++)
        dim |= s->space.dims[d].kind == TUNE_DIM_DRAFT;
    if (!dim)
        return;
    json_t *tr = json_object_get(history, "trials"), *e;
    size_t i;
    tune_meas_t base;
    bool have_base = false;
    dcfg_t *cs = xcalloc(json_array_size(tr) + 1, sizeof *cs); /* freed below */
    int nc = 0;
    json_array_foreach(tr, i, e)
    {
        const char *lab = json_string_value(json_object_get(e, "label")) ?: "";
        const char *st = json_string_value(json_object_get(e, "status")) ?: "";
        if (strcmp(st, "ok"))
            continue;
        tune_meas_t m;
        tune__meas_from_record(e, &m);
        if (!have_base && !strcmp(json_string_value(json_object_get(e, "phase")) ?: "", "baseline")) {
            base = m;
            have_base = true;
        }
        const char *key = json_string_value(json_object_get(e, "key")) ?: "";
        bool on = strstr(key, "-md ") != NULL || strstr(key, "--spec-draft-model ") || strstr(key, "--model-draft ");
        int k = 0;
        while (k < nc && strcmp(cs[k].key, key))
            k++;
        if (k == nc) {
            cs[nc].key = key;
            cs[nc].label = lab;
            cs[nc++].draft = on;
        }
        if (cs[k].n < 16) {
            cs[k].gen[cs[k].n] = m.gen;
            cs[k].lp[cs[k].n] = m.lprompt;
            cs[k].cold[cs[k].n++] = m.cold_s;
        }
    }
    tune_objective_t o = s->obj; /* with the floors' reference as the search had it */
    json_t *rf = json_object_get(history, "reference");
    o.ref_gen = rf ? num(rf, "gen") : 0;
    o.ref_lprompt = rf ? num(rf, "long_prompt") : 0;
    buf_printf(md, "## Draft model\n\nThe role's draft model against none: it drafts tokens the model then "
                   "verifies (generation), and it is loaded too (memory, cold start). Scores by the objective "
                   "(gen=%.2g, prompt=%.2g, cold=%.2g), against the baseline; medians of each configuration's "
                   "loads.\n\n",
               s->obj.gen, s->obj.prompt, s->obj.cold);
    for (int k = 0; k < nc; k++)
        dcfg_estimate(&cs[k]);
    if (!have_base || !nc) {
        buf_printf(md, "No configuration with and without it ran.\n\n");
        free(cs);
        return;
    }
    buf_printf(md, "Configurations that differ only in the draft (and the draft length), side by side:\n\n"
                   "| with / without the draft | gen t/s on / off | on ÷ off | long prompt t/s on / off | cold s on / "
                   "off | on ÷ off | score on / off |\n|---|---|---|---|---|---|---|\n");
    int pairs = 0;
    for (int a = 0; a < nc; a++) {
        if (!cs[a].draft)
            continue;
        char sa[1024], sb[1024];
        strip_draft(s, cs[a].key, sa, sizeof sa);
        for (int b = 0; b < nc; b++) {
            if (cs[b].draft)
                continue;
            strip_draft(s, cs[b].key, sb, sizeof sb);
            if (strcmp(sa, sb))
                continue;
            const tune_meas_t *A = &cs[a].est, *B = &cs[b].est;
            char la[24] = "–", lb[24] = "–"; /* the long prompt is not measured on every load */
            if (!isnan(A->lprompt))
                snprintf(la, sizeof la, "%.0f", A->lprompt);
            if (!isnan(B->lprompt))
                snprintf(lb, sizeof lb, "%.0f", B->lprompt);
            buf_printf(md, "| %s / %s | %.2f / %.2f | %+.1f%% | %s / %s | %.2f / %.2f | %+.1f%% | %.3f / %.3f |\n",
                       cs[a].label, cs[b].label, A->gen, B->gen, (A->gen / B->gen - 1) * 100, la, lb, A->cold_s,
                       B->cold_s, (A->cold_s / B->cold_s - 1) * 100, tune_score(&o, &base, A),
                       tune_score(&o, &base, B));
            pairs++;
        }
    }
    if (!pairs)
        buf_printf(md, "| (no configuration ran both ways) | | | | | | |\n");
    int bon = -1, boff = -1;
    for (int k = 0; k < nc; k++) {
        double sc = tune_score(&o, &base, &cs[k].est);
        int *b = cs[k].draft ? &bon : &boff;
        if (*b < 0 || sc > tune_score(&o, &base, &cs[*b].est))
            *b = k;
    }
    buf_printf(md, "\n");
    if (bon >= 0 && boff >= 0) {
        const tune_meas_t *A = &cs[bon].est, *B = &cs[boff].est;
        double sa = tune_score(&o, &base, A), sb = tune_score(&o, &base, B);
        buf_printf(md, "Best with the draft: `%s`, gen %.2f t/s, cold start %.2f s, score %.3f. Best without: `%s`, "
                       "gen %.2f t/s, cold start %.2f s, score %.3f. The draft changes generation by %+.1f%% and the "
                       "cold start by %+.1f%% (its cold-start score by %+.1f%%); by this objective the draft %s.\n\n",
                   cs[bon].label, A->gen, A->cold_s, sa, cs[boff].label, B->gen, B->cold_s, sb,
                   (A->gen / B->gen - 1) * 100, (A->cold_s / B->cold_s - 1) * 100, (B->cold_s / A->cold_s - 1) * 100,
                   sa > sb ? "pays (on)" : "does not pay (off)");
    }
    if (s->obj.cold <= 0)
        buf_printf(md, "Cold start is not in this objective: the draft's longer load does not count against it "
                       "(`--objective gen=1,cold=W` weighs it).\n\n");
    free(cs);
}

/* The Result table's row of llama.cpp's own placement: medians over its loads. */
static void ref_row(buf_t *md, const json_t *trials, const char *key)
{
    double g[64], l[64];
    int ng = 0, nl = 0;
    size_t i;
    json_t *e;
    json_array_foreach(trials, i, e)
    {
        const char *k = json_string_value(json_object_get(e, "key"));
        if (!key || !k || strcmp(k, key) || strcmp(json_string_value(json_object_get(e, "status")) ?: "", "ok"))
            continue;
        if (ng < 64 && num(e, "gen_tps") > 0)
            g[ng++] = num(e, "gen_tps");
        if (nl < 64 && num(e, "long_prompt_tps") > 0)
            l[nl++] = num(e, "long_prompt_tps");
    }
    if (ng)
        buf_printf(md, "| llama.cpp's own placement (median of its %d loads) | %.2f | %.0f |\n", ng,
                   tune__median(g, ng), nl ? tune__median(l, nl) : NAN);
}

/* The log; with plots (the file name stem of the SVGs beside it) a Plots
 * section links them. */
static char *report_md(const tune_setup_t *s, const json_t *history, const tune_result_t *res, const char *model_path,
                       const char *hw_md, double old_tps, const char *result_json, const char *plots)
{
    tune_setup_t searched;
    if (res->from_reference) { /* the space the search ran, built from llama.cpp's own placement */
        searched = *s;
        searched.space = res->space;
        s = &searched;
    }
    buf_t md;
    buf_init(&md, 0);
    buf_append(&md, "", 0);
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M", &tmv);
    char *old_args = tune_join_args(s->args, s->n_args);
    buf_printf(&md, "# Retuning `%s` (%s)\n\n", s->role, stamp);
    buf_printf(&md, "## Motivation and baseline\n\nObjective: weights gen=%.2g (short-scenario generation t/s), "
                    "prompt=%.2g (long-scenario prefill t/s, ~3,100-token prompt), cold=%.2g (cold start), "
                    "vision=%.2g (a picture's encode time), turn=%.2g (a chat's second turn), each relative to the "
                    "role's current arguments `%s`",
               s->obj.gen, s->obj.prompt, s->obj.cold, s->obj.vision, s->obj.turn, old_args);
    json_t *tr = json_object_get(history, "trials"), *e, *before = NULL;
    size_t i;
    json_array_foreach(tr, i, e) if (!before && !strcmp(json_string_value(json_object_get(e, "phase")) ?: "", "baseline"))
        before = e;
    if (before && !strcmp(json_string_value(json_object_get(before, "status")) ?: "", "ok"))
        buf_printf(&md, ", measured at %.2f gen t/s and %.0f long-prompt t/s", num(before, "gen_tps"),
                   num(before, "long_prompt_tps"));
    else if (before)
        buf_printf(&md, ", which did not run (%s: %s)", json_string_value(json_object_get(before, "status")) ?: "",
                   json_string_value(json_object_get(before, "error")) ?: "");
    json_t *ref = json_object_get(history, "reference");
    if (ref)
        buf_printf(&md, "; llama.cpp's own placement for it (`%s`: what the tuner varies left to --fit and "
                        "llama-server's defaults) measured at %.2f gen t/s and %.0f long-prompt t/s",
                   json_string_value(json_object_get(ref, "args")) ?: "", num(ref, "gen"), num(ref, "long_prompt"));
    if (s->obj.gen_floor > 0 || s->obj.prompt_floor > 0) {
        buf_printf(&md, ". Floors, against %s (each %% short costs about %d%% of the score):",
                   ref ? "llama.cpp's own placement" : "the baseline", TUNE_FLOOR_STEEPNESS);
        if (s->obj.gen_floor > 0)
            buf_printf(&md, " generation ≥ %.2f×", s->obj.gen_floor);
        if (s->obj.prompt_floor > 0)
            buf_printf(&md, "%s long prompt ≥ %.2f×", s->obj.gen_floor > 0 ? "," : "", s->obj.prompt_floor);
    }
    buf_printf(&md, "; recorded measured_tps %.2f. Situation: %s. Free memory to keep after the runs: %lld MiB "
                    "(measured).\n\n",
               old_tps, sit_name(s->situation), (long long)s->min_free_mib);
    if (res->stop_reason[0])
        buf_printf(&md, "**The search ended early: %s.**\n\n", res->stop_reason);
    buf_printf(&md, "%s", hw_md ? hw_md : "");
    md_model(s, model_path, &md);
    buf_printf(&md,
               "## Search\n\nPhases: baseline, screen (coordinate descent in this order, %s per value), pairs (each dimension's two best other values, within 10%% of its best, combined two at a time across dimensions), "
               "measure (the best %d again, %d runs of each scenario), confirm (the top two interleaved A B A B, "
               "each a fresh load), prune (extra flags, interleaved)%s. Dimensions:\n\n",
               s->obj.prompt > 0 || s->obj.prompt_floor > 0 ? "one short and two long runs" : "one short run", 3,
               s->runs,
               ref ? ", reference (the winner against llama.cpp's own placement: one adjacent pair of fresh loads, "
                     "a second before llama.cpp's own replaces it)"
                   : "");
    for (int d = 0; d < s->space.n_dims; d++) {
        buf_printf(&md, "- `%s`:", s->space.dims[d].name);
        for (int v = 0; v < s->space.dims[d].n_values; v++)
            buf_printf(&md, " %s", s->space.dims[d].values[v]);
        buf_printf(&md, "\n");
    }
    if (res->from_reference) {
        const char *why = json_string_value(json_object_get(json_object_get(history, "start"), "why"));
        buf_printf(&md, "\nThe search started from llama.cpp's own placement (%s), not from the role's values: "
                        "`default` is llama-server's own value and `ncmoe=fit` its placement with the tuner's "
                        "margin.\n",
                   why ? why : "it measured better");
    }
    buf_printf(&md, "\n%d loads in %.0f s; %d configurations ruled out by the planner without a launch.\n\n",
               res->trials, res->elapsed_s, res->skipped);
    md_trials(history, &md);
    md_vision(history, &md);
    md_turn(history, &md);
    md_frontier(s, history, &md);
    md_draft(s, history, &md);
    if (plots)
        buf_printf(&md,
                   "## Plots\n\n![t/s per trial](%s-trials.svg)\n\n"
                   "![context, prefill and generation](%s-frontier.svg)\n\n",
                   plots, plots);
    json_t *dec = json_object_get(history, "decisions");
    if (json_array_size(dec)) {
        buf_printf(&md, "## Decisions\n\n| between | and | paired ratio | pick |\n|---|---|---|---|\n");
        json_array_foreach(dec, i, e)
        {
            buf_printf(&md, "| %s | %s |", json_string_value(json_object_get(e, "a")) ?: "",
                       json_string_value(json_object_get(e, "b")) ?: "");
            cell(&md, num(e, "ratio"), 3);
            buf_printf(&md, " %s |\n", json_string_value(json_object_get(e, "pick")) ?: "");
        }
        buf_printf(&md, "\n");
    }
    buf_printf(&md, "## Removed flags\n\n");
    json_t *pr = json_object_get(history, "pruned");
    if (json_array_size(pr)) {
        buf_printf(&md, "| flag | paired ratio with / without | decision |\n|---|---|---|\n");
        json_array_foreach(pr, i, e)
        {
            buf_printf(&md, "| `%s` |", json_string_value(json_object_get(e, "flag")) ?: "");
            cell(&md, num(e, "ratio"), 3);
            buf_printf(&md, " %s |\n", json_string_value(json_object_get(e, "decision")) ?: "");
        }
        buf_printf(&md, "\n");
    } else {
        buf_printf(&md, "The role had no extra flags to try removing.\n\n");
    }
    buf_printf(&md, "## Result\n\n");
    if (res->ok) {
        buf_printf(&md, "```json\n\"%s\": %s\n```\n\n", s->role, result_json ? result_json : "{}");
        buf_printf(&md, "| | gen t/s | long prompt t/s |\n|---|---|---|\n");
        if (before && !strcmp(json_string_value(json_object_get(before, "status")) ?: "", "ok"))
            buf_printf(&md, "| before | %.2f | %.0f |\n", num(before, "gen_tps"), num(before, "long_prompt_tps"));
        if (ref)
            ref_row(&md, tr, json_string_value(json_object_get(ref, "args")));
        buf_printf(&md, "| after (median of the confirmation loads) | %.2f | %.0f |\n\n", res->measured_tps,
                   res->long_prompt_tps);
        if (!isnan(res->vs_ref_gen) && res->vs_ref_gen > 0)
            buf_printf(&md, "The search's best against llama.cpp's own placement, paired loads of the final "
                            "comparison: generation ×%.3f, long prompt ×%.3f%s.\n\n",
                       res->vs_ref_gen, res->vs_ref_lprompt,
                       res->ref_won ? "; llama.cpp's own measured better by the objective and is the result" : "");
        buf_printf(&md, "measured_tps: %.2f → %.2f\n", old_tps, res->measured_tps);
    } else {
        buf_printf(&md, "No configuration ran successfully; the role is unchanged.\n");
    }
    free(old_args);
    return md.data;
}

char *tune_report_md(const tune_setup_t *s, const json_t *history, const tune_result_t *res, const char *model_path,
                     const char *hw_md, double old_tps, const char *result_json)
{
    return report_md(s, history, res, model_path, hw_md, old_tps, result_json, NULL);
}

int tune_report_write(const tune_setup_t *s, const json_t *history, const tune_result_t *res, const char *model_path,
                      const char *hw_md, double old_tps, const char *result_json, const char *dir, const char *stamp,
                      char **md_path, char *err, size_t errlen)
{
    *md_path = NULL;
    char *stem = xasprintf("tune-%s-%s", s->role, stamp); /* owned here, like the paths and texts below */
    char *svg[2] = {tune_plot_trials(history), tune_plot_frontier(history)};
    static const char *const kind[2] = {"trials", "frontier"};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        char *path = xasprintf("%s/%s-%s.svg", dir, stem, kind[k]);
        rc = file_write_atomic(path, svg[k], strlen(svg[k]), err, errlen);
        free(path);
    }
    if (!rc) {
        char *md = report_md(s, history, res, model_path, hw_md, old_tps, result_json, stem);
        *md_path = xasprintf("%s/%s.md", dir, stem);
        rc = file_write_atomic(*md_path, md, strlen(md), err, errlen);
        free(md);
    }
    free(svg[0]);
    free(svg[1]);
    free(stem);
    return rc;
}
