/*
 * tune_trial.c — one real tuning load: llama-server started with a
 * configuration's args, warmed up, the short scenario (generation) and the
 * long one (a ~3,100-token prompt: prefill) measured as often as asked,
 * the free GPU memory read after the runs (NVML, through hw), stopped.
 * Prompts are sized once with the first server's tokenizer and reused, so
 * every configuration sees the same text. A configuration with a
 * projector (--mmproj) also answers one chat carrying the same generated
 * picture; its encode ms (llama-server's log) feeds the vision weight.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "bench.h"
#include "hw.h"
#include "png.h"
#include "proc.h"
#include "tune.h"
#include "util.h"

void tune_trial_free(tune_trial_t *t)
{
    free(t->short_prompt);
    free(t->long_prompt);
    free(t->image_uri);
    t->short_prompt = t->long_prompt = t->image_uri = NULL;
}

static void fill_load(json_t *rec, const loadlog_t *rep, double cold)
{
    json_t *load = json_object();
    json_object_set_new(load, "cold_start_s", json_real(round(cold * 100) / 100));
    if (rep->pipeline_parallel >= 0)
        json_object_set_new(load, "pipeline_parallel", json_boolean(rep->pipeline_parallel));
    json_t *devs = json_array();
    for (int d = 0; d < rep->n_dev; d++)
        json_array_append_new(devs, json_pack("{s:s,s:f,s:f,s:f,s:f}", "device", rep->dev[d].name, "model_mib",
                                              rep->dev[d].model_mib, "kv_mib", rep->dev[d].kv_mib, "rs_mib",
                                              rep->dev[d].rs_mib, "compute_mib", rep->dev[d].compute_mib));
    json_object_set_new(load, "devices", devs);
    json_object_set_new(load, "n_ctx", json_integer(rep->n_ctx));
    json_object_set_new(load, "n_ubatch", json_integer(rep->n_ubatch));
    json_object_set_new(load, "flash_attn", json_string(rep->flash_attn));
    char fp[160];
    if (loadlog_fit_placement(rep, fp, sizeof fp)) /* what --fit chose (ncmoe=fit, or the role's own fit) */
        json_object_set_new(load, "fit_placement", json_string(fp));
    json_object_set_new(rec, "load", load);
}

/* Up to `runs` (at most 16) streamed runs of one prompt into s, stopping
 * early on a stop request; *n the runs made. 0, or -1 with err. */
static int scenario_runs(const tune_trial_t *t, const char *base, const char *prompt, int n_predict, int runs,
                         bench_sample_t *s, int *n, char *err, size_t errlen)
{
    *n = 0;
    for (int k = 0; k < runs && k < 16 && prompt && !(t->stop && *t->stop); k++) {
        if (bench_run(base, NULL, prompt, n_predict, &s[*n], err, errlen))
            return -1;
        (*n)++;
    }
    return 0;
}

int tune_trial_measure(void *ud, char *const *args, size_t n, const tune_req_t *req, tune_meas_t *out, json_t *rec)
{
    tune_trial_t *t = ud;
    char err[512];
    t->n++;
    char *log = xasprintf("%s/tune-%s-trial-%d.log", t->log_dir, t->role, t->n);
    pid_t pid = 0;
    char *base = NULL;
    double cold = 0;
    loadlog_t rep;
    int rc = bench_spawn(t->exe, t->model, args, n, log, t->load_timeout_s, &pid, &base, &cold, &rep, err, sizeof err);
    fill_load(rec, &rep, cold);
    out->pp = rep.pipeline_parallel;
    out->cold_s = cold;
    if (rc == -EINTR) {
        unlink(log);
        free(log);
        return -EINTR;
    }
    if (rc) {
        out->status = rep.oom ? TUNE_OOM : TUNE_FAILED;
        snprintf(out->error, sizeof out->error, "%s", err);
        json_object_set_new(rec, "log", json_string(log));
        free(log);
        return 0;
    }
    int result = 0;
    long ptok = 0;
    if (!t->short_prompt &&
        bench_prompt(base, NULL, bench_short.prompt_tokens, &t->short_prompt, &ptok, err, sizeof err)) {
        t->short_prompt = NULL;
        goto failed;
    }
    bool turn = req->turn && req->long_tokens > 0;
    if ((req->long_runs > 0 || turn) && req->long_tokens > 0 &&
        (!t->long_prompt || t->long_prompt_tokens != req->long_tokens)) {
        free(t->long_prompt);
        t->long_prompt = NULL;
        if (bench_prompt(base, NULL, req->long_tokens, &t->long_prompt, &ptok, err, sizeof err)) {
            t->long_prompt = NULL;
            goto failed;
        }
        t->long_prompt_tokens = req->long_tokens;
    }
    bench_sample_t warm, s[16];
    if (bench_run(base, NULL, t->short_prompt, 16, &warm, err, sizeof err))
        goto failed;
    int ns = 0, nl = 0;
    bench_sample_t l[16];
    if (scenario_runs(t, base, t->short_prompt, bench_short.n_predict, req->short_runs, s, &ns, err, sizeof err))
        goto failed;
    long drafted = 0, accepted = 0;
    for (int k = 0; k < ns; k++) {
        out->gen_runs[k] = s[k].gen_tps;
        drafted += s[k].draft_n > 0 ? s[k].draft_n : 0; /* -1: not reported (no draft) */
        accepted += s[k].draft_accepted > 0 ? s[k].draft_accepted : 0;
    }
    if (drafted) /* a draft model at work: what it proposed and what was kept */
        json_object_set_new(rec, "draft", json_pack("{s:I,s:I}", "drafted", (json_int_t)drafted, "accepted",
                                                    (json_int_t)accepted));
    if (ns) {
        bench_stats_t st;
        bench_stats(s, ns, &st);
        out->gen = st.med.gen_tps;
        out->gen_min = st.min.gen_tps;
        out->gen_max = st.max.gen_tps;
        out->sprompt = st.med.prompt_tps;
        out->ttft_ms = st.med.ttft_ms;
        out->prefill_s = st.med.prefill_s;
        out->n_short = ns;
    }
    if (scenario_runs(t, base, t->long_prompt, bench_long.n_predict, req->long_runs, l, &nl, err, sizeof err))
        goto failed;
    if (nl) {
        bench_stats_t st;
        bench_stats(l, nl, &st);
        out->lprompt = st.med.prompt_tps;
        out->lp_min = st.min.prompt_tps;
        out->lp_max = st.max.prompt_tps;
        out->n_long = nl;
    }
    if (turn && !(t->stop && *t->stop)) { /* a chat's second turn: what the cache keeps of the first */
        bench_sample_t first, second;
        if (bench_run_turn(base, NULL, t->long_prompt, t->n, BENCH_TURN_ANSWER, &first, &second, err, sizeof err)) {
            err_prefix(err, sizeof err, "the turn scenario");
            goto failed;
        }
        out->turn_s = second.prefill_s > 0 ? second.prefill_s : NAN;
        out->turn_cached = second.cache_n;
    }
    if (t->image_px && args_get(args, n, ARG_MMPROJ) && !(t->stop && *t->stop)) {
        if (!t->image_uri && !(t->image_uri = png_pattern_uri(t->image_px, t->image_px, BENCH_IMAGE_SEED, PNG_DEFLATE,
                                                              NULL))) {
            snprintf(err, sizeof err, "cannot make a %u px picture", t->image_px);
            goto failed;
        }
        bench_sample_t v;
        bench_logsrc_t src = {.path = log};
        if (bench_run_image(base, NULL, bench_vision_question, t->image_uri, 16, &src, &v, err, sizeof err)) {
            err_prefix(err, sizeof err, "the request with a picture");
            goto failed;
        }
        out->encode_ms = v.encode_ms > 0 ? v.encode_ms : NAN;
        json_object_set_new(rec, "encode_ms", v.encode_ms > 0 ? json_real(round(v.encode_ms * 10) / 10) : json_null());
        json_object_set_new(rec, "vision", json_pack("{s:i,s:I,s:f}", "image_px", (int)t->image_px, "image_tokens",
                                                     (json_int_t)v.image_tokens, "ttft_ms", round(v.ttft_ms * 10) / 10));
    }
    if (t->stop && *t->stop) {
        result = -EINTR;
        goto done;
    }
    out->free_mib = -1;
    if (t->n_gpu > 0) {
        hw_info_t hw;
        char he[256];
        hw_info_init(&hw);
        if (hw_probe(&hw, he, sizeof he) == 0)
            for (int g = 0; g < hw.n_gpu; g++)
                if (hw.gpu[g].mem_free_mib >= 0 && (out->free_mib < 0 || hw.gpu[g].mem_free_mib < out->free_mib))
                    out->free_mib = hw.gpu[g].mem_free_mib;
    }
    out->status = ns ? TUNE_OK : TUNE_FAILED;
    if (!ns)
        snprintf(out->error, sizeof out->error, "no run completed");
    goto done;
failed:
    out->status = TUNE_FAILED;
    snprintf(out->error, sizeof out->error, "%s", err);
done:
    if (pid > 0)
        proc_stop(pid, t->stop_grace_s);
    free(base);
    if (out->status == TUNE_OK || result < 0)
        unlink(log); /* failed loads keep their log: the error names it */
    else
        json_object_set_new(rec, "log", json_string(log));
    free(log);
    return result;
}
