/*
 * test_e2e_plan.c — the planner's accuracy harness: for every tiny
 * synthetic model × K/V type {f16, q8_0, q4_0} × context {2048, 8192,
 * 32768} × ubatch {128, 512}, run the real llama-server (-lv 4), parse its
 * load report and compare with `plan_predict`: weights and KV (and
 * recurrent state) must match to llama-server's rounding, the compute
 * buffer within 10% or 8 MiB (CPU backend). Then the companions through
 * roleplan (t_companions): a projector's weights (exact) and compute buffer
 * (fitted, 10% or 2 MiB) for both projector types with flash attention on
 * and off, token limits and --no-mmproj-offload; a draft's weights and KV
 * (exact) and compute (10% or 8 MiB) at the model's context, sequences and
 * its own KV types and ubatch; the device totals (10% or 10 MiB). With
 * VARIET_PLAN_TABLE=1 it prints the full error tables (bench/planner.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_util.h"
#include "gguf.h"
#include "loadlog.h"
#include "modelinfo.h"
#include "plan.h"
#include "roleplan.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

static const char *const presets[] = {"tiny-llama", "tiny-llama-q", "tiny-qwen3moe", "tiny-qwen35moe"};
static const char *const types[] = {"f16", "q8_0", "q4_0"};
static const long ctxs[] = {2048, 8192, 32768};
static const long ubs[] = {128, 512};

static void t_accuracy(void **s)
{
    (void)s;
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    bool table = getenv("VARIET_PLAN_TABLE") != NULL;
    int failures = 0, runs = 0;
    double worst_compute = 0;
    if (table)
        printf("| model | K/V | ctx | ubatch | weights MiB pred / real | KV MiB pred / real | RS MiB pred / real | "
               "compute MiB pred / real | compute error |\n|---|---|---|---|---|---|---|---|---|\n");
    for (size_t pi = 0; pi < sizeof presets / sizeof presets[0]; pi++) {
        char *model = xasprintf("%s/%s.gguf", e2e_tmpdir(), presets[pi]);
        char *cmd = xasprintf("'%s' synth %s -o '%s' >/dev/null", VARIET_BINARY, presets[pi], model);
        char *out = NULL;
        assert_int_equal(e2e_sh(cmd, &out), 0);
        free(out);
        free(cmd);
        gguf_t *g = NULL;
        mi_t *m = NULL;
        char err[256];
        assert_int_equal(gguf_open(model, &g, err, sizeof err), 0);
        assert_int_equal(mi_from_gguf(g, &m, err, sizeof err), 0);
        for (size_t ti = 0; ti < 3; ti++)
            for (size_t ci = 0; ci < 3; ci++)
                for (size_t ui = 0; ui < 2; ui++) {
                    char cs[16], us[16], ps[16];
                    snprintf(cs, sizeof cs, "%ld", ctxs[ci]);
                    snprintf(us, sizeof us, "%ld", ubs[ui]);
                    int port = e2e_free_port();
                    snprintf(ps, sizeof ps, "%d", port);
                    char *args[] = {"-c", cs, "-np", "1", "-ub", us, "-ctk", (char *)types[ti], "-ctv",
                                    (char *)types[ti], "-fa", "on", "-t", "2"};
                    size_t na = sizeof args / sizeof args[0];
                    plan_opts_t o;
                    assert_int_equal(plan_opts_from_args(args, na, &o, err, sizeof err), 0);
                    plan_t p;
                    plan_predict(m, &o, NULL, 0, -1, 0, &p);

                    char *log = xasprintf("%s/plan-%s-%s-%s-%s.log", e2e_tmpdir(), presets[pi], types[ti], cs, us);
                    char *argv[32] = {(char *)srv, "-m", model, "--host", "127.0.0.1", "--port", ps, "-lv", "4"};
                    size_t k = 9;
                    for (size_t a = 0; a < na; a++)
                        argv[k++] = args[a];
                    argv[k] = NULL;
                    pid_t pid = e2e_spawn(argv, log);
                    int ready = e2e_wait_ready(pid, port, log, 60);
                    e2e_stop(pid);
                    size_t len = 0;
                    char *text = e2e_slurp(log, &len);
                    loadlog_t r;
                    loadlog_init(&r);
                    if (text)
                        loadlog_parse(&r, text, len);
                    free(text);
                    runs++;
                    if (ready != 0) {
                        fail_msg("%s %s c=%s ub=%s: llama-server did not start (log %s)", presets[pi], types[ti], cs, us, log);
                    }
                    double w_real = loadlog_sum(&r, "", "model"), kv_real = loadlog_sum(&r, "", "kv"),
                           rs_real = loadlog_sum(&r, "", "rs"), c_real = loadlog_sum(&r, "", "compute");
                    double w_pred = p.dev[0].weights / MIB, kv_pred = p.dev[0].kv / MIB, rs_pred = p.dev[0].rs / MIB,
                           c_pred = p.dev[0].compute / MIB;
                    double c_err = c_real > 0 ? (c_pred - c_real) / c_real : 0;
                    bool ok = fabs(w_pred - w_real) <= 0.05 && fabs(kv_pred - kv_real) <= 0.0051 &&
                              fabs(rs_pred - rs_real) <= 0.0051 &&
                              (fabs(c_pred - c_real) <= 8.0 || fabs(c_err) <= 0.10);
                    if (fabs(c_err) > fabs(worst_compute))
                        worst_compute = c_err;
                    if (table)
                        printf("| %s | %s | %s | %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %+.1f%%%s |\n",
                               presets[pi], types[ti], cs, us, w_pred, w_real, kv_pred, kv_real, rs_pred, rs_real,
                               c_pred, c_real, c_err * 100, ok ? "" : " **FAIL**");
                    if (!ok) {
                        failures++;
                        fprintf(stderr, "%s %s c=%s ub=%s: weights %.2f/%.2f KV %.2f/%.2f RS %.2f/%.2f compute %.2f/%.2f\n",
                                presets[pi], types[ti], cs, us, w_pred, w_real, kv_pred, kv_real, rs_pred, rs_real,
                                c_pred, c_real);
                    }
                    free(log);
                }
        mi_free(&m);
        gguf_close(&g);
        free(model);
    }
    printf("planner accuracy: %d configurations, %d outside tolerance, worst compute error %+.1f%%\n", runs, failures,
           worst_compute * 100);
    assert_int_equal(failures, 0);
}

/* ---- the companions: projectors and drafts, through roleplan ---- */

static char *synth_model(const char *preset)
{
    char *model = xasprintf("%s/%s.gguf", e2e_tmpdir(), preset);
    char *cmd = xasprintf("'%s' synth %s -o '%s' >/dev/null", VARIET_BINARY, preset, model);
    char *out = NULL;
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(out);
    free(cmd);
    return model;
}

/* Run llama-server with args (the model first), parse its report. false
 * when it did not get ready. */
static bool load_report(const char *srv, const char *model, char *const *args, size_t na, const char *tag, loadlog_t *r)
{
    char ps[16];
    int port = e2e_free_port();
    snprintf(ps, sizeof ps, "%d", port);
    char *log = xasprintf("%s/plan-companion-%s.log", e2e_tmpdir(), tag);
    char *argv[48] = {(char *)srv, "-m", (char *)model, "--host", "127.0.0.1", "--port", ps, "-lv", "4"};
    size_t k = 9;
    for (size_t a = 0; a < na && k < 47; a++)
        argv[k++] = args[a];
    argv[k] = NULL;
    pid_t pid = e2e_spawn(argv, log);
    int ready = e2e_wait_ready(pid, port, log, 60);
    e2e_stop(pid);
    size_t len = 0;
    char *text = e2e_slurp(log, &len);
    loadlog_init(r);
    if (text)
        loadlog_parse(r, text, len);
    free(text);
    free(log);
    return ready == 0;
}

typedef struct {
    const char *model, *tag;
    const char *args[20];
} comp_case_t;

static void t_companions(void **s)
{
    (void)s;
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    bool table = getenv("VARIET_PLAN_TABLE") != NULL;
    char *qwen = synth_model("tiny-qwen35moe"), *gemma = synth_model("tiny-gemma4"),
         *qproj = synth_model("tiny-qwen35-mmproj"), *gproj = synth_model("tiny-gemma4-mmproj"),
         *draft = synth_model("tiny-draft"), *llama = synth_model("tiny-llama");
    /* the projector: fitted compute at clip's warmup image (flash attention
     * on and off, a token limit, the ubatch cap of gemma4v, on the host by
     * --no-mmproj-offload); the draft: its own KV types, ubatch, the model's
     * context and sequences, beside a projector too */
    comp_case_t cases[] = {
        {qwen, "q-mm", {"-c", "4096", "-np", "1", "-t", "2", "--mmproj", qproj}},
        {qwen, "q-mm-fa-off", {"-c", "4096", "-np", "1", "-t", "2", "-fa", "off", "--mmproj", qproj}},
        {qwen, "q-mm-it1024", {"-c", "4096", "-np", "1", "-t", "2", "--image-max-tokens", "1024", "--mmproj", qproj}},
        {qwen, "q-mm-host", {"-c", "4096", "-np", "1", "-t", "2", "--mmproj", qproj, "--no-mmproj-offload"}},
        {gemma, "g-mm", {"-c", "4096", "-np", "1", "-t", "2", "--mmproj", gproj}},
        {gemma, "g-mm-fa-off", {"-c", "4096", "-np", "1", "-t", "2", "-fa", "off", "--mmproj", gproj}},
        {gemma, "g-mm-it100", {"-c", "4096", "-np", "1", "-t", "2", "--image-max-tokens", "100", "--mmproj", gproj}},
        {gemma, "g-mm-host", {"-c", "8192", "-np", "1", "-t", "2", "-ub", "1024", "--mmproj", gproj,
                              "--no-mmproj-offload"}},
        {qwen, "q-md", {"-c", "4096", "-np", "1", "-t", "2", "-md", draft, "--spec-type", "draft-simple"}},
        {qwen, "q-md-np2", {"-c", "8192", "-np", "2", "-t", "2", "-ub", "256", "-md", draft, "--spec-type",
                            "draft-simple", "-ctkd", "q8_0", "-ctvd", "q8_0", "--spec-draft-n-ubatch", "128"}},
        {qwen, "q-md-auto", {"-t", "2", "-md", draft, "--spec-type", "draft-simple"}},
        {gemma, "g-md-fa-off", {"-c", "16384", "-np", "1", "-t", "2", "-fa", "off", "-md", draft, "--spec-type",
                                "draft-simple"}},
        {llama, "l-md", {"-c", "2048", "-np", "1", "-t", "2", "-ctk", "q8_0", "-ctv", "q8_0", "-md", draft,
                         "--spec-type", "draft-simple", "-ctkd", "q4_0", "-ctvd", "q4_0"}},
        {qwen, "q-md-mm", {"-c", "4096", "-np", "1", "-t", "2", "-md", draft, "--spec-type", "draft-simple",
                           "--mmproj", qproj}},
    };
    int failures = 0;
    double worst_mm = 0, worst_dc = 0;
    if (table)
        printf("| case | mmproj weights pred / real | mmproj compute pred / real | draft weights pred / real | "
               "draft KV pred / real | draft compute pred / real | total pred / real |\n|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        comp_case_t *c = &cases[i];
        size_t na = 0;
        while (na < 20 && c->args[na])
            na++;
        char err[512];
        roleplan_t *rp = NULL;
        if (roleplan_open(c->model, (char *const *)c->args, na, &rp, err, sizeof err))
            fail_msg("%s: %s", c->tag, err);
        plan_opts_t o;
        plan_t p, dp;
        assert_int_equal(roleplan_predict(rp, (char *const *)c->args, na, NULL, 0, -1, 0, &o, &p, err, sizeof err), 0);
        plan_mmproj_t mp = {0};
        memset(&dp, 0, sizeof dp);
        if (o.mmproj_mi)
            plan_mmproj(o.mmproj_mi, &o, &mp);
        if (o.draft_mi)
            plan_draft(&o, NULL, 0, &dp);
        loadlog_t r;
        if (!load_report(srv, c->model, (char **)c->args, na, c->tag, &r))
            fail_msg("%s: llama-server did not start", c->tag);
        bool has_mmproj = r.mmproj_device[0] != 0;
        double mw = mp.weights / MIB, mc = mp.compute / MIB, mw_r = has_mmproj ? r.mmproj_model_mib : 0,
               mc_r = loadlog_sum(&r, "", "mmproj");
        double dw = dp.dev[0].weights / MIB, dk = dp.dev[0].kv / MIB, dc = dp.dev[0].compute / MIB,
               dw_r = loadlog_sum(&r, "", "draft_model"), dk_r = loadlog_sum(&r, "", "draft_kv"),
               dc_r = loadlog_sum(&r, "", "draft_compute");
        double tot = p.dev[0].total / MIB,
               tot_r = loadlog_sum(&r, "", "model") + loadlog_sum(&r, "", "kv") + loadlog_sum(&r, "", "rs") +
                       loadlog_sum(&r, "", "compute") + loadlog_sum(&r, "", "output") + mc_r + mw_r;
        bool ok = has_mmproj == (o.mmproj_mi != NULL) && r.has_draft == (o.draft_mi != NULL);
        /* weights and KV to llama-server's rounding; compute buffers as the
         * model's (10% or 8 MiB); the projector's as fitted (10% or 2 MiB) */
        ok &= fabs(mw - mw_r) <= 0.01 && (fabs(mc - mc_r) <= 2.0 || fabs(mc - mc_r) <= 0.10 * mc_r);
        ok &= fabs(dw - dw_r) <= 0.05 && fabs(dk - dk_r) <= 0.0051 &&
              (fabs(dc - dc_r) <= 8.0 || fabs(dc - dc_r) <= 0.10 * dc_r);
        ok &= fabs(tot - tot_r) <= 10.0 || fabs(tot - tot_r) <= 0.10 * tot_r;
        if (mc_r > 0 && fabs(mc - mc_r) / mc_r > fabs(worst_mm))
            worst_mm = (mc - mc_r) / mc_r;
        if (dc_r > 0 && fabs(dc - dc_r) / dc_r > fabs(worst_dc))
            worst_dc = (dc - dc_r) / dc_r;
        if (table)
            printf("| %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |%s\n",
                   c->tag, mw, mw_r, mc, mc_r, dw, dw_r, dk, dk_r, dc, dc_r, tot, tot_r, ok ? "" : " **FAIL**");
        if (!ok) {
            failures++;
            fprintf(stderr,
                    "%s: mmproj %.2f/%.2f + %.2f/%.2f, draft %.2f/%.2f KV %.2f/%.2f compute %.2f/%.2f, total "
                    "%.2f/%.2f (seen: draft %d, mmproj %d)\n",
                    c->tag, mw, mw_r, mc, mc_r, dw, dw_r, dk, dk_r, dc, dc_r, tot, tot_r, r.has_draft, has_mmproj);
        }
        roleplan_free(&rp);
    }
    printf("companions: %zu configurations, %d outside tolerance, worst projector compute error %+.1f%%, worst draft "
           "compute error %+.1f%%\n",
           sizeof cases / sizeof cases[0], failures, worst_mm * 100, worst_dc * 100);
    free(qwen);
    free(gemma);
    free(qproj);
    free(gproj);
    free(draft);
    free(llama);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_accuracy),
        cmocka_unit_test(t_companions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
