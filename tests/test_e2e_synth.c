/*
 * test_e2e_synth.c — the real llama-server against `variet synth` models:
 * every tiny text preset loads and answers a chat completion, and `variet
 * inspect`'s KV-cache, recurrent-state and weight bytes equal what
 * llama-server reports (-lv 4) for several contexts and cache types (and,
 * for gemma4's sliding-window layers, with --swa-full). A preset whose
 * architecture the llama-server in use does not know is skipped, with the
 * reason, when its log says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_util.h"
#include "gguf.h"
#include "loadlog.h"
#include "modelinfo.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)

static const char *const types[] = {"f16", "q8_0", "q4_0"};
static const long ctxs[] = {2048, 8192};

static json_t *inspect_json(const char *model)
{
    char *out = NULL;
    char *cmd = xasprintf("'%s' inspect '%s' --json --ctx 2048,8192", VARIET_BINARY, model);
    int rc = e2e_sh(cmd, &out);
    free(cmd);
    assert_int_equal(rc, 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    free(out);
    assert_non_null(j);
    return j;
}

static json_int_t jint(json_t *o, const char *path1, const char *path2, const char *path3)
{
    json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    if (path3)
        v = json_object_get(v, path3);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* llama-server prints MiB with two decimals. */
static void assert_mib(double reported, double predicted_bytes, double tol_mib, const char *what)
{
    double want = predicted_bytes / MIB;
    if (fabs(reported - want) > tol_mib) {
        fail_msg("%s: llama-server reports %.2f MiB, variet predicts %.4f MiB", what, reported, want);
    }
}

static void run_preset(const char *preset)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char *model = xasprintf("%s/%s.gguf", e2e_tmpdir(), preset);
    char *out = NULL;
    char *cmd = xasprintf("'%s' synth %s -o '%s'", VARIET_BINARY, preset, model);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    free(out);
    json_t *info = inspect_json(model);
    json_int_t weights = jint(info, "weight_bytes", NULL, NULL);
    json_int_t rs = jint(info, "recurrent_state_bytes_per_seq", NULL, NULL);
    json_int_t n_rec = jint(info, "hparams", "n_layer_recurrent", NULL);
    json_int_t n_swa = jint(info, "hparams", "n_layer_swa", NULL);
    if (strstr(preset, "qwen35"))
        assert_true(n_rec > 0 && rs > 0);

    bool chatted = false;
    for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            int port = e2e_free_port();
            char ps[16], cs[16];
            snprintf(ps, sizeof ps, "%d", port);
            snprintf(cs, sizeof cs, "%ld", ctxs[c]);
            char *log = xasprintf("%s/%s-%s-%ld.log", e2e_tmpdir(), preset, types[t], ctxs[c]);
            char *argv[] = {(char *)srv, "-m", model, "--host", "127.0.0.1", "--port", ps,
                            "-c", cs, "-np", "1", "-ctk", (char *)types[t], "-ctv", (char *)types[t],
                            "-fa", "on", "-t", "2", "-lv", "4", NULL};
            pid_t pid = e2e_spawn(argv, log);
            assert_true(pid > 0);
            int ready = e2e_wait_ready(pid, port, log, 60);
            if (ready == 0 && !chatted) {
                char *resp = NULL;
                int code = e2e_http(port, "POST", "/v1/chat/completions",
                                    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],"
                                    "\"max_tokens\":8,\"temperature\":0}", &resp);
                json_t *j = json_loads(resp ? resp : "", 0, NULL);
                json_t *choices = json_object_get(j, "choices");
                json_t *usage = json_object_get(j, "usage");
                if (code != 200 || !json_is_array(choices) || json_array_size(choices) != 1 ||
                    json_integer_value(json_object_get(usage, "completion_tokens")) < 1)
                    fail_msg("%s: chat completion failed (%d): %.300s", preset, code, resp ? resp : "");
                json_decref(j);
                free(resp);
                chatted = true;
            }
            e2e_stop(pid);
            size_t len = 0;
            char *text = e2e_slurp(log, &len);
            assert_non_null(text);
            if (ready != 0) {
                if (strstr(text, "unknown model architecture")) {
                    fprintf(stderr, "SKIP %s: this llama-server does not know its architecture (%s)\n",
                            preset, log);
                    free(text);
                    free(log);
                    json_decref(info);
                    free(model);
                    skip();
                }
                fail_msg("%s -ctk %s -c %ld: llama-server did not become ready; log %s", preset,
                         types[t], ctxs[c], log);
            }
            loadlog_t r;
            loadlog_init(&r);
            loadlog_parse(&r, text, len);
            free(text);
            assert_true(r.ready);
            assert_int_equal(r.n_ctx, ctxs[c]);

            char what[128];
            snprintf(what, sizeof what, "%s KV %s c=%ld", preset, types[t], ctxs[c]);
            char cs2[16];
            snprintf(cs2, sizeof cs2, "%ld", ctxs[c]);
            json_int_t kv = jint(info, "kv_bytes", types[t], cs2);
            /* each KV buffer line is rounded: sliding-window models print two */
            assert_mib(loadlog_sum(&r, "", "kv"), (double)kv, n_swa ? 0.0101 : 0.0051, what);
            if (n_rec) {
                snprintf(what, sizeof what, "%s RS", preset);
                assert_mib(loadlog_sum(&r, "", "rs"), (double)rs, 0.0051, what);
            } else {
                assert_true(loadlog_sum(&r, "", "rs") == 0);
            }
            /* model buffers: one line per mapped range, each rounded to 0.01;
             * repacked CPU buffers may differ by their own padding */
            snprintf(what, sizeof what, "%s weights", preset);
            assert_mib(loadlog_sum(&r, "", "model"), (double)weights, 0.05, what);
            free(log);
        }
    }
    assert_true(chatted);
    json_decref(info);
    free(model);
}

/* ---- helpers: a model file, its facts, a llama-server with extra flags ---- */

static char *synth_model(const char *preset)
{
    char *path = xasprintf("%s/%s.gguf", e2e_tmpdir(), preset);
    char *out = NULL, *cmd = xasprintf("'%s' synth %s -o '%s'", VARIET_BINARY, preset, path);
    assert_int_equal(e2e_sh(cmd, &out), 0);
    free(cmd);
    free(out);
    return path;
}

static mi_t *model_info(const char *path)
{
    gguf_t *g = NULL;
    mi_t *m = NULL;
    char err[256];
    if (gguf_open(path, &g, err, sizeof err) || mi_from_gguf(g, &m, err, sizeof err))
        fail_msg("%s: %s", path, err);
    gguf_close(&g);
    return m;
}

typedef struct {
    pid_t pid;
    int port;
    char *log;
} server_t;

/* Start llama-server with -m model, the test's common flags and `extra`
 * (NULL-terminated). 0 when ready; -1 with the log kept in s->log. */
static int server_start(server_t *s, const char *tag, const char *model, const char *const *extra)
{
    const char *srv = e2e_llama_server();
    assert_non_null(srv);
    char ps[16];
    s->port = e2e_free_port();
    snprintf(ps, sizeof ps, "%d", s->port);
    s->log = xasprintf("%s/%s.log", e2e_tmpdir(), tag);
    const char *base[] = {srv, "-m", model, "--host", "127.0.0.1", "--port", ps, "-np", "1",
                          "-t", "2", "-lv", "4"};
    size_t nb = sizeof base / sizeof base[0], ne = 0;
    while (extra && extra[ne])
        ne++;
    char **argv = xcalloc(nb + ne + 1, sizeof *argv);
    for (size_t i = 0; i < nb; i++)
        argv[i] = (char *)base[i];
    for (size_t i = 0; i < ne; i++)
        argv[nb + i] = (char *)extra[i];
    s->pid = e2e_spawn(argv, s->log);
    free(argv);
    assert_true(s->pid > 0);
    return e2e_wait_ready(s->pid, s->port, s->log, 60);
}

static char *server_stop(server_t *s)
{
    e2e_stop(s->pid);
    char *text = e2e_slurp(s->log, NULL);
    assert_non_null(text);
    return text;
}

/* ---- gemma4: its sliding-window cache with --swa-full too ---- */

static void t_tiny_gemma4(void **s)
{
    (void)s;
    run_preset("tiny-gemma4");
    char *model = synth_model("tiny-gemma4");
    mi_t *m = model_info(model);
    for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
        char cs[16], tag[64];
        snprintf(cs, sizeof cs, "%ld", ctxs[c]);
        snprintf(tag, sizeof tag, "tiny-gemma4-swafull-%ld", ctxs[c]);
        const char *extra[] = {"-c", cs, "-fa", "on", "--swa-full", NULL};
        server_t srv;
        int ready = server_start(&srv, tag, model, extra);
        char *text = server_stop(&srv);
        if (ready != 0)
            fail_msg("%s: llama-server did not become ready; log %s", tag, srv.log);
        loadlog_t r;
        loadlog_init(&r);
        loadlog_parse(&r, text, strlen(text));
        mi_kv_opts_t o = {.swa_full = true};
        assert_mib(loadlog_sum(&r, "", "kv"),
                   (double)mi_kv_bytes_ex(m, (uint64_t)ctxs[c], GGUF_TT_F16, GGUF_TT_F16, &o), 0.0101, tag);
        /* and it differs from the windowed cache */
        assert_true(mi_kv_bytes_ex(m, (uint64_t)ctxs[c], GGUF_TT_F16, GGUF_TT_F16, &o) >
                    mi_kv_bytes(m, (uint64_t)ctxs[c], GGUF_TT_F16, GGUF_TT_F16));
        free(text);
        free(srv.log);
    }
    mi_free(&m);
    free(model);
}

static void t_tiny_llama(void **s) { (void)s; run_preset("tiny-llama"); }
static void t_tiny_llama_q(void **s) { (void)s; run_preset("tiny-llama-q"); }
static void t_tiny_qwen3moe(void **s) { (void)s; run_preset("tiny-qwen3moe"); }
static void t_tiny_qwen35moe(void **s) { (void)s; run_preset("tiny-qwen35moe"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_tiny_llama),
        cmocka_unit_test(t_tiny_llama_q),
        cmocka_unit_test(t_tiny_qwen3moe),
        cmocka_unit_test(t_tiny_qwen35moe),
        cmocka_unit_test(t_tiny_gemma4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
