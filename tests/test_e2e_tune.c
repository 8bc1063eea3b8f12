/*
 * test_e2e_tune.c — `variet tune` on the CPU with the real llama-server and
 * a tiny synthetic model: the phased search (tune.h) over threads × ubatch
 * × KV type × flash attention within a load budget that it reports; a configuration llama-server refuses
 * (quantized V cache without flash attention) is recorded as failed and
 * skipped; the winner and measured_tps land in the registry (backup kept,
 * unknown fields kept) with a Markdown retuning log; an interrupted run
 * (SIGKILL) leaves no llama-server behind and --resume continues from the
 * history; --dry-run launches nothing; Ctrl-C while a llama-server is
 * still loading stops the tune at once (fault injection: a wrapper named
 * slow-load-llama-server answers --help/--version through the real binary
 * and otherwise never becomes ready, a load longer than any test can wait
 * for on the tiny models, which load in 0.2 s); a role's draft model is
 * tuned on and off (a trial with it drafts), and a draft of another
 * vocabulary is refused before any trial.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    /* llama.cpp's own placement, measured in the baseline phase: the role's
     * args without the KV types the tuner varies */
    json_t *h = json_load_file(hist, 0, NULL);
    assert_non_null(h);
    json_t *ref = json_object_get(h, "reference");
    assert_non_null(ref);
    assert_string_equal(json_string_value(json_object_get(ref, "args")), "-c 2048 -np 1 --no-warmup");
    assert_true(json_number_value(json_object_get(ref, "gen")) > 0);
    /* the final comparison with it, or the history saying the budget left no room for it */
    json_t *dec = json_object_get(h, "decisions"), *d;
    size_t di;
    int said_ref = 0;
    json_array_foreach(dec, di, d) said_ref += !strcmp(json_string_value(json_object_get(d, "what")) ?: "", "reference");
    assert_int_equal(said_ref, 1);
    json_decref(h);

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
    assert_non_null(strstr(ls, "## Plots"));
    assert_non_null(strstr(ls, "llama.cpp's own placement for it (`-c 2048 -np 1 --no-warmup`"));
    assert_null(strstr(ls, "Context checkpoints")); /* a dense model without recurrent or SWA layers */
    free(ls);
    /* the two plots beside it, the ones it links: each an SVG file */
    cmd = xasprintf("cd '%s' && for f in $(sed -n 's/^!\\[[^]]*\\](\\(tune-fast-.*\\.svg\\))$/\\1/p' tune-fast-*.md); do "
                    "[ \"$(head -c 5 \"$f\")\" = '<svg ' ] && echo \"svg $f\"; done", dir);
    assert_int_equal(e2e_sh(cmd, &ls), 0);
    free(cmd);
    char *nl = strchr(ls, '\n');
    assert_true(nl && strstr(ls, "-trials.svg\n") == nl - strlen("-trials.svg"));
    assert_non_null(strstr(nl, "svg tune-fast-"));
    assert_non_null(strstr(nl, "-frontier.svg\n"));
    assert_true(!strncmp(ls, "svg tune-fast-", 14));
    free(ls);
    free(bak);
    free(cfg);
    free(hist);
    free(dir);
}

/* A role with a projector: every load also encodes one picture, its
 * encode ms goes into the history, the vision weight scores it, and the
 * retuning log lists it per load. */
static void t_tune_vision(void **s)
{
    (void)s;
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\"},\n \"vq\": {\"model_path\": \"m.gguf\", \"args\": "
                           "[\"-c\", \"4096\", \"-np\", \"1\", \"--mmproj\", \"p.gguf\"]}}\n",
                           srv);
    char *dir = e2e_dir_with("tune-vision", "tiny-qwen35moe=m.gguf tiny-qwen35-mmproj=p.gguf", text), *out = NULL, *cmd;
    free(text);
    cmd = xasprintf("cd '%s' && '%s' tune vq --space 't=1,2' --runs 1 --objective gen=1,vision=0.05 --budget 4 2>&1", dir,
                    VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("tune exited %d:\n%s", rc, out);
    free(out);
    char *hist = xasprintf("%s/tune-vq.json", dir);
    json_t *h = json_load_file(hist, 0, NULL);
    assert_non_null(h);
    json_t *tr = json_object_get(h, "trials"), *e;
    size_t i;
    int ok = 0;
    json_array_foreach(tr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "status")) ?: "", "ok"))
            continue;
        ok++;
        json_t *v = json_object_get(e, "vision");
        if (!v || !(json_number_value(json_object_get(e, "encode_ms")) > 0))
            fail_msg("trial %zu has no encode ms", i + 1);
        /* tiny-qwen35-mmproj, 1024 px: 1024 tokens, as inspect says */
        assert_int_equal(json_integer_value(json_object_get(v, "image_px")), 1024);
        assert_int_equal(json_integer_value(json_object_get(v, "image_tokens")), 1024);
    }
    assert_true(ok >= 2);
    json_decref(h);
    cmd = xasprintf("cat '%s'/tune-vq-*.md", dir);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    if (!strstr(out, "vision=0.05") || !strstr(out, "## Vision") || !strstr(out, "| 1024 | 1024 |"))
        fail_msg("the retuning log lacks the vision part:\n%s", out);
    free(out);
    free(hist);
    free(dir);
}

/* The turn weight on the hybrid model: every load also answers a chat's
 * second turn; ctxcp is a dimension of the default space; a load with
 * checkpoints keeps the first turn's tokens, one with -ctxcp 0 none, and
 * the winner keeps its checkpoints (turn=1 outweighs the fresh prefill). */
static void t_tune_turn(void **s)
{
    (void)s;
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\"},\n \"q\": {\"model_path\": \"m.gguf\", \"args\": "
                           "[\"-c\", \"4096\", \"-np\", \"1\"]}}\n",
                           srv);
    char *dir = e2e_dir_with("tune-turn", "tiny-qwen35moe=m.gguf", text), *out = NULL, *cmd;
    free(text);
    cmd = xasprintf("cd '%s' && '%s' tune q --dry-run --objective gen=1,prompt=1,turn=1 2>&1", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    if (!strstr(out, "ctxcp:default,0"))
        fail_msg("no ctxcp dimension with the turn weight:\n%s", out);
    free(out);
    cmd = xasprintf("cd '%s' && '%s' tune q --dry-run 2>&1", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    if (strstr(out, "ctxcp"))
        fail_msg("a ctxcp dimension without the turn weight:\n%s", out);
    free(out);
    cmd = xasprintf("cd '%s' && '%s' tune q --space 'ctxcp=0' --runs 1 --objective gen=1,prompt=1,turn=1 --budget 5 2>&1",
                    dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("tune exited %d:\n%s", rc, out);
    if (!strstr(out, "second turn ") || !strstr(out, "(0 kept)"))
        fail_msg("the console lacks the second turn:\n%s", out);
    free(out);
    char *hist = xasprintf("%s/tune-q.json", dir);
    json_t *h = json_load_file(hist, 0, NULL);
    assert_non_null(h);
    json_t *tr = json_object_get(h, "trials"), *e;
    size_t i;
    int with = 0, without = 0;
    json_array_foreach(tr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "status")) ?: "", "ok"))
            continue;
        json_t *v = json_object_get(e, "turn");
        if (!v || !(json_number_value(json_object_get(v, "prefill_s")) > 0))
            fail_msg("trial %zu has no second turn", i + 1);
        long kept = (long)json_integer_value(json_object_get(v, "cached"));
        const char *label = json_string_value(json_object_get(e, "label")) ?: "";
        if (strstr(label, "ctxcp=0")) {
            assert_true(kept < 8);
            without++;
        } else {
            assert_true(kept > 2500);
            with++;
        }
    }
    assert_true(with >= 1 && without >= 1);
    json_decref(h);
    cmd = xasprintf("cat '%s'/engine_models.json '%s'/tune-q-*.md", dir, dir);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    if (strstr(out, "\"--ctx-checkpoints\"") || strstr(out, "\"-ctxcp\""))
        fail_msg("the winner gave up its checkpoints at turn=1:\n%s", out);
    if (!strstr(out, "turn=1") || !strstr(out, "## Second turn") || !strstr(out, "checkpoints were a dimension"))
        fail_msg("the retuning log lacks the second turn:\n%s", out);
    free(out);
    free(hist);
    free(dir);
}

/* A role with a draft model (draft_model_path, tiny-draft beside
 * tiny-qwen35moe): the draft is a dimension, a trial with it loads and
 * drafts, one without it runs too, and the log puts both side by side; a
 * draft of another vocabulary is refused before any trial. */
static void t_tune_draft(void **s)
{
    (void)s;
    char *dir = e2e_draft_dir("tune-draft", 2048, ""), *out = NULL, *cmd;
    char *cfg = xasprintf("%s/engine_models.json", dir);
    cmd = xasprintf("cd '%s' && '%s' tune bad --runs 1 --budget 2 2>&1", dir, VARIET_BINARY);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    printf("%s", out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "bad.draft_model_path: draft o.gguf does not share the vocabulary of m.gguf (token 261:"));
    assert_null(strstr(out, "trial 1"));
    free(out);
    char *bad_hist = xasprintf("%s/tune-bad.json", dir);
    assert_int_not_equal(access(bad_hist, F_OK), 0); /* nothing launched, nothing recorded */
    free(bad_hist);

    cmd = xasprintf("cd '%s' && '%s' tune spec --space 'draft=on,off;dn=4' --runs 1 --budget 5 "
                    "--objective gen=1,cold=0.5 2>&1",
                    dir, VARIET_BINARY);
    rc = e2e_sh(cmd, &out);
    free(cmd);
    if (rc != 0)
        fail_msg("tune exited %d:\n%s", rc, out);
    printf("%s", out);
    assert_non_null(strstr(out, "2 dimensions (draft:on,off; dn:default,4)"));
    free(out);
    char *hist = xasprintf("%s/tune-spec.json", dir);
    json_t *h = json_load_file(hist, 0, NULL);
    assert_non_null(h);
    json_t *tr = json_object_get(h, "trials"), *e;
    size_t i;
    int on = 0, off = 0, drafted = 0;
    json_array_foreach(tr, i, e)
    {
        const char *lab = json_string_value(json_object_get(e, "label")) ?: "";
        const char *key = json_string_value(json_object_get(e, "key")) ?: "";
        const char *st = json_string_value(json_object_get(e, "status")) ?: "";
        if (strcmp(st, "ok"))
            continue;
        if (strstr(key, "-md ")) {
            on++;
            assert_non_null(strstr(key, "--spec-type draft-simple")); /* added for the build that needs it */
            json_t *d = json_object_get(e, "draft");
            if (json_integer_value(json_object_get(d, "drafted")) > 0)
                drafted++;
        } else {
            off++;
            assert_non_null(strstr(lab, "draft=off"));
            assert_null(json_object_get(e, "draft"));
        }
    }
    printf("draft trials: %d with the draft (%d drafted), %d without\n", on, drafted, off);
    assert_true(on >= 1 && off >= 1);
    assert_int_equal(drafted, on); /* every load with the draft drafted */
    json_decref(h);
    char *md = NULL;
    cmd = xasprintf("cat '%s'/tune-spec-*.md", dir);
    assert_int_equal(e2e_sh(cmd, &md), 0);
    free(cmd);
    const char *sec = strstr(md, "## Draft model");
    assert_non_null(sec);
    assert_non_null(strstr(sec, "| with / without the draft | gen t/s on / off |"));
    assert_non_null(strstr(sec, "The draft changes generation by "));
    free(md);
    /* the registry keeps the draft as draft_model_path, or drops it with a line saying so */
    json_t *c = json_load_file(cfg, 0, NULL);
    json_t *role = json_object_get(c, "spec"), *a;
    json_array_foreach(json_object_get(role, "args"), i, a)
    {
        assert_string_not_equal(json_string_value(a), "-md");
        assert_string_not_equal(json_string_value(a), "--spec-type");
    }
    json_decref(c);
    free(hist);
    free(cfg);
    free(dir);
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
    while (now_s() - t0 < 5 && e2e_proc_running("llama-server", model))
        usleep(50000);
    assert_false(e2e_proc_running("llama-server", model));

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
    assert_non_null(strstr(out, "reference [-c 2048 -np 1 --no-warmup]: llama.cpp's own placement"));
    assert_null(strstr(out, "the search starts from it")); /* a --space of the user's is searched as given */
    free(out);
    cmd = xasprintf("cd '%s' && '%s' tune fast --dry-run 2>&1", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    assert_non_null(strstr(out, "; the search starts from it when the role's args do not run or measure below it"));
    free(out);
    cmd = xasprintf("cd '%s' && '%s' tune fast --dry-run --no-reference --space 'ub=128,512' 2>&1", dir, VARIET_BINARY);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    assert_null(strstr(out, "reference ["));
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

static void t_interrupt_during_load(void **s)
{
    (void)s;
    char *dir = dir_for("intr");
    /* fault injection: a llama-server whose load never ends */
    char *fake = xasprintf("%s/slow-load-llama-server", dir);
    char *script = xasprintf("#!/bin/sh\n# fault injection (test_e2e_tune): a load that never ends\n"
                             "for a in \"$@\"; do case $a in --help|-h|--version) exec '%s' \"$@\";; esac; done\n"
                             "echo $$ > '%s/loading.pid'\nexec sleep 300\n",
                             e2e_llama_server(), dir);
    char err[256];
    assert_int_equal(file_write_atomic(fake, script, strlen(script), err, sizeof err), 0);
    assert_int_equal(chmod(fake, 0755), 0);
    char *cfg = xasprintf("%s/engine_models.json", dir);
    char *text = xasprintf("{\"_engine\": {\"llama_server\": \"%s\", \"load_timeout\": 600},\n \"fast\": "
                           "{\"model_path\": \"m.gguf\", \"args\": [\"-c\", \"2048\", \"-np\", \"1\"]}}\n",
                           fake);
    assert_int_equal(file_write_atomic(cfg, text, strlen(text), err, sizeof err), 0);
    char *log = xasprintf("%s/tune.log", dir);
    char *argv[] = {VARIET_BINARY, "tune", "fast", "--config", cfg, "--space", "ub=128,256", "--objective", "gen", NULL};
    pid_t pid = e2e_spawn(argv, log);
    assert_true(pid > 0);
    /* wait until the baseline's llama-server is loading (the sleep it became) */
    char *pidf = xasprintf("%s/loading.pid", dir);
    double t0 = now_s();
    pid_t lp = 0;
    while (now_s() - t0 < 30 && lp <= 0) {
        char *t = e2e_slurp(pidf, NULL);
        lp = t ? (pid_t)atoi(t) : 0;
        free(t);
        usleep(50000);
    }
    assert_true(lp > 0);
    usleep(300000);
    kill(pid, SIGINT);
    t0 = now_s();
    int st = 0;
    pid_t w = 0;
    while (now_s() - t0 < 10 && (w = waitpid(pid, &st, WNOHANG)) == 0)
        usleep(20000);
    double took = now_s() - t0;
    if (w != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kill(lp, SIGKILL);
        fail_msg("variet tune still running 10 s after SIGINT during a load");
    }
    size_t len = 0;
    char *out = e2e_slurp(log, &len);
    printf("stopped %.2f s after SIGINT, exit %d\n", took, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    assert_true(took < 5); /* at once: the load poll checks the flag every 20 ms; proc_stop's grace is 2 s */
    assert_non_null(out);
    if (!strstr(out, "interrupted"))
        fail_msg("no 'interrupted' in the tune's output:\n%s", out);
    free(out);
    t0 = now_s();
    while (now_s() - t0 < 5 && e2e_pid_alive(lp))
        usleep(50000);
    assert_false(e2e_pid_alive(lp)); /* no orphan */
    free(pidf);
    free(log);
    free(text);
    free(cfg);
    free(script);
    free(fake);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_dry_run),
        cmocka_unit_test(t_tune_writes_registry_and_log),
        cmocka_unit_test(t_resume_after_kill),
        cmocka_unit_test(t_interrupt_during_load),
        cmocka_unit_test(t_tune_vision),
        cmocka_unit_test(t_tune_turn),
        cmocka_unit_test(t_tune_draft),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
