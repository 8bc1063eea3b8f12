/*
 * test_e2e_bench.c — `variet bench` against the real llama-server on a
 * synthetic model: scenarios sized as asked, rates and TTFT from a real
 * run, --write updates measured_tps atomically (backup kept, unknown fields
 * kept); a role whose context is too small for the long prompt fails with
 * llama-server's reason; median/min/max arithmetic (pure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "e2e_util.h"
#include "util.h"

static char *setup_dir(const char *ctx)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *dir = xasprintf("%s/bench-%s", e2e_tmpdir(), ctx);
    char *cmd = xasprintf("mkdir -p '%s' && '%s' synth tiny-llama -o '%s/m.gguf' >/dev/null", dir, VARIET_BINARY, dir);
    char *out = NULL;
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(out);
    free(cmd);
    char *cfg = xasprintf("%s/engine_models.json", dir);
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\", \"port\": %d},\n"
                           " \"_comment\": \"kept\",\n"
                           " \"fast\": {\"display_name\": \"F\", \"model_path\": \"m.gguf\", \"measured_tps\": 1.5,"
                           " \"args\": [\"-c\", \"%s\", \"-np\", \"1\", \"-t\", \"2\"], \"x-note\": {\"a\": [1, 2]}}}\n",
                           srv, e2e_free_port(), ctx);
    char err[256];
    assert_int_equal(file_write_atomic(cfg, text, strlen(text), err, sizeof err), 0);
    free(text);
    free(cfg);
    return dir;
}

static void t_bench_json_and_write(void **s)
{
    (void)s;
    char *dir = setup_dir("4096");
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' bench fast --direct --runs 2 --json --write", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("bench exited %d: %s", rc, out);
    json_t *j = json_loads(out, 0, NULL);
    if (!j)
        fail_msg("not JSON: %s", out);
    free(out);
    assert_true(json_number_value(json_object_get(j, "cold_start_s")) > 0);
    json_t *sh = json_object_get(json_object_get(j, "scenarios"), "short");
    json_t *lo = json_object_get(json_object_get(j, "scenarios"), "long");
    assert_non_null(sh);
    assert_non_null(lo);
    json_t *m = json_object_get(sh, "median");
    long pn = (long)json_integer_value(json_object_get(m, "prompt_n"));
    /* ~170 content tokens plus the chat template's */
    assert_true(pn >= 170 && pn < 400);
    assert_int_equal(json_integer_value(json_object_get(m, "gen_n")), 300);
    assert_true(json_number_value(json_object_get(m, "gen_tps")) > 0);
    assert_true(json_number_value(json_object_get(m, "prompt_tps")) > 0);
    assert_true(json_number_value(json_object_get(m, "ttft_ms")) > 0);
    long lpn = (long)json_integer_value(json_object_get(json_object_get(lo, "median"), "prompt_n"));
    assert_true(lpn >= 3100 && lpn < 3600);
    double tps = json_number_value(json_object_get(m, "gen_tps"));
    double mn = json_number_value(json_object_get(json_object_get(sh, "min"), "gen_tps"));
    double mx = json_number_value(json_object_get(json_object_get(sh, "max"), "gen_tps"));
    assert_true(mn <= tps && tps <= mx);
    json_decref(j);

    /* --write: measured_tps is the short median (2 decimals), the rest kept */
    char *cfg = xasprintf("%s/engine_models.json", dir), *bak = xasprintf("%s/engine_models.json.bak", dir);
    json_t *c = json_load_file(cfg, 0, NULL);
    assert_non_null(c);
    double written = json_number_value(json_object_get(json_object_get(c, "fast"), "measured_tps"));
    assert_true(written > 0 && written != 1.5);
    assert_true(written > tps - 0.01 && written < tps + 0.01);
    assert_string_equal(json_string_value(json_object_get(c, "_comment")), "kept");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(json_object_get(c, "fast"), "x-note"), "a"), 1)), 2);
    json_decref(c);
    json_t *b = json_load_file(bak, 0, NULL);
    assert_non_null(b);
    assert_true(json_number_value(json_object_get(json_object_get(b, "fast"), "measured_tps")) == 1.5);
    json_decref(b);
    free(cfg);
    free(bak);
    free(dir);
}

static void t_bench_context_too_small(void **s)
{
    (void)s;
    char *dir = setup_dir("1024");
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' bench fast --direct --runs 1 --scenario long 2>&1", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "exceeds the available context size"))
        fail_msg("expected llama-server's reason, got: %s", out);
    free(out);
    /* unknown role */
    cmd = xasprintf("cd '%s' && '%s' bench nosuch 2>&1", dir, VARIET_BINARY);
    rc = e2e_sh(cmd, &out);
    free(cmd);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "no role 'nosuch'"));
    free(out);
    free(dir);
}

static void t_stats(void **s)
{
    (void)s;
    bench_sample_t v[4] = {{.gen_tps = 10, .prompt_tps = 100, .prompt_n = 5},
                           {.gen_tps = 30, .prompt_tps = 300, .prompt_n = 5},
                           {.gen_tps = 20, .prompt_tps = 200, .prompt_n = 5},
                           {.gen_tps = 40, .prompt_tps = 50, .prompt_n = 5}};
    bench_stats_t st;
    bench_stats(v, 3, &st);
    assert_true(st.med.gen_tps == 20 && st.min.gen_tps == 10 && st.max.gen_tps == 30);
    bench_stats(v, 4, &st);
    assert_true(st.med.gen_tps == 25 && st.max.gen_tps == 40);
    assert_true(st.med.prompt_tps == 150 && st.min.prompt_tps == 50);
    assert_int_equal(st.med.prompt_n, 5);
    assert_int_equal(st.n, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_stats),
        cmocka_unit_test(t_bench_json_and_write),
        cmocka_unit_test(t_bench_context_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
