/*
 * test_e2e_tune.c — `variet tune` on the CPU with the real llama-server and
 * a tiny synthetic model: the phased search (tune.h) over threads × ubatch
 * × KV type × flash attention within a load budget that it reports; a configuration llama-server refuses
 * (quantized V cache without flash attention) is recorded as failed and
 * skipped; the winner and measured_tps land in the registry (backup kept,
 * unknown fields kept) with a Markdown retuning log; an interrupted run
 * (SIGKILL) leaves no llama-server behind and --resume continues from the
 * history; --dry-run launches nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_util.h"
#include "util.h"

static char *dir_for(const char *name)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *dir = xasprintf("%s/tune-%s", e2e_tmpdir(), name);
    char *cmd = xasprintf("mkdir -p '%s' && '%s' synth tiny-llama-q -o '%s/m.gguf' >/dev/null", dir, VARIET_BINARY, dir);
    char *out = NULL;
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(out);
    free(cmd);
    char *cfg = xasprintf("%s/engine_models.json", dir);
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\"},\n \"fast\": {\"display_name\": \"F\", \"model_path\": "
                           "\"m.gguf\", \"measured_tps\": 1.25, \"args\": [\"-c\", \"2048\", \"-np\", \"1\", \"-ctk\", "
                           "\"q8_0\", \"-ctv\", \"q8_0\", \"--no-warmup\"], \"x-owner\": \"me\"}}\n",
                           srv);
    char err[256];
    assert_int_equal(file_write_atomic(cfg, text, strlen(text), err, sizeof err), 0);
    free(text);
    free(cfg);
    return dir;
}

static int count_trials(const char *path, const char *status, const char *error_has)
{
    json_t *h = json_load_file(path, 0, NULL);
    if (!h)
        return -1;
    json_t *tr = json_object_get(h, "trials"), *e;
    size_t i;
    int n = 0;
    json_array_foreach(tr, i, e)
    {
        const char *st = json_string_value(json_object_get(e, "status"));
        const char *er = json_string_value(json_object_get(e, "error"));
        if ((!status || (st && !strcmp(st, status))) && (!error_has || (er && strstr(er, error_has))))
            n++;
    }
    json_decref(h);
    return n;
}

static void t_tune_writes_registry_and_log(void **s)
{
    (void)s;
    char *dir = dir_for("main");
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' tune fast --space 'fa=on,off;kv=q8_0,f16;t=1,2;ub=128,512' --runs 2 "
                          "--objective gen --budget 10 2>&1",
                          dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("tune exited %d:\n%s", rc, out);
    printf("%s", out);
    bool said_budget = strstr(out, "trial budget of 10 reached") != NULL;
    free(out);
    char *hist = xasprintf("%s/tune-fast.json", dir);
    int total = count_trials(hist, NULL, NULL), ok = count_trials(hist, "ok", NULL);
    int refused = count_trials(hist, "failed", "flash_attn");
    assert_true(total >= 4 && total <= 10 + 4); /* the budget's loads + planner records */
    assert_true(said_budget);
    assert_true(ok >= 3);
    assert_true(refused >= 1); /* q8_0 V cache with -fa off: refused by llama-server, recorded, skipped */

    char *cfg = xasprintf("%s/engine_models.json", dir);
    json_t *c = json_load_file(cfg, 0, NULL);
    assert_non_null(c);
    json_t *role = json_object_get(c, "fast");
    assert_string_equal(json_string_value(json_object_get(role, "x-owner")), "me");
    double tps = json_number_value(json_object_get(role, "measured_tps"));
    assert_true(tps > 0 && tps != 1.25);
    json_t *args = json_object_get(role, "args");
    char *joined = NULL;
    {
        buf_t b;
        buf_init(&b, 0);
        buf_append(&b, "", 0);
        size_t i;
        json_t *a;
        json_array_foreach(args, i, a) buf_printf(&b, " %s", json_string_value(a));
        joined = b.data;
    }
    assert_non_null(strstr(joined, "-c 2048"));
    /* only what was varied and found better, plus what pins it: every
     * option is the role's or one of the space's, never an unvaried default */
    static const char *const allowed[] = {"-c", "-np", "-ctk", "-ctv", "--no-warmup", "--cache-type-k",
                                          "--cache-type-v", "--flash-attn", "--threads", "--threads-batch",
                                          "--ubatch-size", "--fit", NULL};
    size_t ai;
    json_t *av;
    bool varied = false;
    json_array_foreach(args, ai, av)
    {
        const char *t = json_string_value(av);
        if (t[0] != '-' || (t[1] >= '0' && t[1] <= '9'))
            continue;
        bool okk = false;
        for (int k = 0; allowed[k]; k++)
            okk |= !strcmp(t, allowed[k]);
        if (!okk)
            fail_msg("unexpected option %s in the tuned args:%s", t, joined);
        varied |= !strcmp(t, "--threads") || !strcmp(t, "--ubatch-size") || !strcmp(t, "--flash-attn");
    }
    if (varied)
        assert_non_null(strstr(joined, "--fit off")); /* varied options pinned */
    assert_null(strstr(joined, "--cache-type-k f16 --cache-type-v f16 --flash-attn on --threads 1"));
    free(joined);
    json_decref(c);
    char *bak = xasprintf("%s.bak", cfg);
    json_t *b = json_load_file(bak, 0, NULL);
    assert_non_null(b);
    assert_true(json_number_value(json_object_get(json_object_get(b, "fast"), "measured_tps")) == 1.25);
    json_decref(b);

    /* the Markdown log */
    char *ls = NULL;
    cmd = xasprintf("cat '%s'/tune-fast-*.md", dir);
    assert_int_equal(e2e_sh(cmd, &ls), 0);
    free(cmd);
    assert_non_null(strstr(ls, "## Motivation and baseline"));
    assert_non_null(strstr(ls, "## Hardware"));
    assert_non_null(strstr(ls, "## Model"));
    assert_non_null(strstr(ls, "## Trials"));
    assert_non_null(strstr(ls, "## Removed flags"));
    assert_non_null(strstr(ls, "--no-warmup"));
    assert_non_null(strstr(ls, "measured_tps: 1.25 →"));
    assert_non_null(strstr(ls, "flash_attn"));
    free(ls);
    free(bak);
    free(cfg);
    free(hist);
    free(dir);
}

static bool llama_running_for(const char *model)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char *p = xasprintf("/proc/%s/cmdline", e->d_name);
        size_t len = 0;
        char *c = e2e_slurp(p, &len);
        free(p);
        if (!c)
            continue;
        for (size_t i = 0; i + 1 < len; i++)
            if (!c[i])
                c[i] = ' ';
        if (strstr(c, "llama-server") && strstr(c, model)) {
            char *st = xasprintf("/proc/%s/stat", e->d_name);
            char *s = e2e_slurp(st, NULL);
            free(st);
            const char *rp = s ? strrchr(s, ')') : NULL;
            if (!rp || rp[2] != 'Z') /* zombies are not running */
                found = true;
            free(s);
        }
        free(c);
    }
    if (d)
        closedir(d);
    return found;
}

static void t_resume_after_kill(void **s)
{
    (void)s;
    char *dir = dir_for("resume");
    char *hist = xasprintf("%s/tune-fast.json", dir);
    char *log = xasprintf("%s/tune.log", dir);
    char *cfg = xasprintf("%s/engine_models.json", dir);
    char *model = xasprintf("%s/m.gguf", dir);
    char *argv[] = {VARIET_BINARY, "tune", "fast", "--config", cfg, "--space", "t=1,2;ub=128,256,512;kv=q8_0,q4_0",
                    "--runs", "2", "--objective", "gen", NULL};
    pid_t pid = e2e_spawn(argv, log);
    assert_true(pid > 0);
    double t0 = now_s();
    while (now_s() - t0 < 240 && count_trials(hist, NULL, NULL) < 2)
        usleep(50000);
    assert_true(count_trials(hist, NULL, NULL) >= 2);
    kill(pid, SIGKILL); /* variet only: its llama-server must follow (PR_SET_PDEATHSIG) */
    waitpid(pid, NULL, 0);
    int measured = count_trials(hist, NULL, NULL);
    t0 = now_s();
    while (now_s() - t0 < 5 && llama_running_for(model))
        usleep(50000);
    assert_false(llama_running_for(model));

    char *out = NULL;
    char *cmd = xasprintf("'%s' tune fast --config '%s' --space 't=1,2;ub=128,256,512;kv=q8_0,q4_0' --runs 2 --objective gen --budget 8 --resume 2>&1",
                          VARIET_BINARY, cfg);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0 || !strstr(out, "resuming with"))
        fail_msg("resume exited %d:\n%s", rc, out);
    free(out);
    /* the earlier trials were not measured again */
    json_t *h = json_load_file(hist, 0, NULL);
    json_t *tr = json_object_get(h, "trials");
    for (size_t i = 0; i < json_array_size(tr); i++)
        for (size_t k = i + 1; k < json_array_size(tr); k++) {
            json_t *a = json_array_get(tr, i), *b = json_array_get(tr, k);
            if (!strcmp(json_string_value(json_object_get(a, "phase")) ?: "", "screen") &&
                !strcmp(json_string_value(json_object_get(b, "phase")) ?: "", "screen"))
                assert_string_not_equal(json_string_value(json_object_get(a, "key")),
                                        json_string_value(json_object_get(b, "key")));
        }
    assert_true(json_array_size(tr) > (size_t)measured);
    json_decref(h);
    free(model);
    free(cfg);
    free(log);
    free(hist);
    free(dir);
}

static void t_dry_run(void **s)
{
    (void)s;
    char *dir = dir_for("dry");
    char *out = NULL;
    char *cmd = xasprintf("cd '%s' && '%s' tune fast --dry-run --space 'ub=128,512;t=1,2' 2>&1", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    assert_non_null(strstr(out, "9 of 9 configurations fit")); /* default, 128, 512 × default, 1, 2 */
    assert_non_null(strstr(out, "run   ub="));
    free(out);
    char *hist = xasprintf("%s/tune-fast.json", dir);
    assert_int_not_equal(access(hist, F_OK), 0); /* nothing measured */
    free(hist);
    cmd = xasprintf("cd '%s' && '%s' tune fast --space 'ub=abc' 2>&1", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 2);
    free(cmd);
    assert_non_null(strstr(out, "not an integer"));
    free(out);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_dry_run),
        cmocka_unit_test(t_tune_writes_registry_and_log),
        cmocka_unit_test(t_resume_after_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
