/*
 * test_e2e_plan.c — the planner's accuracy harness: for every tiny
 * synthetic model × K/V type {f16, q8_0, q4_0} × context {2048, 8192,
 * 32768} × ubatch {128, 512}, run the real llama-server (-lv 4), parse its
 * load report and compare with `plan_predict`: weights and KV (and
 * recurrent state) must match to llama-server's rounding, the compute
 * buffer within 10% or 8 MiB (CPU backend). With VARIET_PLAN_TABLE=1 it
 * prints the full error table (bench/planner.sh).
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
